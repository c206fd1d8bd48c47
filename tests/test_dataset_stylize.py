"""``depthstyle stylize-dataset`` in one process: the output tree and its manifest, unreadable files,
the result against ``stylize_any`` and ``stylize``, resuming after a crash, adding photos, stopping,
and the settings a rerun must keep. The tree (tests/dataset_helpers.py) has 160 small JPEGs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.depth import estimate_depth, load_depth_model
from depthstyle.depthstyle_core.errors import DatasetError
from depthstyle.depthstyle_core.images import load_image, pil_to_tensor
from depthstyle.depthstyle_core.style_model import save_style_model
from depthstyle.depthstyle_core.stylize import stylize
from depthstyle.trainers.datasets import DatasetConfig, stylize_dataset
from depthstyle.trainers.datasets.plan import painting_indices

from .dataset_helpers import (
    BROKEN_PAINTING,
    BROKEN_PHOTOS,
    IMAGES,
    PAINTINGS,
    PHOTOS,
    SIZES,
    cli_arguments,
    copy_tree,
    photo_name,
    stylize_dataset_cli,
    tree_files,
    write_paintings,
    write_photo,
    write_tree,
)
from .factories import write_depth_checkpoint
from .style_helpers import lively_net

pytestmark = pytest.mark.usefixtures("single_thread")


def manifest(folder) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def times(folder, outputs) -> dict[str, int]:
    """Modification times (ns) of some outputs: a file written again gets a new one."""
    return {output: (folder / output).stat().st_mtime_ns for output in outputs}


def test_the_tree_is_mirrored_with_two_paintings_per_photo_and_the_broken_files_are_listed(dataset_reference):
    photos, paintings, out, code, said = dataset_reference
    assert code == 3
    rows = manifest(out)
    assert len(rows) == IMAGES == len({row["output"] for row in rows})
    pool = sorted(f"p{i}.png" for i in range(PAINTINGS))
    for index in range(PHOTOS):
        name = photo_name(index)
        mine = [row for row in rows if row["photo"] == name]
        assert [row["k"] for row in mine] == ["0", "1"]
        assert [row["output"] for row in mine] == [name[:-4] + "_0.png", name[:-4] + "_1.png"]
        drawn = [pool[i] for i in painting_indices(3, name, 2, len(pool))]
        assert [row["painting"] for row in mine] == drawn and drawn[0] != drawn[1]
        width, height = SIZES[index % len(SIZES)]
        assert {(row["width"], row["height"], row["strength"]) for row in mine} == {
            (str(width), str(height), "1.0")
        }
    assert len({row["painting"] for row in rows}) == PAINTINGS  # every readable painting is drawn, no other
    files = set(tree_files(out))
    assert files == {row["output"] for row in rows} | {"manifest.csv", "skipped.csv", "stylize-dataset.json"}
    with open(out / "skipped.csv", newline="") as handle:
        skipped = list(csv.DictReader(handle))
    assert [(row["kind"], row["file"]) for row in skipped] == [
        ("painting", BROKEN_PAINTING),
        *(("photo", name) for name in BROKEN_PHOTOS),
    ]
    assert all(row["reason"] for row in skipped)
    assert f"stylised {IMAGES} images in" in said and "images/s" in said
    assert (
        f"skipped 2 unreadable photos: {', '.join(BROKEN_PHOTOS)}; 1 unreadable painting: {BROKEN_PAINTING} "
        f"(all listed in {out / 'skipped.csv'})"
    ) in said
    settings = json.loads((out / "stylize-dataset.json").read_text())["settings"]
    assert settings["seed"] == 3 and settings["styles_per_image"] == 2 and settings["format"] == "png"
    assert settings["paintings"].startswith(f"{PAINTINGS} readable, sha256 ")


def test_each_output_is_stylize_any_of_its_photo_with_its_painting(dataset_reference):
    photos, paintings, out, _, _ = dataset_reference
    model = load_any_style_model()
    for row in manifest(out)[::97]:
        with torch.inference_mode():
            expected = stylize_any(
                model,
                load_image(photos / row["photo"]),
                load_image(paintings / row["painting"]),
                style_size=32,
            )
        written = load_image(out / row["output"])
        assert written.shape == expected.shape
        assert float((written - expected).abs().max()) <= 0.5 / 255 + 1e-5


def test_a_rerun_after_a_crash_does_only_the_unfinished_images(dataset_reference, tmp_path):
    """The state a crash leaves: a manifest line cut short, images written but not yet recorded, and
    temporary files of images in flight."""
    _, _, reference, _, _ = dataset_reference
    photos, paintings, _, _, _ = dataset_reference
    out = copy_tree(reference, tmp_path / "out")
    lines = (reference / "manifest.csv").read_text().splitlines(keepends=True)
    kept = 1 + 200
    (out / "manifest.csv").write_text("".join(lines[:kept]) + lines[kept][:20])
    unrecorded = [line.split(",")[4] for line in lines[kept:]]
    for output in unrecorded[2:]:
        (out / output).unlink()
    for output in unrecorded[5:8]:
        (out / output).with_name(f".{output.split('/')[-1]}.partial").write_bytes(b"half an image")
    finished = [line.split(",")[4] for line in lines[1:kept]]
    before = times(out, finished)
    code, said = stylize_dataset_cli(photos, paintings, out)
    assert code == 3
    assert f"stylised {IMAGES - 200} images" in said and f"200 of {IMAGES + 4} were done before" in said
    assert times(out, finished) == before  # nothing finished was painted again
    assert tree_files(out) == tree_files(reference)  # same bytes, manifest included; no .partial left


def test_a_stopped_run_keeps_what_it_finished_and_added_photos_are_the_only_new_work(
    dataset_reference, tmp_path
):
    photos, paintings, reference, _, _ = dataset_reference
    first = range(0, PHOTOS, 2)
    later = [index for index in range(PHOTOS) if index not in first]
    write_tree(tmp_path, first)
    asked = []

    def stop_after_ten_batches() -> bool:
        asked.append(1)
        return len(asked) > 10

    out = tmp_path / "out"
    config = DatasetConfig(style_size=32, format="png", workers=2, styles_per_image=2, seed=3)
    result = stylize_dataset(
        tmp_path / "photos",
        out,
        style_dir=tmp_path / "paintings",
        config=config,
        should_stop=stop_after_ten_batches,
    )
    assert result.stopped and result.written == 10 == len(manifest(out))
    assert result.missing == len(first) * 2 + 4 - 10
    assert sorted(p.name for p in out.rglob("*.png")) == sorted(
        row["output"].split("/")[1] for row in manifest(out)
    )
    code, said = stylize_dataset_cli(tmp_path / "photos", tmp_path / "paintings", out)
    assert code == 3 and f"stylised {len(first) * 2 - 10} images" in said
    before = times(out, [row["output"] for row in manifest(out)])
    for index in later:
        write_photo(tmp_path / "photos", index)
    code, said = stylize_dataset_cli(tmp_path / "photos", tmp_path / "paintings", out)
    assert code == 3 and f"stylised {len(later) * 2} images" in said
    assert times(out, before) == before
    assert tree_files(out) == tree_files(reference)  # the new photos got the paintings a full run gives them


def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(dataset_reference, tmp_path):
    photos, paintings, reference, _, _ = dataset_reference
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(reference / "stylize-dataset.json", out)
    code, said = stylize_dataset_cli(photos, paintings, out, "--strength", "0.5", "--seed", "4")
    assert code == 2
    assert "was stylised with other settings (strength 1.0 then, 0.5 now; seed 3 then, 4 now)" in said
    assert "Run the same command to finish it, or give another output folder" in said
    assert [p.name for p in out.iterdir()] == ["stylize-dataset.json"]


def test_an_output_folder_inside_the_photos_is_refused(dataset_reference):
    photos, paintings, _, _, _ = dataset_reference
    code, said = stylize_dataset_cli(photos, paintings, photos / "stylised")
    assert code == 2 and "overlap" in said and "outside the photo folder" in said
    assert not (photos / "stylised").exists()


@pytest.fixture
def few_photos(tmp_path):
    root = tmp_path / "photos"
    for index in range(3):
        write_photo(root, index)
    return root


def test_a_trained_style_model_paints_every_photo(few_photos, tmp_path):
    net = lively_net(seed=1)
    model = save_style_model(tmp_path / "mine.safetensors", net)
    out = tmp_path / "out"
    config = DatasetConfig(content_size=20, crop=True, format="png", strength=0.8)
    result = stylize_dataset(few_photos, out, style_model=model, config=config)
    assert result.written == 3 and result.total == 3
    for row in manifest(out):
        assert row["painting"] == "mine.safetensors" and (row["width"], row["height"]) == ("20", "20")
        with Image.open(few_photos / row["photo"]) as image:  # shorter side 20, then the centre square
            width, height = image.size
            scale = 20 / min(width, height)
            resized = image.convert("RGB").resize(
                (round(width * scale), round(height * scale)), Image.BICUBIC
            )
            left, top = (resized.width - 20) // 2, (resized.height - 20) // 2
            squashed = pil_to_tensor(image.convert("RGB").resize((20, 20), Image.BICUBIC))
        centre = pil_to_tensor(resized.crop((left, top, left + 20, top + 20)))
        with torch.inference_mode():
            expected, wrong = stylize(net, torch.cat([centre, squashed]), strength=0.8).split(1)
        written = load_image(out / row["output"])
        assert written.shape == (1, 3, 20, 20)
        assert float((written - expected).abs().mean()) < 0.01
        if width != height:  # not the whole photo squashed into the square
            assert float((written - wrong).abs().mean()) > 0.02


def test_depth_preserve_uses_the_depth_model(few_photos, tmp_path):
    paintings = write_paintings(tmp_path / "paintings")
    depth = load_depth_model(write_depth_checkpoint(tmp_path / "depth.safetensors", seed=1))
    config = DatasetConfig(depth_preserve=0.8, style_size=32, format="png", seed=1)
    out = tmp_path / "out"
    result = stylize_dataset(few_photos, out, style_dir=paintings, config=config, depth_model=depth)
    assert result.written == 3 and not result.unreadable_paintings
    model = load_any_style_model()
    for row in manifest(out):
        photo = load_image(few_photos / row["photo"])
        with torch.inference_mode():
            painting = load_image(paintings / row["painting"])
            expected = stylize_any(
                model, photo, painting, style_size=32, depth=estimate_depth(depth, photo), depth_preserve=0.8
            )
            without = stylize_any(model, photo, painting, style_size=32)
        written = load_image(out / row["output"])
        assert float((written - expected).abs().max()) <= 0.5 / 255 + 1e-5
        assert float((written - without).abs().max()) > 0.05
    with pytest.raises(DatasetError, match="depth_preserve above 0 needs a depth model"):
        stylize_dataset(few_photos, tmp_path / "none", style_dir=paintings, config=config)


def quantization(quality: int) -> dict:
    """The JPEG quantization tables Pillow writes at ``quality``."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG", quality=quality)
    return Image.open(buffer).quantization


