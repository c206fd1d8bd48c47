"""stylize_any with the real built-in weights: strength, sizes, tiles, masks, depth, paintings, video,
bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthstyle.depthstyle_core.any_style.model_file import load_any_style_model
from depthstyle.depthstyle_core.any_style.stylize import stylize_any
from depthstyle.depthstyle_core.errors import InputImageError, MaskError
from depthstyle.depthstyle_core.images import load_image
from depthstyle.depthstyle_core.models.microast import instance_normalize
from depthstyle.depthstyle_core.models.padding import pad_to_valid
from depthstyle.depthstyle_core.report.edges import detect_edges, edge_agreement
from depthstyle.depthstyle_core.stylize import luminance, resize_images, scaled_size
from depthstyle.depthstyle_core.upsample import guided_enlarge

from .bench_modules import bench_module

pytestmark = pytest.mark.usefixtures("single_thread")

DATA = Path(__file__).parent / "data" / "any_style"
STRENGTHS = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]


@pytest.fixture(scope="module")
def model():
    return load_any_style_model()


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return load_image(DATA / "content.png")[..., ::2, ::2].contiguous()  # 120 x 192


@pytest.fixture(scope="module")
def painting() -> torch.Tensor:
    return load_image(DATA / "style.png")


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().mean().item()


def looks_saturated(image: torch.Tensor) -> bool:
    """A one-colour, clipped picture: most values at 0 or 1, or hardly any variation left."""
    clipped = ((image <= 0) | (image >= 1)).float().mean().item()
    return clipped > 0.2 or image.std(dim=(2, 3)).mean().item() < 0.05


def authors_alpha(model, photo, painting, alpha: float) -> torch.Tensor:
    """The authors' feature-space alpha (their decoder with ``alpha * adain + (1 - alpha) * x``)."""
    with torch.no_grad():
        signals = model.style_signals(painting)
        x = model.content_features(pad_to_valid(photo))
        for index, stage in enumerate(signals.stages):
            adain = instance_normalize(x) * stage.std + stage.mean
            block = model.decoder.dec1 if index == 0 else model.decoder.dec2
            x = block(alpha * adain + (1 - alpha) * x, stage.weight, stage.bias)
        return model.head(x).clamp(0, 1)


def test_strength_zero_is_the_photo_exactly(model, photo, painting):
    assert torch.equal(stylize_any(model, photo, painting, strength=0.0), photo)


def test_the_distance_to_the_photo_grows_steadily_and_nothing_saturates(model, photo, painting):
    results = [stylize_any(model, photo, painting, strength=s) for s in STRENGTHS]
    distances = [distance(r, photo) for r in results]
    steps = [b - a for a, b in zip(distances, distances[1:], strict=False)]
    assert all(step > 0 for step in steps), distances
    assert max(steps) < 3 * min(steps), f"uneven steps: {distances}"
    assert not any(looks_saturated(r) for r in results)
    assert looks_saturated(authors_alpha(model, photo, painting, 0.5)), (
        "the check must catch the known failure"
    )


def test_sizes_come_back_at_their_own_size_and_tiles_equal_whole(model, painting):
    for height, width in [(1, 1), (7, 5), (383, 511), (3, 4000)]:
        photo = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
        whole = stylize_any(model, photo, painting)
        assert whole.shape == (1, 3, height, width)
        assert bool(torch.isfinite(whole).all())
        if max(height, width) > 200:
            tiled = stylize_any(model, photo, painting, tile=192)
            assert (tiled - whole).abs().max().item() <= 1 / 255


def test_tiles_really_run_as_tiles_and_agree_with_a_mask_and_depth(model, photo, painting):
    depth = torch.linspace(0, 1, photo.shape[-2]).view(1, 1, -1, 1).expand(1, 1, -1, photo.shape[-1])
    settings = {"depth": depth, "depth_preserve": 0.7, "strength": 0.8}
    calls = []
    tiled = stylize_any(
        model, photo, painting, tile=160, on_progress=lambda *c: calls.append(c[:2]), **settings
    )
    assert calls[-1] == (2, 2), f"192 px wide in tiles of 160: two tiles, {calls}"
    assert (tiled - stylize_any(model, photo, painting, **settings)).abs().max().item() <= 1 / 255


