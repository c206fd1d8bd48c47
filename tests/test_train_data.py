"""Training data: folder scanning, format conversion, broken files, crops, order and prefetching."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.trainers.data import BatchStream, ContentSource, CropSampler, unreadable_summary


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
    names = [Path(source.name(i)).name for i in range(len(source))]
    assert names == ["a_rgb.jpg", "broken.jpg", "d.webp", "e.BMP", "b_grey.png", "c_rgba.png"]
    expected = {
        "a_rgb.jpg": (200, 40, 40),
        "d.webp": (30, 60, 210),
        "e.BMP": (250, 250, 0),
        "b_grey.png": (90, 90, 90),
        "c_rgba.png": (10, 220, 30),
    }
    for index, name in enumerate(names):
        if name == "broken.jpg":
            with pytest.raises(InputImageError, match=r"cannot decode .*broken\.jpg"):
                source.load_resized(index, 32)
            continue
        image = source.load_resized(index, 32)
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert min(image.shape[1:]) == 32
        mean = image.mean(dim=(1, 2)) * 255
        assert torch.allclose(mean, torch.tensor(expected[name], dtype=torch.float32), atol=3), name


class _FileOpens:
    """Records the files Python opens while ``active`` (an audit hook cannot be removed, only idled)."""

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if self.active and event == "open" and isinstance(args[0], str):
            self.paths.append(args[0])


def test_listing_opens_no_file_and_sorts_like_paths(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    names = ["b.jpg", "a-b.png", "a.b.jpg", "a/z.jpg", "a/b/c.webp", "A.JPEG", "a0/x.bmp", "ab/.hidden.jpg"]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded while listing")
    (root / "notes.txt").write_text("not an image")
    (root / ".jpg").write_text("no suffix, like Path('.jpg').suffix")
    (root / "link.jpg").symlink_to(root / "b.jpg")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "far.jpg").write_bytes(b"x")
    (root / "linked_folder").symlink_to(tmp_path / "outside", target_is_directory=True)
    opens = _FileOpens()
    opens.active = True
    source = ContentSource.from_folder(root)
    opens.active = False
    assert [p for p in opens.paths if p.startswith(str(root))] == []
    suffixes = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
    by_path = sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    assert [source.name(i) for i in range(len(source))] == [str(p) for p in by_path]
    assert len(source) == len(names) + 1  # the file link counts, the folder link is not followed


def test_window_resize_matches_resizing_the_whole_image(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).normal(0, 20, (480, 640, 3))
    ramp = np.linspace(0, 200, 640)[None, :, None]
    photo = np.clip(ramp + noise, 0, 255).astype(np.uint8)
    _save(tmp_path / "vga.jpg", photo, quality=90)
    _save(tmp_path / "big.jpg", np.kron(photo, np.ones((3, 3, 1), np.uint8)), quality=90)  # 1920x1440
    source = ContentSource.from_folder(tmp_path)
    for index in range(len(source)):
        for short_side, size, top, left in ((256, 256, 0, 85), (96, 64, 20, 37), (300, 300, 0, 0)):
            whole = source.load_resized(index, short_side)
            window = source.load_crop(index, short_side, size, lambda h, w, at=(top, left): at)
            assert window.shape == (3, size, size)
            difference = (window - whole[:, top : top + size, left : left + size]).abs().max()
            assert float(difference) <= 1.5 / 255, (source.name(index), short_side, float(difference))


def test_ranks_take_consecutive_slices_of_the_global_batch() -> None:
    images = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 3, 10, 12) / 10
    sampler = CropSampler(ContentSource.from_tensor(images), image_size=8, seed=4)
    for step in range(4):
        whole = sampler.batch(step, 6)
        parts = [sampler.batch(step, 2, rank=rank, world_size=3) for rank in range(3)]
        assert torch.equal(torch.cat(parts), whole)
    with BatchStream(sampler, 2, start_step=1, workers=2, rank=2, world_size=3) as stream:
        assert torch.equal(next(stream), sampler.batch(1, 6)[4:])


def test_unreadable_summary_names_the_first_files_and_counts_the_rest() -> None:
    assert unreadable_summary({"b.jpg"}) == "1 unreadable content file: b.jpg"
    names = {f"{letter}.jpg" for letter in "gfedcba"}
    assert unreadable_summary(names, shown=3) == "7 unreadable content files: a.jpg, b.jpg, c.jpg and 4 more"


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
    sampler = CropSampler(ContentSource.from_folder(broken), image_size=16, seed=0)
    with pytest.raises(InputImageError) as info:
        sampler.sample(0)
    message = str(info.value)
    assert "none of the 1 content images could be decoded" in message
    assert f"1 unreadable content file: {broken / 'x.png'}" in message


def test_file_that_fails_to_decode_is_replaced_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "content"
    _save(root / "good.png", _solid(32, 32, (0, 255, 0)))
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, "PNG")
    (root / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    source = ContentSource.from_folder(root)
    assert len(source) == 2
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
    files = [Path(ContentSource.from_folder(mixed_folder).name(i)) for i in range(7)]
    root = os.path.commonpath([str(p) for p in files])  # the formula of earlier versions: resume still works
    earlier = hashlib.sha256(
        b"".join(f"{os.path.relpath(p, root)}\0{p.stat().st_size}\n".encode() for p in files)
    )
    assert ContentSource.from_folder(mixed_folder).fingerprint() == earlier.hexdigest()
    images = torch.rand(2, 3, 8, 8)
    halved = ContentSource.from_tensor(images * 0.5)
    assert ContentSource.from_tensor(images).fingerprint() != halved.fingerprint()
