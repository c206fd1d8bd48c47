"""``depthstyle stylize CLIP`` and ``depthstyle evaluate --video`` through the real entry point, on small
H.264 clips of a pan with sound, offline, with the built-in any-painting network and no depth model."""

from __future__ import annotations

import csv
import json
import signal
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from depthstyle.cli import main, stylize_video
from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.depth import estimate_depth, load_depth_model
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.video.files import probe, read_frames

from .comfyui_server import REPO
from .factories import write_depth_checkpoint
from .video_clip_helpers import audio_span, mean_abs_255, pan_frames, pixel_format, write_clip

pytestmark = pytest.mark.usefixtures("single_thread")

PAINTING = REPO / "tests" / "data" / "any_style" / "style.png"
NTSC = Fraction(30000, 1001)
NO_DEPTH = ["--depth-preserve", "0"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """pan.mp4 (12 frames at 29.97 fps with sound), pan.mkv (the same at 24 fps), flicker.mp4 (pan.mp4
    with every other frame brighter), short.mp4 (its first 8 frames), and the frames as PNG files."""
    folder = tmp_path_factory.mktemp("clips")
    frames = pan_frames(12)
    write_clip(folder / "pan.mp4", frames, rate=NTSC)
    write_clip(folder / "pan.mkv", frames, rate=Fraction(24))
    brighter = torch.tensor([0.08 * (i % 2) for i in range(12)])[:, None, None, None]
    write_clip(folder / "flicker.mp4", ((frames + brighter) * 255).round().clamp(0, 255) / 255, rate=NTSC)
    write_clip(folder / "short.mp4", frames[:8], rate=NTSC)
    for index, frame in enumerate(frames):
        save_image(frame[None], folder / "frames" / f"f{index:02d}.png")
    return folder


def stylize(*args: object, models: Path) -> int:
    return main(
        ["--models-dir", str(models), "stylize", *map(str, args), "--style", str(PAINTING), *NO_DEPTH]
    )


def seconds(path: Path) -> list[Fraction]:
    base = probe(path).time_base
    return [frame.pts * base for frame in read_frames(path)]


def pictures(path: Path) -> torch.Tensor:
    return torch.cat([frame.picture for frame in read_frames(path)])


def same_clip_shape(result: Path, source: Path) -> None:
    """``result`` has the source's frame count, size, rate, timestamps and sound."""
    got, want = probe(result), probe(source)
    assert (got.frames, got.width, got.height, got.rate) == (want.frames, want.width, want.height, want.rate)
    assert got.has_audio and want.has_audio
    assert seconds(result) == seconds(source)
    packets, _, end = audio_span(result)
    assert packets > 5 and abs(end - want.frames / want.rate) < Fraction(2048, 48000)


def test_clips_become_clip_styled_in_the_folder_with_their_frames_rate_and_sound(clips, tmp_path, capsys):
    out = tmp_path / "out"
    twin = tmp_path / "elsewhere" / "pan.mp4"
    twin.parent.mkdir()
    twin.write_bytes((clips / "pan.mp4").read_bytes())
    assert stylize(clips / "pan.mp4", twin, "-o", out, models=tmp_path) == 2
    assert "two clips have the same name: stylise them into different folders" in capsys.readouterr().err
    assert not out.exists(), "nothing written"
    assert stylize(clips / "pan.mp4", clips / "pan.mkv", "-o", out, models=tmp_path) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pan_styled.mkv", "pan_styled.mp4"]
    same_clip_shape(out / "pan_styled.mp4", clips / "pan.mp4")
    same_clip_shape(out / "pan_styled.mkv", clips / "pan.mkv")
    assert probe(out / "pan_styled.mkv").rate == 24
    assert pixel_format(out / "pan_styled.mp4") == "yuv420p"
    assert mean_abs_255(pictures(out / "pan_styled.mp4"), pictures(clips / "pan.mp4")) > 20, "it is painted"
    err = capsys.readouterr().err
    assert "pan.mp4 -> " in err and "(12 frames, 64x48 at 29.97 fps, frames flow)" in err
    assert "no depth model" not in err


def test_independent_frames_are_the_librarys_pictures_and_full_chroma_is_444(clips, tmp_path):
    out = tmp_path / "out"
    args = [clips / "pan.mp4", "-o", out, "--frames", "independent", "--full-chroma"]
    assert stylize(*args, models=tmp_path) == 0
    result = out / "pan_styled.mp4"
    assert pixel_format(result) == "yuv444p"
    source = pictures(clips / "pan.mp4")
    with torch.inference_mode():
        expected = stylize_any(load_any_style_model(), source, load_image(PAINTING), frames="independent")
    styled = pictures(result)
    assert mean_abs_255(styled, expected) < 6, "the library's pictures, through H.264"
    assert mean_abs_255(styled, source) > 25


def test_o_names_the_file_for_one_clip_and_is_refused_for_two(clips, tmp_path, capsys):
    target = tmp_path / "made" / "result.mp4"
    assert stylize(clips / "pan.mp4", "-o", target, models=tmp_path) == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.mp4"]
    same_clip_shape(target, clips / "pan.mp4")

    other = tmp_path / "two.mp4"
    assert stylize(clips / "pan.mp4", clips / "short.mp4", "-o", other, models=tmp_path) == 2
    err = capsys.readouterr().err
    assert f"-o {other} names one video file, but 2 clips and 0 images were given: name a folder" in err
    assert not other.exists()


def test_ctrl_c_ends_the_file_after_the_frames_done_and_exits_130(clips, tmp_path, monkeypatch, capsys):
    class InterruptedOnce(stylize_video.ConsoleProgress):
        def __call__(self, done: int, total: int, preview: object = None) -> None:
            if done == 4:
                signal.raise_signal(signal.SIGINT)  # what Ctrl+C sends; StopOnSignals holds it
            super().__call__(done, total, preview)

    monkeypatch.setattr(stylize_video, "ConsoleProgress", InterruptedOnce)
    out = tmp_path / "out"
    assert stylize(clips / "pan.mp4", "-o", out, models=tmp_path) == 130
    assert "stopped after 4 of 12 frames" in capsys.readouterr().err
    partial = out / "pan_styled.mp4"
    assert probe(partial).frames == 4 and seconds(partial) == seconds(clips / "pan.mp4")[:4]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler is given back"


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def evaluate_video(content: Path, stylized: Path, out: Path, depth_model: str = "none") -> int:
    """``depthstyle evaluate --video``, its model folder empty (beside ``out``)."""
    argv = ["--models-dir", str(out.parent / "no_models"), "evaluate", "--video", "--content", str(content)]
    return main([*argv, "--stylized", str(stylized), "-o", str(out), "--depth-model", depth_model])


def test_a_folder_of_frames_held_along_the_flow_is_stiller_than_independent_frames(clips, tmp_path):
    errors = {}
    for mode in ("flow", "independent"):
        out = tmp_path / mode
        assert stylize(clips / "frames", "-o", out, "--frames", mode, models=tmp_path) == 0
        assert sorted(p.name for p in out.iterdir()) == [f"f{i:02d}_styled.png" for i in range(12)]
        assert evaluate_video(clips / "frames", out, tmp_path / f"eval_{mode}") == 0
        summary = json.loads((tmp_path / f"eval_{mode}" / "summary.json").read_text())
        assert summary["frames"] == 12 and summary["content"] == f"12 images from {clips / 'frames'}"
        errors[mode] = summary["warp_error"]
    assert errors["flow"] < 0.5 * errors["independent"], errors


def test_a_video_file_held_along_the_flow_by_default_is_stiller_than_independent_frames(clips, tmp_path):
    errors = {}
    for mode in ("default", "independent"):
        chosen = [] if mode == "default" else ["--frames", mode]
        result = tmp_path / f"{mode}.mp4"
        assert stylize(clips / "pan.mp4", "-o", result, *chosen, models=tmp_path) == 0
        assert evaluate_video(clips / "pan.mp4", result, tmp_path / f"eval_{mode}") == 0
        errors[mode] = json.loads((tmp_path / f"eval_{mode}" / "summary.json").read_text())["warp_error"]
    assert errors["default"] < 0.5 * errors["independent"], errors


def test_evaluate_video_writes_pairs_frames_and_summary_without_depth(clips, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate_video(clips / "pan.mp4", clips / "flicker.mp4", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"warp_error", "input_warp_error", "warp_error_long", "input_warp_error_long", "frames"} <= set(
        summary
    )
    assert summary["settings"]["flow"].startswith("opencv-dis") and summary["settings"]["long_gap"] == 10
    assert summary["settings"]["depth_model"] is None and summary["frames"] == 12
    assert summary["left_out"] == ["depth agreement", "figures"]
    assert summary["mean"]["depth_absrel"] is None and 0 < summary["mean"]["ssim"] < 1
    assert "no depth model (--depth-model none)" in capsys.readouterr().err

    pairs = read_csv(out / "video_pairs.csv")
    assert [(int(r["gap"]), int(r["first"]), int(r["second"])) for r in pairs] == [
        *((1, i, i + 1) for i in range(1, 12)),
        (10, 1, 11),
        (10, 2, 12),
    ]
    short = [float(r["warp_error"]) for r in pairs if r["gap"] == "1"]
    assert summary["warp_error"] == pytest.approx(sum(short) / 11)
    floor = [float(r["input_warp_error"]) for r in pairs if r["gap"] == "1"]
    assert summary["input_warp_error"] == pytest.approx(sum(floor) / 11)
    long = [float(r["warp_error"]) for r in pairs if r["gap"] == "10"]
    assert summary["warp_error_long"] == pytest.approx(sum(long) / 2)
    assert summary["warp_error"] > 10 * summary["input_warp_error"], "the flicker shows"
    assert all(0.5 < float(r["kept"]) <= 1 for r in pairs)
    frames = read_csv(out / "metrics.csv")
    assert [int(r["frame"]) for r in frames] == list(range(1, 13))
    assert all(r["depth_absrel"] == "" and 0 < float(r["ssim"]) < 1 for r in frames)


def test_a_clip_against_itself_has_the_inputs_warping_error(clips, tmp_path):
    out = tmp_path / "self"
    assert evaluate_video(clips / "pan.mp4", clips / "pan.mp4", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warp_error"] == summary["input_warp_error"] > 0
    assert summary["warp_error_long"] == summary["input_warp_error_long"]
    assert summary["warp_error_x_input"] == 1.0
    assert summary["mean"]["ssim"] == pytest.approx(1.0) and summary["mean"]["edge_f1"] == 1.0


def test_evaluate_video_of_10_frames_or_less_leaves_the_long_gap_out(clips, tmp_path):
    out = tmp_path / "short"
    assert evaluate_video(clips / "short.mp4", clips / "short.mp4", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "warp_error_long" not in summary and summary["frames"] == 8
    assert "warp_error_long (needs more than 10 frames)" in summary["left_out"]
    assert {row["gap"] for row in read_csv(out / "video_pairs.csv")} == {"1"}
    assert len(read_csv(out / "video_pairs.csv")) == 7


def test_clips_of_different_lengths_are_an_error_naming_the_shorter(clips, tmp_path, capsys):
    for content, stylized in (("pan.mp4", "short.mp4"), ("short.mp4", "pan.mp4")):
        code = evaluate_video(clips / content, clips / stylized, tmp_path / "x")
        assert code == 2
        err = capsys.readouterr().err
        assert f"the clips have different lengths: {clips / 'short.mp4'} ends after 8 frames" in err
    assert not (tmp_path / "x" / "summary.json").exists()


def test_a_depth_model_that_cannot_be_had_offline_is_left_out_and_said(clips, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate_video(clips / "short.mp4", clips / "short.mp4", out, depth_model="small") == 0
    err = capsys.readouterr().err
    assert "depthstyle evaluate: no depth model, the depth agreement and the figures are left out" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["depth_model"] is None
    assert summary["left_out"][:2] == ["depth agreement", "figures"]


def test_evaluate_images_without_a_depth_model_measures_edges_and_ssim_only(clips, tmp_path, capsys):
    photos, styled = tmp_path / "photos", tmp_path / "styled"
    frames = pan_frames(2)
    save_image(frames[0:1], photos / "a.png")
    save_image(frames[1:2], photos / "b.png")
    save_image(frames[0:1], styled / "a_styled.png")
    save_image(1 - frames[1:2], styled / "b_styled.png")
    out = tmp_path / "out"
    argv = ["--models-dir", str(tmp_path), "evaluate", "--content", str(photos), "--stylized", str(styled)]
    assert main([*argv, "-o", str(out), "--depth-model", "none"]) == 0
    rows = read_csv(out / "metrics.csv")
    assert [Path(r["stylized"]).name for r in rows] == ["a_styled.png", "b_styled.png"]
    same, inverted = rows
    assert float(same["ssim"]) == pytest.approx(1.0) and float(same["edge_f1"]) == 1.0
    assert float(inverted["ssim"]) < 0.5
    assert all(r[name] == "" for r in rows for name in ("depth_absrel", "depth_delta1", "depth_spearman"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["left_out"] == ["depth agreement", "figures"]
    assert summary["mean"]["depth_absrel"] is None and summary["settings"]["depth_model"] is None
    assert summary["mean"]["ssim"] == pytest.approx((1 + float(inverted["ssim"])) / 2)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "summary.json"], "no figures"
    assert "no depth model (--depth-model none)" in capsys.readouterr().err


def test_with_a_depth_model_a_clip_keeps_depth_normalised_over_the_clip(clips, tmp_path, capsys):
    """The depth model sees every frame; its maps are normalised with the range found on the clip's
    sample, not per part, so a part whose own range is narrower gets the same strength as the rest."""
    models = tmp_path / "models"
    write_depth_checkpoint(models / "depth" / "tiny.safetensors", seed=5)
    base = ["--models-dir", str(models), "stylize", str(clips / "pan.mp4"), "--style", str(PAINTING)]
    kept = tmp_path / "kept"
    assert main([*base, "-o", str(kept), "--depth-model", "tiny.safetensors", "--depth-preserve", "1"]) == 0
    assert "depth model:" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main([*base, "-o", str(plain), *NO_DEPTH]) == 0
    source = pictures(clips / "pan.mp4")
    with_depth, without = pictures(kept / "pan_styled.mp4"), pictures(plain / "pan_styled.mp4")
    assert mean_abs_255(with_depth, source) < mean_abs_255(without, source), "near things keep the photo"

    estimator = load_depth_model(models / "depth" / "tiny.safetensors")
    with torch.inference_mode():
        raw = estimate_depth(estimator, source, normalization="raw")
        clip_wide = (raw - raw.min()) / (raw.max() - raw.min())
        per_part = torch.cat(
            [estimate_depth(estimator, source[i : i + 4], normalization="per_batch") for i in range(0, 12, 4)]
        )
        painting = load_image(PAINTING)
        model = load_any_style_model()
        settings = {"frames": "flow", "depth_preserve": 1.0}
        expected = stylize_any(model, source, painting, depth=clip_wide, **settings)
        by_part = stylize_any(model, source, painting, depth=per_part, **settings)
    assert (per_part - clip_wide).abs().max() > 0.05, "the parts' own ranges differ from the clip's"
    assert mean_abs_255(with_depth, expected) < mean_abs_255(with_depth, by_part)
