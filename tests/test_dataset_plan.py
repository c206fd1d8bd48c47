"""The parts of a dataset stylisation that need no network: which paintings a photo gets, output names,
the processes' shares, batches of one size, the manifest's crash handling and the settings' checks."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from depthstyle.depthstyle_core.errors import InputImageError
from depthstyle.trainers.datasets import DatasetConfig
from depthstyle.trainers.datasets.pipeline import PhotoBatches
from depthstyle.trainers.datasets.plan import all_tasks, output_path, painting_indices, share_of
from depthstyle.trainers.datasets.records import ManifestRow, ManifestWriter, read_manifest

PHOTOS = [f"n{c:02d}/img_{i:05d}.JPEG" for c in range(10) for i in range(40)]


def test_a_photos_paintings_depend_only_on_the_seed_its_path_and_k():
    drawn = [painting_indices(7, photo, 3, 20) for photo in PHOTOS]
    assert all(len(set(chosen)) == 3 and all(0 <= p < 20 for p in chosen) for chosen in drawn)
    assert drawn == [painting_indices(7, photo, 3, 20) for photo in reversed(PHOTOS)][::-1]  # order-free
    assert [painting_indices(7, photo, 1, 20) for photo in PHOTOS] == [chosen[:1] for chosen in drawn]
    assert [painting_indices(8, photo, 3, 20) for photo in PHOTOS] != drawn
    counts = Counter(p for photo in PHOTOS for p in painting_indices(0, photo, 1, 8))
    assert sorted(counts) == list(range(8)) and max(counts.values()) < 1.35 * len(PHOTOS) / 8
    assert painting_indices(0, "a.jpg", 4, 4) != painting_indices(0, "b.jpg", 4, 4)  # all 4, other orders
    with pytest.raises(ValueError, match="cannot draw 5 different paintings from 4"):
        painting_indices(0, "a.jpg", 5, 4)


def test_added_photos_do_not_change_the_others():
    before = all_tasks(PHOTOS[::2], 3, 2, 9, ".png")
    after = all_tasks(PHOTOS, 3, 2, 9, ".png")
    assert set(before) <= set(after) and len(after) == 2 * len(PHOTOS)


def test_outputs_keep_folders_and_stems_and_two_photos_may_not_share_one():
    assert output_path("n01/img_1.JPEG", 0, 1, ".jpg") == "n01/img_1.jpg"
    assert output_path("n01/img_1.JPEG", 2, 3, ".webp") == "n01/img_1_2.webp"
    with pytest.raises(InputImageError, match=r"a/x\.jpg and a/x\.png would both be written to a/x\.png"):
        all_tasks(["a/x.jpg", "a/x.png"], 0, 1, 3, ".png")


@pytest.mark.parametrize("world_size", [1, 2, 3, 7])
def test_the_shares_cover_every_photo_once_keep_its_outputs_together_and_are_balanced(world_size):
    tasks = all_tasks(PHOTOS[:101], 0, 2, 5, ".png")
    shares = [share_of(tasks, rank, world_size) for rank in range(world_size)]
    assert sorted(t.output for share in shares for t in share) == sorted(t.output for t in tasks)
    photos = [{t.photo for t in share} for share in shares]
    assert sum(len(p) for p in photos) == 101 and max(map(len, photos)) - min(map(len, photos)) <= 1
    assert all(len(share) == 2 * len(p) for share, p in zip(shares, photos, strict=True))


def test_batches_hold_one_photo_size_and_bounded_waiting(tmp_path):
    sizes = {"a": (3, 8, 8), "b": (3, 8, 6), "c": (3, 5, 5)}
    names = [f"{i:02d}{kind}" for i in range(12) for kind in "abc"] + ["broken"]
    tasks = all_tasks(sorted(names), 0, 1, 1, ".png")

    def load(path: Path) -> torch.Tensor:
        if path.name == "broken":
            raise InputImageError(f"cannot decode {path}: not an image")
        return torch.zeros(sizes[path.name[-1]], dtype=torch.uint8)

    with ThreadPoolExecutor(2) as pool:
        batches = PhotoBatches(tasks, tmp_path, load, pool, batch_size=4, ahead=4)
        got = list(iter(batches.next, None))
    assert sorted(t.photo for batch in got for t, _ in batch) == sorted(n for n in names if n != "broken")
    assert all(len({pixels.shape for _, pixels in batch}) == 1 for batch in got)
    assert all(len(batch) <= 4 for batch in got) and sum(len(b) == 4 for b in got) >= 6
    (failed,) = batches.take_failed()
    assert (failed.kind, failed.file) == ("photo", "broken") and batches.take_failed() == []


def row(index: int) -> ManifestRow:
    return ManifestRow(f"c/{index}.jpg", "p.png", 0, 1.0, f"c/{index}.png", 32, 24)


def test_a_manifest_line_cut_by_a_crash_is_dropped_and_the_rest_is_rewritten_sorted(tmp_path):
    writer = ManifestWriter(tmp_path)
    writer.add([row(3), row(1)])
    writer.close()
    with open(tmp_path / "manifest.csv", "a") as handle:
        handle.write("c/2.jpg,p.png,0,1.0,c/2.pn")
    writer = ManifestWriter(tmp_path)  # as the next run opens it
    assert set(read_manifest(tmp_path)) == {"c/3.png", "c/1.png"}
    writer.add([row(2)])
    assert writer.finish([]) == [row(1), row(2), row(3)]
    assert (tmp_path / "manifest.csv").read_text().splitlines()[1:] == [
        "c/1.jpg,p.png,0,1.0,c/1.png,32,24",
        "c/2.jpg,p.png,0,1.0,c/2.png,32,24",
        "c/3.jpg,p.png,0,1.0,c/3.png,32,24",
    ]


def test_a_damaged_or_foreign_manifest_is_named(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "photo,painting,k,strength,output,width,height\na,b\nc,d,0,1,e,1,1\n"
    )
    with pytest.raises(InputImageError, match=r"line 2 of .*manifest.csv is damaged"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,label\n")
    with pytest.raises(InputImageError, match="not a manifest of depthstyle stylize-dataset"):
        read_manifest(tmp_path)


def test_settings_are_checked_and_only_the_output_ones_must_stay():
    config = DatasetConfig(extensions=("JPG", ".jpeg", "jpg"))
    assert config.extensions == (".jpg", ".jpeg") and config.suffix == ".jpg"
    assert config.batch_for("cpu") == 1 and config.batch_for("cuda") == 32
    assert "workers" not in config.output_settings() and config.output_settings()["seed"] == 0
    with pytest.raises(ValueError, match="crop needs a content_size") as info:
        DatasetConfig(crop=True, strength=2.0, format="gif")
    assert "strength must be a number from 0 to 1, got 2.0" in str(info.value)
    assert "format must be one of jpg, png, webp, got 'gif'" in str(info.value)