def test_jpg_output_with_its_quality(few_photos, tmp_path):
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    shutil.copy(few_photos / photo_name(0), paintings / "any.jpg")
    assert quantization(30) != quantization(95)
    for quality in (30, 95):
        out = tmp_path / f"q{quality}"
        config = DatasetConfig(style_size=32, quality=quality, extensions=("JPG",))
        stylize_dataset(few_photos, out, style_dir=paintings, config=config)
        for row in manifest(out):
            assert row["output"].endswith(".jpg")
            with Image.open(out / row["output"]) as image:
                assert image.format == "JPEG" and image.quantization == quantization(quality)


def test_sigterm_stops_after_the_images_in_flight_and_says_how_to_go_on(dataset_reference, tmp_path):
    photos, paintings, reference, _, _ = dataset_reference
    out = tmp_path / "out"
    log = tmp_path / "log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "depthstyle", *cli_arguments(photos, paintings, out)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    try:
        deadline = time.monotonic() + 120
        while not (out / "manifest.csv").is_file() or len(manifest(out)) < 20:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    said = log.read_text()
    rows = manifest(out)
    assert code == 128 + signal.SIGTERM, said[-2000:]
    assert 20 <= len(rows) < IMAGES
    assert f"stopped: {IMAGES + 4 - len(rows)} images are still to do; run the same command again" in said
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert on_disk == {row["output"] for row in rows}  # every image in flight was finished and recorded
    assert all((out / name).read_bytes() == (reference / name).read_bytes() for name in on_disk)


def test_bad_settings_are_named_by_their_options(dataset_reference, tmp_path):
    photos, paintings, _, _, _ = dataset_reference
    code, said = stylize_dataset_cli(photos, paintings, tmp_path / "out", "--crop", "--quality", "0")
    assert code == 2
    assert "--crop needs a --content-size: the side of the square to cut" in said
    assert "--quality must be from 1 to 100, got 0" in said
    assert not (tmp_path / "out").exists()
