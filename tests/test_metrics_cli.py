"""``depthstyle evaluate`` and ``depthstyle compare`` through the real entry point, with tiny random-weight
depth, VGG-16 and style networks in a model folder."""

import csv
import json
from pathlib import Path

import pytest
import torch

from depthstyle.cli import main
from depthstyle.cli.compare import markdown_table
from depthstyle.cli.compare_models import model_labels
from depthstyle.cli.evaluate import pair_by_stem
from depthstyle.depthstyle_core.images import load_image, save_image
from depthstyle.depthstyle_core.models.transformer_net import TransformerNet
from depthstyle.depthstyle_core.style_model import save_style_model

from .factories import write_depth_checkpoint, write_vgg_checkpoint

FAST = ["--depth-model", "tiny.safetensors", "--resolution", "28"]


def photo(height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.06).float()
    image = torch.stack([x, y, 0.3 + 0.6 * disc])[None]
    return (image + 0.05 * torch.rand(image.shape, generator=gen)).clamp(0, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory, single_thread) -> Path:
    folder = tmp_path_factory.mktemp("models")
    write_depth_checkpoint(folder / "depth" / "tiny.safetensors", seed=1)
    write_vgg_checkpoint(folder / "vgg" / "vgg16.tv_in1k.safetensors")
    for seed, name in ((0, "baseline"), (1, "depth_aware")):
        torch.manual_seed(seed)
        save_style_model(folder / "styles" / f"{name}.safetensors", TransformerNet())
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_pairing_by_stem_finds_styled_optimised_and_same_stem_files():
    contents = [Path("p/a.jpg"), Path("p/b.png"), Path("p/c.jpg"), Path("p/d.jpg"), Path("q/d.png")]
    stylized = [Path("s/a_styled.png"), Path("s/a_optimized.png"), Path("s/b.png"), Path("s/x_styled.png")]
    stylized.append(Path("s/d_styled.png"))
    pairs, skipped = pair_by_stem(contents, stylized)
    assert pairs == [
        (Path("p/a.jpg"), Path("s/a_styled.png")),
        (Path("p/a.jpg"), Path("s/a_optimized.png")),
        (Path("p/b.png"), Path("s/b.png")),
    ]
    reasons = {item["file"]: item["reason"] for item in skipped}
    assert set(reasons) == {"s/x_styled.png", "p/c.jpg", "p/d.jpg", "q/d.png"}
    assert reasons["s/x_styled.png"] == "no content image to compare with (looked for x_styled.* or x.*)"
    assert "c_styled.*" in reasons["p/c.jpg"] and "c_optimized.*" in reasons["p/c.jpg"]
    assert "more than one content image is named d.*" in reasons["q/d.png"]


def test_pairing_prefers_the_exact_stem():
    pairs, skipped = pair_by_stem([Path("a.jpg"), Path("a_styled.jpg")], [Path("o/a_styled.png")])
    assert pairs == [(Path("a_styled.jpg"), Path("o/a_styled.png"))]
    assert [item["file"] for item in skipped] == ["a.jpg"]


def test_evaluate_writes_metrics_summary_and_figures_and_reports_skipped_files(models, tmp_path, capsys):
    photos, styled = tmp_path / "photos", tmp_path / "styled"
    first, second = photo(40, 52, 0), photo(33, 47, 1)
    save_image(first, photos / "first.png")
    save_image(second, photos / "second.jpg")
    save_image(photo(20, 20, 2), photos / "lonely.png")
    save_image(first, styled / "first_styled.png")  # the photo itself: perfect scores
    save_image(1 - second, styled / "second_optimized.png")
    (styled / "broken_styled.png").parent.mkdir(exist_ok=True)
    save_image(first, photos / "broken.png")
    (styled / "broken_styled.png").write_bytes(b"not a png")
    style = save_image(photo(36, 36, 5), tmp_path / "style.png")
    out = tmp_path / "out"
    argv = ["--models-dir", str(models), "evaluate", "--content", str(photos), "--stylized", str(styled)]
    code = main([*argv, "-o", str(out), "--style", str(style), *FAST])
    assert code == 3, "skipped files must show in the exit status"
    err = capsys.readouterr().err
    assert "skipped 2" in err and "lonely.png: no stylised image for it" in err
    assert "broken_styled.png" in err and "cannot read" in err

    rows = read_csv(out / "metrics.csv")
    assert [Path(r["stylized"]).name for r in rows] == ["first_styled.png", "second_optimized.png"]
    same, inverted = rows
    assert float(same["ssim"]) == pytest.approx(1.0) and float(same["edge_f1"]) == 1.0
    assert float(same["depth_absrel"]) < 1e-6 and float(same["depth_spearman"]) == pytest.approx(1.0)
    assert float(inverted["ssim"]) < 0.5 and float(inverted["depth_absrel"]) > 0.01
    assert float(same["style_distance"]) > 0 and float(inverted["style_distance"]) > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["depth_resolution"] == 28 and summary["settings"]["edge_tolerance_px"] == 2
    assert summary["mean"]["ssim"] == pytest.approx((1.0 + float(inverted["ssim"])) / 2)
    assert len(summary["pairs"]) == 2 and len(summary["skipped"]) == 2
    assert load_image(out / "first_styled_report.png").shape[-1] > 5 * 52
    assert (out / "second_optimized_report.png").is_file()