def test_a_zero_mask_keeps_the_photo_exactly_and_a_uniform_mask_equals_the_strength(model, photo, painting):
    mask = torch.zeros(1, 1, *photo.shape[-2:])
    mask[..., photo.shape[-1] // 2 :] = 1
    result = stylize_any(model, photo, painting, mask=mask)
    left = photo.shape[-1] // 2
    assert torch.equal(result[..., :left], photo[..., :left])
    assert distance(result[..., left + 16 :], photo[..., left + 16 :]) > 0.1
    uniform = torch.full((1, 1, 10, 10), 0.6)
    torch.testing.assert_close(
        stylize_any(model, photo, painting, mask=uniform),
        stylize_any(model, photo, painting, strength=0.6),
        atol=1e-5,
        rtol=0,
    )
    with pytest.raises(MaskError, match="got 2 masks for 1 images"):
        stylize_any(model, photo, painting, mask=torch.ones(2, 8, 8))


def test_depth_preserve_keeps_near_things_and_leaves_far_things(model, photo, painting):
    height = photo.shape[-2]
    depth = torch.zeros(1, 1, *photo.shape[-2:])
    depth[..., height // 2 :, :] = 1.0  # bottom half near, top half far
    plain = stylize_any(model, photo, painting)
    kept = stylize_any(model, photo, painting, depth=depth, depth_preserve=0.8)
    near, far = slice(height // 2 + 12, None), slice(None, height // 2 - 12)
    assert distance(kept[..., near, :], photo[..., near, :]) < 0.5 * distance(
        plain[..., near, :], photo[..., near, :]
    )
    far_plain = distance(plain[..., far, :], photo[..., far, :])
    assert abs(distance(kept[..., far, :], photo[..., far, :]) - far_plain) < 0.1 * far_plain
    assert torch.equal(stylize_any(model, photo, painting, depth=depth, depth_preserve=0.0), plain)


def test_paintings_blend_by_weight_and_any_sizes_mix(model, photo, painting):
    other = torch.rand(1, 3, 61, 47, generator=torch.Generator().manual_seed(3))
    first = stylize_any(model, photo, painting)
    torch.testing.assert_close(stylize_any(model, photo, [painting, other], style_weights=[1, 0]), first)
    blend = stylize_any(model, photo, [painting, other], style_weights=[1, 1])
    second = stylize_any(model, photo, other)
    assert distance(blend, first) > 0.01 and distance(blend, second) > 0.01
    batch = torch.cat([painting, painting.flip(-1)])
    assert stylize_any(model, photo, batch).shape == photo.shape
    with pytest.raises(ValueError, match="got 3 style weights for 2 paintings"):
        stylize_any(model, photo, [painting, other], style_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="not all 0"):
        stylize_any(model, photo, [painting, other], style_weights=[0, 0])


def test_style_size_changes_the_scale_of_the_painting(model, photo, painting):
    small = stylize_any(model, photo, painting, style_size=64)
    assert distance(small, stylize_any(model, photo, painting, style_size=0)) > 0.01


def test_grey_and_rgba_inputs_work(model, photo, painting):
    grey = photo.mean(dim=1, keepdim=True)
    assert stylize_any(model, grey, painting).shape == photo.shape
    rgba = torch.cat([photo, torch.ones_like(photo[:, :1])], dim=1)
    torch.testing.assert_close(stylize_any(model, rgba, painting), stylize_any(model, photo, painting))
    assert stylize_any(model, photo, painting[:, :1]).shape == photo.shape


def test_preserve_color_keeps_the_photos_colours(model, photo, painting):
    from depthstyle.depthstyle_core.stylize import luminance

    kept = stylize_any(model, photo, painting, preserve_color=True)
    painted = stylize_any(model, photo, painting)
    chroma = lambda x: x - luminance(x)  # noqa: E731
    assert distance(chroma(kept), chroma(photo)) < 0.5 * distance(chroma(painted), chroma(photo))


def test_shared_frames_cut_the_flicker_of_a_pan_at_least_in_half(model, painting):
    bench = bench_module("flicker_bench")
    count, size, shift = 12, 96, 12
    photo = bench.synthetic_photo(size + 32, size + (count - 1) * shift + 32)
    pan = bench.pan_frames(photo, count, size, shift)
    result = bench.measure(lambda frames, mode: stylize_any(model, frames, painting, frames=mode), pan, shift)
    assert result["independent_flicker"] > 0.01, result
    assert result["shared_flicker"] <= result["independent_flicker"] / 2, result


def test_shared_frames_do_not_depend_on_the_chunk_size(model, photo, painting):
    frames = torch.cat([photo, photo.roll(8, dims=-1), photo.roll(16, dims=-1)])
    whole = stylize_any(model, frames, painting, frames="shared", strength=0.7, chunk_size=3)
    chunked = stylize_any(model, frames, painting, frames="shared", strength=0.7, chunk_size=1)
    torch.testing.assert_close(chunked, whole, atol=2e-5, rtol=0)
    independent = stylize_any(model, frames, painting, strength=0.7)
    assert distance(whole, independent) > 1e-3


@pytest.mark.parametrize(
    ("photo_value", "style_value", "message"),
    [
        (torch.full((1, 3, 8, 8), float("nan")), torch.rand(1, 3, 8, 8), "photo contains NaN"),
        (torch.rand(1, 3, 8, 8), torch.full((1, 3, 8, 8), float("inf")), "painting 1 contains NaN"),
        (torch.rand(0, 3, 8, 8), torch.rand(1, 3, 8, 8), "empty batch"),
        (torch.rand(1, 3, 8, 8), [], "no painting given"),
        (torch.rand(1, 3, 8, 8), torch.rand(8, 8), "must be an image tensor"),
    ],
)
def test_bad_inputs_are_clear_errors(model, photo_value, style_value, message):
    with pytest.raises(InputImageError, match=message):
        stylize_any(model, photo_value, style_value)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"strength": 1.5}, "strength must be a number from 0 to 1"),
        ({"depth_preserve": -0.1}, "depth_preserve must be a number from 0 to 1"),
        ({"tile": 64}, "tile must be 0"),
        ({"frames": "video"}, "frames must be one of"),
        ({"style_size": -1}, "style_size must be 0"),
        ({"scale": 0}, "scale must be above 0 and at most 4"),
        ({"scale": 5}, "scale must be above 0 and at most 4"),
    ],
)
def test_bad_settings_are_clear_errors(model, photo, painting, setting, message):
    with pytest.raises(ValueError, match=message):
        stylize_any(model, photo, painting, **setting)


