"""Per-image style optimisation on the CPU: what each loss term does, sizes, blends, cancel, NaN, errors.

Real VGG16Features with random weights and the tiny Depth Anything from tests/factories.py, at 64 px
(the smallest working size), so every run takes a second or two.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from depthstyle.depthstyle_core.depth import depth_for_loss
from depthstyle.depthstyle_core.errors import (
    InputImageError,
    MaskError,
    OptimizationError,
    OptimizationStopped,
    SettingsError,
)
from depthstyle.depthstyle_core.losses import depth_loss, gram_matrix
from depthstyle.depthstyle_core.models.vgg import VGG16Features
from depthstyle.depthstyle_core.stylize import blend_with_content, luminance
from depthstyle.trainers import OptimizeConfig, optimize_style
from depthstyle.trainers.optimize.config import GATYS_STYLE_LAYERS
from depthstyle.trainers.optimize.objective import ScaleObjective
from depthstyle.trainers.optimize.plan import MIN_WORK_SIDE, output_size, plan_sizes
from depthstyle.trainers.run.loss_networks import cpu_has_native_bf16

from .factories import smooth_images

pytestmark = pytest.mark.usefixtures("single_thread")

QUICK = {"size": 64, "min_size": 64, "steps": 15, "first_scale_steps": 15, "depth_resolution": 56}


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return smooth_images(1, 64, 64, seed=1)


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    return smooth_images(1, 64, 64, seed=2)


def noise_like(image: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.rand(image.shape, generator=torch.Generator().manual_seed(seed))


def relative_gram_losses(vgg, image, style) -> torch.Tensor:
    """The Gram loss of each Gatys style layer, divided by that of the noise start (seed 0)."""
    with torch.no_grad():
        target = vgg(style, taps=GATYS_STYLE_LAYERS)
        ours = vgg(image, taps=GATYS_STYLE_LAYERS)
        noise = vgg(noise_like(image, 0), taps=GATYS_STYLE_LAYERS)
    return torch.stack(
        [
            F.mse_loss(gram_matrix(ours[layer]), gram_matrix(target[layer]))
            / F.mse_loss(gram_matrix(noise[layer]), gram_matrix(target[layer]))
            for layer in GATYS_STYLE_LAYERS
        ]
    )


def test_style_only_from_noise_removes_nearly_all_of_the_gram_loss(vgg, content, style):
    config = OptimizeConfig(
        **{**QUICK, "steps": 100, "first_scale_steps": 100},
        content_weight=0,
        depth_weight=0,
        tv_weight=0,
        init="noise",
    )
    result = optimize_style(content, style, vgg=vgg, config=config)
    relative = relative_gram_losses(vgg, result, style)
    assert float(relative.mean()) < 0.1, relative
    assert bool((relative < 0.2).all()), relative


def test_content_only_from_noise_approaches_the_content(vgg, content, style):
    # relu2_1 rather than the default relu4_2: with random weights the deep layers keep little of the
    # picture, so pixels can only be recovered from a shallow layer.
    config = OptimizeConfig(
        **{**QUICK, "steps": 60, "first_scale_steps": 60},
        style_weight=0,
        depth_weight=0,
        tv_weight=0,
        init="noise",
        content_layer="relu2_1",
    )
    result = optimize_style(content, style, vgg=vgg, config=config)
    start = F.mse_loss(noise_like(content, 0), content)
    assert float(F.mse_loss(result, content)) < 0.2 * float(start)


def test_the_depth_term_keeps_the_depth_layout(vgg, depth_net, content, style):
    def depth_error(depth_weight: float) -> float:
        config = OptimizeConfig(**{**QUICK, "steps": 40, "first_scale_steps": 40}, depth_weight=depth_weight)
        result = optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config)
        with torch.no_grad():
            ours, photo = depth_for_loss(depth_net, result, 56), depth_for_loss(depth_net, content, 56)
        return float(depth_loss(ours, photo))

    without, with_depth = depth_error(0.0), depth_error(5.0)
    assert with_depth < 0.25 * without, (with_depth, without)


def test_weights_are_scale_free_and_mean_shares_of_a_noise_image(vgg, depth_net, content, style):
    config = OptimizeConfig(**QUICK, content_weight=1, style_weight=5, depth_weight=5, tv_weight=2)
    objective = ScaleObjective(content, [style], config, vgg, depth_net, scale_index=0)
    reference = torch.rand(content.shape, generator=torch.Generator().manual_seed(7919))
    _, terms = objective(reference)
    assert {name: round(float(value), 4) for name, value in terms.items()} == {
        "content": 1.0,
        "style": 5.0,
        "depth": 5.0,
        "tv": 2.0,
    }
    # Every VGG feature x10 (the first conv's weight and every bias x10; ReLU and max-pooling pass it
    # on): raw content losses grow 100x and style losses 10 000x, the scale-free terms stay the same.
    louder = VGG16Features()
    louder.load_state_dict(vgg.state_dict())
    with torch.no_grad():
        louder.features[0].weight.mul_(10)
        for layer in louder.features:
            if isinstance(layer, nn.Conv2d):
                layer.bias.mul_(10)
    image = smooth_images(1, 64, 64, seed=5)
    loud = ScaleObjective(content, [style], config, louder, depth_net, scale_index=0)
    raw_quiet, raw_loud = objective.raw_terms(image), loud.raw_terms(image)
    torch.testing.assert_close(raw_loud["content"], 100 * raw_quiet["content"], rtol=1e-3, atol=0)
    torch.testing.assert_close(raw_loud["style"], 1e4 * raw_quiet["style"], rtol=1e-3, atol=0)
    _, quiet_terms = objective(image)
    _, loud_terms = loud(image)
    for name in ("content", "style"):
        torch.testing.assert_close(loud_terms[name], quiet_terms[name], rtol=1e-4, atol=0)


def test_same_seed_same_result_and_the_seed_matters(vgg, content, style):
    config = OptimizeConfig(**QUICK, depth_weight=0, init="noise", seed=3)
    first = optimize_style(content, style, vgg=vgg, config=config)
    again = optimize_style(content, style, vgg=vgg, config=config)
    other = optimize_style(
        content, style, vgg=vgg, config=OptimizeConfig(**{**QUICK, "seed": 4}, depth_weight=0, init="noise")
    )
    assert torch.equal(first, again)
    assert float((first - other).abs().max()) > 0.05


def test_style_blend_weights_one_and_zero_equal_the_first_style_alone(vgg, content, style):
    other = smooth_images(1, 80, 48, seed=9)
    alone = optimize_style(content, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    blended = optimize_style(
        content, [style, other], vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0, style_weights=(1, 0))
    )
    mixed = optimize_style(content, [style, other], vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    assert torch.equal(alone, blended)
    assert float((alone - mixed).abs().max()) > 0.01


def test_strength_zero_returns_the_input_exactly(vgg, content, style):
    photo = torch.rand(1, 3, 37, 53)
    config = OptimizeConfig(size=0, strength=0.0, depth_weight=0)
    assert torch.equal(optimize_style(photo, style, vgg=vgg, config=config), photo)


def test_strength_and_preserve_color_act_as_in_stylize(vgg, content, style):
    full = optimize_style(content, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    kept = optimize_style(
        content, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0, preserve_color=True)
    )
    half = optimize_style(
        content, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0, strength=0.5)
    )
    assert torch.equal(kept, blend_with_content(content, full, preserve_color=True))
    assert torch.equal(half, blend_with_content(content, full, strength=0.5))
    # The chroma (colour minus luminance) is the photo's wherever nothing was clipped.
    unclipped = ((kept > 0) & (kept < 1)).all(dim=1, keepdim=True)
    chroma = (kept - luminance(kept)) - (content - luminance(content))
    assert float(chroma.abs().masked_select(unclipped).max()) < 1e-5
    assert float((full - content).abs().max()) > 0.05


def test_where_the_mask_is_zero_the_result_is_the_photo_exactly(vgg, style):
    photo = smooth_images(2, 64, 80, seed=12)
    mask = torch.zeros(64, 80)
    mask[:, 40:] = 1.0
    config = OptimizeConfig(size=0, min_size=64, steps=5, first_scale_steps=5, depth_weight=0)
    result = optimize_style(photo, style, vgg=vgg, config=config, mask=mask)
    assert torch.equal(result[..., :40], photo[..., :40])
    assert float((result[..., 40:] - photo[..., 40:]).abs().mean()) > 0.01
    with pytest.raises(MaskError):
        optimize_style(photo, style, vgg=vgg, config=config, mask=torch.ones(3, 64, 80))


def test_a_batch_is_optimised_together_as_independent_images(vgg, style):
    photos = smooth_images(2, 64, 64, seed=11)
    together = optimize_style(photos, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    assert together.shape == (2, 3, 64, 64)
    for index in range(2):
        alone = optimize_style(
            photos[index : index + 1], style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0)
        )
        # Equal up to float noise, which Adam turns into small steps where a gradient is nearly 0.
        change = float((alone - photos[index]).abs().mean())
        assert float((together[index] - alone[0]).abs().mean()) < 0.1 * change


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((1, 3, 1, 1), 0, (1, 1)),
        ((1, 3, 37, 251), 0, (37, 251)),
        ((1, 3, 37, 251), 96, (14, 96)),
        ((1, 1, 50, 40), 0, (50, 40)),
        ((1, 4, 40, 50), 72, (58, 72)),
    ],
)
def test_any_size_and_channel_count_comes_out_rgb_at_the_documented_size(vgg, style, shape, size, expected):
    photo = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    config = OptimizeConfig(size=size, min_size=64, steps=2, first_scale_steps=2, depth_weight=0)
    result = optimize_style(photo, style, vgg=vgg, config=config)
    assert result.shape == (1, 3, *expected)
    assert output_size(shape[2], shape[3], size) == expected
    assert float(result.min()) >= 0 and float(result.max()) <= 1


def test_sizes_coarse_to_fine_and_never_below_the_working_minimum():
    plan = plan_sizes(384, 512, 512, min_size=128, scale_step=2**0.5)
    assert [max(s) for s in plan.scales] == [128, 181, 256, 362, 512]
    assert plan.scales[-1] == plan.working == plan.output == (384, 512)
    narrow = plan_sizes(37, 251, 0, min_size=128, scale_step=2**0.5)
    assert narrow.output == (37, 251) and min(narrow.working) == MIN_WORK_SIDE
    assert all(min(scale) >= MIN_WORK_SIDE for scale in narrow.scales)
    tiny = plan_sizes(1, 1, 0, min_size=128, scale_step=2**0.5)
    assert tiny.scales == ((64, 64),) and tiny.output == (1, 1)
    with pytest.raises(InputImageError, match="too narrow to optimise"):
        plan_sizes(1, 4000, 0, min_size=128, scale_step=2**0.5)


def test_a_style_much_larger_than_the_content_is_resized_to_it(vgg, content):
    big_style = smooth_images(1, 900, 700, seed=4)
    progress = []
    result = optimize_style(
        content,
        big_style,
        vgg=vgg,
        config=OptimizeConfig(**QUICK, depth_weight=0),
        on_progress=lambda done, total, preview: progress.append((done, total, preview)),
    )
    assert result.shape == (1, 3, 64, 64)
    assert [done for done, _, _ in progress] == list(range(1, 16)) and progress[-1][1] == 15
    assert progress[-1][2].shape == (1, 3, 64, 64)


def test_progress_counts_every_step_of_every_scale_with_previews(vgg, style):
    photo = smooth_images(1, 96, 128, seed=6)
    seen = []
    config = OptimizeConfig(
        size=128, min_size=90, steps=4, first_scale_steps=6, preview_every=3, depth_weight=0
    )
    result = optimize_style(
        photo, style, vgg=vgg, config=config, on_progress=lambda d, t, p: seen.append((d, t, p))
    )
    assert result.shape == (1, 3, 96, 128)
    assert [d for d, _, _ in seen] == list(range(1, 11)) and {t for _, t, _ in seen} == {10}
    previews = {d: tuple(p.shape) for d, _, p in seen if p is not None}
    assert previews == {3: (1, 3, 68, 90), 6: (1, 3, 68, 90), 9: (1, 3, 96, 128), 10: (1, 3, 96, 128)}


def test_should_stop_ends_the_run_with_the_picture_so_far(vgg, content, style):
    calls = []

    def stop_after_five() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(OptimizationStopped) as info:
        optimize_style(
            content,
            style,
            vgg=vgg,
            config=OptimizeConfig(**QUICK, depth_weight=0, strength=0.5),
            should_stop=stop_after_five,
        )
    stopped = info.value
    assert (stopped.step, stopped.total) == (5, 15)
    assert "stopped after 5 of 15 steps" in str(stopped)
    assert stopped.partial.shape == (1, 3, 64, 64)
    assert 0 < float((stopped.partial - content).abs().max()) < 1


def test_a_nan_loss_stops_with_a_clear_message(vgg, content, style):
    broken = VGG16Features()
    broken.load_state_dict(vgg.state_dict())
    with torch.no_grad():
        broken.features[5].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(OptimizationError) as info:
        optimize_style(content, style, vgg=broken, config=OptimizeConfig(**QUICK, depth_weight=0))
    message = str(info.value)
    assert "loss became NaN or infinite at scale 1 of 1 (64x64 px), by step 1 of 15" in message
    assert "model files are intact" in message


def test_bad_inputs_and_settings_are_named(vgg, content, style):
    with pytest.raises(ValueError, match="no depth model was given"):
        optimize_style(content, style, vgg=vgg, config=OptimizeConfig(**QUICK))
    with pytest.raises(ValueError, match="2 style weights were given for 1 style images"):
        optimize_style(
            content, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0, style_weights=(1, 1))
        )
    nan_photo = content.clone()
    nan_photo[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputImageError, match="content image contains NaN"):
        optimize_style(nan_photo, style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    with pytest.raises(InputImageError, match="no style image"):
        optimize_style(content, [], vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))
    with pytest.raises(InputImageError, match="expected 1 to 4 colour channels"):
        optimize_style(torch.rand(1, 5, 8, 8), style, vgg=vgg, config=OptimizeConfig(**QUICK, depth_weight=0))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"steps": 0}, "steps must be a whole number >= 1"),
        ({"size": -1}, "size must be a whole number >= 0"),
        ({"init": "grey"}, "init must be one of"),
        ({"style_weight": -1.0}, "style_weight must be a finite number >= 0"),
        ({"content_weight": 0, "style_weight": 0, "depth_weight": 0, "tv_weight": 0}, "at least one of"),
        ({"style_layers": ("relu9_9",)}, "VGG layers must be among"),
        ({"style_weights": (0.0, 0.0)}, "positive sum"),
        ({"depth_resolution": 100}, "multiple of 14"),
        ({"strength": 1.5}, "strength must be between 0 and 1"),
        ({"average_decay": 1.0}, "average_decay must be in"),
    ],
)
def test_invalid_settings_are_refused_with_their_name(settings, message):
    with pytest.raises(ValueError, match=message):
        OptimizeConfig(**settings)


def test_bf16_on_the_cpu_runs_where_it_is_native_and_is_refused_where_not(vgg, depth_net, content, style):
    config = OptimizeConfig(**QUICK, precision="bf16")
    if not cpu_has_native_bf16():
        with pytest.raises(ValueError, match="bf16 needs a CUDA device or a CPU with native bf16"):
            optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config)
        return
    fast = optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config)
    exact = optimize_style(
        content, style, vgg=vgg, depth_model=depth_net, config=OptimizeConfig(**QUICK, precision="fp32")
    )
    # Adam turns rounding differences into different pixels, so compare what both achieved: the style
    # loss falls about as far in bf16 as in fp32 (measured in fp32).
    start = float(relative_gram_losses(vgg, content, style).mean())
    fast_loss = float(relative_gram_losses(vgg, fast, style).mean())
    exact_loss = float(relative_gram_losses(vgg, exact, style).mean())
    assert fast_loss < 0.7 * start and exact_loss < 0.7 * start, (start, fast_loss, exact_loss)
    assert fast_loss < 1.5 * exact_loss and not torch.equal(fast, exact), (start, fast_loss, exact_loss)


def test_a_depth_map_sets_the_target_of_the_depth_loss(vgg, depth_net, content, style):
    """A map from elsewhere replaces the content's depth as the target: the result's depth follows a
    map whose near and far are swapped, and a map of the content's own depth gives what the model gives."""
    config = OptimizeConfig(**{**QUICK, "steps": 40, "first_scale_steps": 40}, depth_weight=5.0)
    height, width = content.shape[-2:]
    with torch.no_grad():
        own = F.interpolate(depth_for_loss(depth_net, content, 56), size=(height, width), mode="bilinear")
    own = (own - own.amin()) / (own.amax() - own.amin())

    def error(result: torch.Tensor, target: torch.Tensor) -> float:
        with torch.no_grad():
            size = depth_for_loss(depth_net, result, 56).shape[-2:]
            return float(depth_loss(depth_for_loss(depth_net, result, 56), F.interpolate(target, size=size)))

    from_model = optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config)
    from_flipped = optimize_style(
        content, style, vgg=vgg, depth_model=depth_net, config=config, depth_map=1 - own
    )
    from_own = optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config, depth_map=own)
    assert error(from_flipped, 1 - own) < 0.5 * error(from_model, 1 - own)
    assert error(from_own, own) < 1.5 * error(from_model, own) + 1e-4
    with pytest.raises(InputImageError, match=r"the depth map must be \[B,1,H,W\]"):
        optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=config, depth_map=own[..., :-1])
    with pytest.raises(SettingsError, match="works with the 'ssi' depth loss, not 'l2'"):
        l2 = OptimizeConfig(**QUICK, depth_weight=5.0, depth_loss="l2")
        optimize_style(content, style, vgg=vgg, depth_model=depth_net, config=l2, depth_map=own)
