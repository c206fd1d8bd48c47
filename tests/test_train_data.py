"""Training data: folder scanning, format conversion, broken files, crops, order and prefetching."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.trainers.data import BatchStream, ContentSource, CropSampler


def _save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kwargs)
    return path


def _solid(height: int, width: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (height, width, 3)).copy()


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    root = tmp_path / "content"
    _save(root / "a_rgb.jpg", _solid(40, 60, (200, 40, 40)), quality=98)
    _save(root / "sub" / "b_grey.png", np.full((50, 30), 90, np.uint8), mode="L")
    rgba = np.zeros((36, 36, 4), np.uint8)
    rgba[..., :3] = (10, 220, 30)
    rgba[..., 3] = 0  # fully transparent: the colour must survive, alpha is dropped
    _save(root / "sub" / "deeper" / "c_rgba.png", rgba, mode="RGBA")
    _save(root / "d.webp", _solid(48, 48, (30, 60, 210)), lossless=True)
    _save(root / "e.BMP", _solid(33, 70, (250, 250, 0)))
    (root / "broken.jpg").write_bytes(b"this is not an image at all")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_folder_is_scanned_recursively_and_converted(mixed_folder: Path) -> None:
    source = ContentSource.from_folder(mixed_folder)
    assert len(source) == 5
    assert [p.name for p in source.skipped] == ["broken.jpg"]
    names = [Path(source.name(i)).name for i in range(len(source))]
    assert names == ["a_rgb.jpg", "d.webp", "e.BMP", "b_grey.png", "c_rgba.png"]
    expected = {
        "a_rgb.jpg": (200, 40, 40),
        "d.webp": (30, 60, 210),
        "e.BMP": (250, 250, 0),
        "b_grey.png": (90, 90, 90),
        "c_rgba.png": (10, 220, 30),
    }
    for index, name in enumerate(names):
        image = source.load_resized(index, 32)
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert min(image.shape[1:]) == 32
        mean = image.mean(dim=(1, 2)) * 255
        assert torch.allclose(mean, torch.tensor(expected[name], dtype=torch.float32), atol=3), name


def test_resize_keeps_aspect_on_the_shorter_side(mixed_folder: Path) -> None:
    source = ContentSource.from_folder(mixed_folder)
    names = [Path(source.name(i)).name for i in range(len(source))]
    assert tuple(source.load_resized(names.index("a_rgb.jpg"), 32).shape) == (3, 32, 48)
    assert tuple(source.load_resized(names.index("b_grey.png"), 24).shape) == (3, 40, 24)


def test_empty_folder_names_folder_and_extensions(tmp_path: Path) -> None:
    empty = tmp_path / "nothing here"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images")
    with pytest.raises(InputImageError) as info:
        ContentSource.from_folder(empty)
    message = str(info.value)
    assert str(empty) in message
    for suffix in (".jpg", ".jpeg", ".png", ".webp", ".bmp"):
        assert suffix in message


def test_missing_folder_and_all_broken_folder(tmp_path: Path) -> None:
    with pytest.raises(InputImageError, match="not found"):
        ContentSource.from_folder(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(InputImageError, match="none of the 1 image files"):
        ContentSource.from_folder(broken)


def test_file_that_fails_to_decode_is_replaced_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "content"
    _save(root / "good.png", _solid(32, 32, (0, 255, 0)))
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    (root / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    source = ContentSource.from_folder(root)
    assert len(source) == 2 and source.skipped == []  # the header is fine: only decoding fails
    sampler = CropSampler(source, image_size=16, seed=0)
    batch = sampler.batch(0, 2)
    assert batch.shape == (2, 3, 16, 16)
    assert torch.allclose(batch[:, 1], torch.ones(2, 16, 16))  # both samples are the good image
    assert sampler.failed == {str(root / "truncated.png")}


def test_tensor_source_converts_channels_and_rejects_empty() -> None:
    grey = torch.full((2, 1, 20, 30), 0.25)
    source = ContentSource.from_tensor(grey)
    image = source.load_resized(1, 10)
    assert image.shape == (3, 10, 15)
    assert torch.allclose(image, torch.full_like(image, 0.25), atol=1e-6)
    rgba = torch.rand(1, 4, 16, 16)
    assert torch.equal(ContentSource.from_tensor(rgba).load_resized(0, 16), rgba[0, :3])
    with pytest.raises(InputImageError, match="non-empty"):
        ContentSource.from_tensor(torch.zeros(0, 3, 8, 8))


def _image_ids(batch: torch.Tensor) -> list[int]:
    """Recover which constant-colour image each crop came from (image i has value i/10)."""
    return [round(float(crop.mean()) * 10) for crop in batch]


def test_small_source_is_cycled_with_a_fresh_order_each_epoch() -> None:
    count = 5
    images = torch.arange(count, dtype=torch.float32).view(count, 1, 1, 1).expand(count, 3, 12, 12) / 10
    sampler = CropSampler(ContentSource.from_tensor(images), image_size=8, seed=3)
    seen = [i for step in range(10) for i in _image_ids(sampler.batch(step, 2))]  # 20 samples = 4 epochs
    epochs = [seen[e * count : (e + 1) * count] for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(count))  # every image exactly once per pass
    assert len({tuple(order) for order in epochs}) > 1  # shuffled anew each pass
    assert epochs[0] != list(range(count))


def test_crops_are_seeded_windows_of_the_resized_image() -> None:
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 32, 64).contiguous()
    source = ContentSource.from_tensor(ramp)
    resized = source.load_resized(0, 16)
    assert resized.shape == (3, 16, 32)
    offsets = set()
    for seed in range(6):
        crop = CropSampler(source, image_size=16, seed=seed).sample(0)
        assert crop.shape == (3, 16, 16)
        left = int(torch.argmin((resized[0, 0, :] - crop[0, 0, 0]).abs()))
        assert torch.equal(crop, resized[:, :, left : left + 16])
        offsets.add(left)
    assert len(offsets) > 1  # the offset depends on the seed


def test_stream_is_deterministic_across_threads_and_start_steps(mixed_folder: Path) -> None:
    source = ContentSource.from_folder(mixed_folder)
    sampler = CropSampler(source, image_size=16, seed=7)
    with BatchStream(sampler, 3, workers=0) as stream:
        serial = [next(stream) for _ in range(6)]
    with BatchStream(CropSampler(source, image_size=16, seed=7), 3, workers=2, prefetch=3) as stream:
        threaded = [next(stream) for _ in range(6)]
    with BatchStream(CropSampler(source, image_size=16, seed=7), 3, start_step=4, workers=2) as stream:
        resumed = [next(stream) for _ in range(2)]
    for a, b in zip(serial, threaded, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(resumed[0], serial[4]) and torch.equal(resumed[1], serial[5])
    other_seed = CropSampler(source, image_size=16, seed=8).batch(0, 3)
    assert not torch.equal(other_seed, serial[0])


def test_fingerprint_tracks_content(mixed_folder: Path) -> None:
    first = ContentSource.from_folder(mixed_folder).fingerprint()
    assert first == ContentSource.from_folder(mixed_folder).fingerprint()
    _save(mixed_folder / "new.png", _solid(20, 20, (1, 2, 3)))
    assert ContentSource.from_folder(mixed_folder).fingerprint() != first
    images = torch.rand(2, 3, 8, 8)
    halved = ContentSource.from_tensor(images * 0.5)
    assert ContentSource.from_tensor(images).fingerprint() != halved.fingerprint()