def test_a_missing_or_broken_painting_file_is_named(tmp_path):
    with pytest.raises(InputImageError, match="image file not found"):
        load_image(tmp_path / "nope.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(InputImageError, match="cannot read .*broken.jpg"):
        load_image(broken)


def test_signals_made_once_give_the_same_result_as_the_painting(model, photo, painting):
    from depthstyle.depthstyle_core.any_style.signals import style_signals

    signals = style_signals(model, [painting, painting.flip(-1)], style_weights=[2, 1], style_size=128)
    for strength in (1.0, 0.4):
        expected = stylize_any(
            model,
            photo,
            [painting, painting.flip(-1)],
            style_weights=[2, 1],
            style_size=128,
            strength=strength,
        )
        torch.testing.assert_close(
            stylize_any(model, photo, signals, style_size=128, strength=strength), expected
        )
    with pytest.raises(ValueError, match="already blended"):
        stylize_any(model, photo, signals, style_weights=[1])


def test_the_callers_network_is_left_as_it_was_and_a_prepared_one_is_used_as_it_is(photo, painting):
    from depthstyle.depthstyle_core.any_style.stylize import runnable

    model = load_any_style_model().train(True)
    weight = model.content_encoder.enc1[0].conv_layer.weight
    result = stylize_any(model, photo, painting)
    assert (
        model.training
        and weight.is_contiguous()
        and not weight.is_contiguous(memory_format=torch.channels_last)
    )
    prepared = load_any_style_model().to(memory_format=torch.channels_last)
    assert runnable(prepared, torch.device("cpu")) is prepared
    assert runnable(model, torch.device("cpu")) is not model
    torch.testing.assert_close(stylize_any(prepared, photo, painting), result)


def test_a_device_without_an_index_is_the_current_one():
    from depthstyle.depthstyle_core.devices import same_device

    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cpu"), torch.device("meta"))
    assert same_device(torch.device("meta", 0), torch.device("meta")) and not same_device(
        torch.device("meta", 0), torch.device("meta", 1)
    )


def test_a_scale_paints_the_resized_photo_and_brings_it_back_guided_by_the_photo(model, painting):
    """Brush size: scale 0.5 is the half-size photo painted, enlarged guided by the full photo (so its
    strokes are twice as large), exactly; an odd size comes back at its size; 2 paints finer strokes."""
    photo = load_image(DATA / "content.png")[..., :239, :383]
    small = resize_images(photo, scaled_size(239, 383, 0.5)).clamp(0, 1)
    expected = guided_enlarge(stylize_any(model, small, painting), small, photo)
    assert torch.equal(stylize_any(model, photo, painting, scale=0.5), expected)
    finer = stylize_any(model, photo, painting, scale=2.0)
    large = stylize_any(model, resize_images(photo, (478, 766)).clamp(0, 1), painting)
    assert finer.shape == photo.shape
    assert distance(finer, resize_images(large, (239, 383))) < 1e-6
    assert torch.equal(stylize_any(model, photo, painting, scale=1.0), stylize_any(model, photo, painting))


def test_a_scale_keeps_masks_and_depth_at_the_photos_size(model, photo, painting):
    mask = torch.zeros(1, 1, *photo.shape[-2:])
    mask[..., :, : photo.shape[-1] // 2] = 1
    half = stylize_any(model, photo, painting, scale=0.5, mask=mask)
    left, right = half[..., : photo.shape[-1] // 2], half[..., photo.shape[-1] // 2 :]
    assert torch.equal(right, photo[..., photo.shape[-1] // 2 :]), "mask 0 is the photo, pixel for pixel"
    assert distance(left, photo[..., : photo.shape[-1] // 2]) > 0.05
    near = torch.ones(1, 1, *photo.shape[-2:])
    kept = stylize_any(model, photo, painting, scale=0.5, depth=near, depth_preserve=1.0)
    assert torch.equal(kept, photo), "the nearest things keep the whole photo at any scale"


def test_the_guided_enlargement_keeps_more_outlines_than_bicubic(model, painting):
    """Measured with the structure report's edge F1 against the photo (the README's choice)."""
    photo = load_image(DATA / "content.png")
    small = resize_images(photo, scaled_size(*photo.shape[-2:], 0.5)).clamp(0, 1)
    painted = stylize_any(model, small, painting)
    edges = detect_edges(luminance(photo))[0]

    def f1(result: torch.Tensor) -> float:
        return edge_agreement(edges, detect_edges(luminance(result))[0], 2).f1

    guided = f1(stylize_any(model, photo, painting, scale=0.5))
    bicubic = f1(resize_images(painted, tuple(photo.shape[-2:])).clamp(0, 1))
    assert guided > bicubic + 0.02, (guided, bicubic)