def test_evaluate_without_style_leaves_the_style_column_empty_and_exits_0(models, tmp_path):
    save_image(photo(30, 30, 0), tmp_path / "a.png")
    save_image(photo(30, 30, 1), tmp_path / "s" / "a_styled.png")
    out = tmp_path / "out"
    code = main(["--models-dir", str(models), "evaluate", "--content", str(tmp_path / "a.png")] + [
        "--stylized", str(tmp_path / "s"), "-o", str(out), *FAST, "--edge-tolerance", "0"
    ])  # fmt: skip
    assert code == 0
    (row,) = read_csv(out / "metrics.csv")
    assert row["style_distance"] == "" and 0 < float(row["edge_f1"]) < 1
    assert json.loads((out / "summary.json").read_text())["settings"]["edge_tolerance_px"] == 0


def test_evaluate_errors_name_what_is_wrong(models, tmp_path, capsys):
    save_image(photo(30, 30, 0), tmp_path / "a.png")
    save_image(photo(30, 30, 1), tmp_path / "s" / "b_styled.png")
    base = [
        "--models-dir",
        str(models),
        "evaluate",
        "--content",
        str(tmp_path / "a.png"),
        "-o",
        str(tmp_path),
    ]
    assert main([*base, "--stylized", str(tmp_path / "s"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "depthstyle evaluate: error: no (content, stylised) pairs found" in err
    assert "b_styled.png: no content image to compare with (looked for b_styled.* or b.*)" in err
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--stylized", str(tmp_path / "s"), "--edge-tolerance", "-1"])
    assert exit_info.value.code == 2
    assert "--edge-tolerance: must be 0 or more pixels, got -1" in capsys.readouterr().err


def test_compare_writes_a_table_per_model_and_a_figure_per_image(models, tmp_path, capsys):
    images = tmp_path / "images"
    save_image(photo(40, 52, 0), images / "one.png")
    save_image(photo(31, 45, 1), images / "two.jpg")
    (images / "bad.png").write_bytes(b"broken")
    out = tmp_path / "out"
    argv = ["--models-dir", str(models), "compare", "--models", "baseline.safetensors"]
    argv += [str(models / "styles" / "depth_aware.safetensors"), "--images", str(images), "-o", str(out)]
    assert main([*argv, *FAST]) == 3
    assert "bad.png" in capsys.readouterr().err
    table = (out / "table.md").read_text()
    lines = table.splitlines()
    assert lines[0].startswith("| model | photos | depth AbsRel ↓ | δ<1.25 ↑ | Spearman ρ ↑ | edge F1 ↑")
    assert "style distance" not in lines[0], "no --style: no style column"
    assert lines[2].startswith("| baseline | 2 | ") and lines[3].startswith("| depth_aware | 2 | ")
    rows = read_csv(out / "metrics.csv")
    assert [(r["model"], Path(r["image"]).name) for r in rows] == [
        ("baseline", "one.png"),
        ("depth_aware", "one.png"),
        ("baseline", "two.jpg"),
        ("depth_aware", "two.jpg"),
    ]
    summary = json.loads((out / "summary.json").read_text())
    ssims = [float(r["ssim"]) for r in rows if r["model"] == "baseline"]
    assert summary["mean"]["baseline"]["ssim"] == pytest.approx(sum(ssims) / 2)
    assert f"{summary['mean']['baseline']['ssim']:.3f}" in lines[2]
    assert summary["settings"]["models"]["baseline"] == "baseline.safetensors"
    styled = load_image(out / "stylized" / "depth_aware" / "two_styled.png")
    assert styled.shape == (1, 3, 31, 45)
    assert not torch.equal(styled, load_image(out / "stylized" / "baseline" / "two_styled.png"))
    assert load_image(out / "one_compare.png").shape[-1] > 3 * 52 and (out / "two_compare.png").is_file()


def test_model_labels_and_the_table_with_a_style_column():
    assert model_labels(["a/x.safetensors", "b/x.safetensors", "y.safetensors"]) == ["x (1)", "x (2)", "y"]
    means = {
        "m": {"depth_absrel": 0.5, "ssim": None, "edge_f1": None, "style_distance": 2.5e-05},
        "n": {"depth_absrel": 0.25, "ssim": 0.75, "edge_f1": None, "style_distance": 0.0},
    }
    lines = markdown_table(means, {"m": 3, "n": 2}, {"depth_model": "tiny", "style": None}).splitlines()
    assert lines[0] == "| model | photos | depth AbsRel ↓ | SSIM ↑ | style distance ↓ |", (
        "no edge F1 anywhere"
    )
    assert lines[2:4] == ["| m | 3 | 0.500 | n/a | 2.500e-05 |", "| n | 2 | 0.250 | 0.750 | 0.000 |"]
    assert "Settings: depth_model tiny." in lines[5]
