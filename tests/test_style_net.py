"""TransformerNet: community key layout, pytorch/examples semantics, paper options, any input size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from depthstyle.depthstyle_core.errors import CheckpointError
from depthstyle.depthstyle_core.models.transformer_net import (
    CAFFE_MEAN_RGB,
    RECEPTIVE_RADIUS,
    TANH_SCALE,
    TransformerNet,
    TransformerNetConfig,
    count_parameters,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def community_layout() -> dict[str, tuple[int, ...]]:
    """The pytorch/examples fast_neural_style state dict (reference/checkpoints.md section 4.1)."""
    layout: dict[str, tuple[int, ...]] = {}

    def conv(name: str, out_ch: int, in_ch: int, k: int) -> None:
        layout[f"{name}.conv2d.weight"] = (out_ch, in_ch, k, k)
        layout[f"{name}.conv2d.bias"] = (out_ch,)

    def norm(name: str, ch: int) -> None:
        layout[f"{name}.weight"] = (ch,)
        layout[f"{name}.bias"] = (ch,)

    conv("conv1", 32, 3, 9), norm("in1", 32)
    conv("conv2", 64, 32, 3), norm("in2", 64)
    conv("conv3", 128, 64, 3), norm("in3", 128)
    for k in range(1, 6):
        conv(f"res{k}.conv1", 128, 128, 3), norm(f"res{k}.in1", 128)
        conv(f"res{k}.conv2", 128, 128, 3), norm(f"res{k}.in2", 128)
    conv("deconv1", 64, 128, 3), norm("in4", 64)
    conv("deconv2", 32, 64, 3), norm("in5", 32)
    conv("deconv3", 3, 32, 9)
    return layout


def randomize_norms(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every norm layer a non-trivial affine transform, so a mixed-up layer order shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if param.ndim == 1 and not name.endswith("conv2d.bias"):
                is_weight = name.endswith("weight")
                noise = torch.randn(param.shape, generator=gen)
                param.copy_(1 + 0.3 * noise if is_weight else 0.3 * noise)
    return net


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """pytorch/examples' TransformerNet written with torch.nn.functional, for H, W multiples of 4."""

    def conv(h: torch.Tensor, name: str, stride: int = 1) -> torch.Tensor:
        weight = sd[f"{name}.conv2d.weight"]
        pad = weight.shape[-1] // 2
        return F.conv2d(F.pad(h, [pad] * 4, mode="reflect"), weight, sd[f"{name}.conv2d.bias"], stride)

    def inorm(h: torch.Tensor, name: str) -> torch.Tensor:
        return F.instance_norm(h, weight=sd[f"{name}.weight"], bias=sd[f"{name}.bias"], eps=1e-5)

    def up(h: torch.Tensor, name: str) -> torch.Tensor:
        return conv(F.interpolate(h, scale_factor=2, mode="nearest"), name)

    h = F.relu(inorm(conv(x * 255, "conv1"), "in1"))
    h = F.relu(inorm(conv(h, "conv2", 2), "in2"))
    h = F.relu(inorm(conv(h, "conv3", 2), "in3"))
    for k in range(1, 6):
        inner = F.relu(inorm(conv(h, f"res{k}.conv1"), f"res{k}.in1"))
        h = inorm(conv(inner, f"res{k}.conv2"), f"res{k}.in2") + h
    h = F.relu(inorm(up(h, "deconv1"), "in4"))
    h = F.relu(inorm(up(h, "deconv2"), "in5"))
    return conv(h, "deconv3") / 255


def test_default_net_has_the_community_keys_shapes_and_parameter_count():
    net = TransformerNet()
    state = {key: tuple(value.shape) for key, value in net.state_dict().items()}
    assert state == community_layout()
    assert len(state) == 62
    assert count_parameters(net) == 1_679_235


def test_default_net_computes_the_pytorch_examples_function():
    torch.manual_seed(0)
    net = randomize_norms(TransformerNet()).eval()
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        ours, reference = net(x), reference_forward(net.state_dict(), x)
    assert reference.abs().max() > 1e-3  # the comparison is not between two near-zero outputs
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def test_paper_options_change_layers_but_keep_key_names():
    net = TransformerNet(TransformerNetConfig(norm="batch", upsample="transposed", output="tanh"))
    state = net.state_dict()
    assert count_parameters(net) == 1_679_235
    assert isinstance(net.deconv1.conv2d, torch.nn.ConvTranspose2d)
    assert state["deconv1.conv2d.weight"].shape == (128, 64, 3, 3)  # transposed: [in, out, k, k]
    assert isinstance(net.in1, torch.nn.BatchNorm2d)
    assert {"in1.running_mean", "res5.in2.running_var", "in5.num_batches_tracked"} <= set(state)
    assert set(community_layout()) <= set(state)


@pytest.mark.parametrize("size", [(7, 5), (1, 1), (3, 9), (33, 18), (8, 8)])
@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_any_input_size_gives_the_same_output_size(size, upsample):
    net = TransformerNet(TransformerNetConfig(upsample=upsample)).eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, *size)
    assert torch.isfinite(y).all()


def test_odd_size_output_is_the_crop_of_the_reflect_padded_input():
    torch.manual_seed(1)
    net = randomize_norms(TransformerNet()).eval()
    x = torch.rand(1, 3, 13, 10)
    padded = F.pad(x, (0, 2, 0, 3), mode="reflect")  # to 16 x 12, the next multiples of 4
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded)[..., :13, :10])


def test_tanh_output_is_bounded_around_the_vgg_mean():
    torch.manual_seed(2)
    net = TransformerNet(TransformerNetConfig(output="tanh")).eval()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(1e4)  # saturate the tanh
        y = net(torch.rand(1, 3, 24, 24)) * 255
    mean = torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1)
    assert (y >= mean - TANH_SCALE - 1e-3).all() and (y <= mean + TANH_SCALE + 1e-3).all()
    assert (y - mean).abs().amax() > 0.99 * TANH_SCALE


def test_config_metadata_round_trip_and_errors():
    for config in (
        TransformerNetConfig(),
        TransformerNetConfig(norm="batch"),
        TransformerNetConfig(upsample="transposed"),
        TransformerNetConfig(output="tanh"),
    ):
        metadata = config.to_metadata()
        assert all(isinstance(v, str) for v in metadata.values())
        assert metadata["architecture"] == "TransformerNet"
        assert TransformerNetConfig.from_metadata(metadata) == config
    assert TransformerNetConfig.from_metadata({}) == TransformerNetConfig()
    assert TransformerNetConfig.from_metadata({"format": "pt"}) == TransformerNetConfig()
    with pytest.raises(CheckpointError, match="DepthAnything"):
        TransformerNetConfig.from_metadata({"architecture": "DepthAnything"})
    with pytest.raises(CheckpointError, match="norm"):
        TransformerNetConfig.from_metadata({"architecture": "TransformerNet", "net.norm": "layer"})
    with pytest.raises(ValueError, match="upsample"):
        TransformerNetConfig(upsample="bilinear")


@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_receptive_radius_bounds_how_far_a_pixel_reaches(upsample):
    torch.manual_seed(3)
    net = TransformerNet(TransformerNetConfig(upsample=upsample)).eval()
    x = torch.rand(1, 3, 144, 144)
    stats = net.norm_stats(x)  # fixed statistics: the change can only travel through the convolutions
    reach = 0
    with torch.no_grad():
        base = net(x, stats)
        for row, col in ((72, 72), (73, 74), (75, 71)):
            bumped = x.clone()
            bumped[..., row, col] += 1
            changed = torch.nonzero((net(bumped, stats) - base).abs().amax(dim=(0, 1)) > 0)
            reach = max(reach, (changed - torch.tensor([row, col])).abs().max().item())
    assert 40 < reach <= RECEPTIVE_RADIUS


def test_norm_stats_name_every_instance_norm_layer_and_batch_norm_has_none():
    net = TransformerNet().eval()
    stats = net.norm_stats(torch.rand(2, 3, 20, 24))
    names = {f"in{k}" for k in range(1, 6)} | {f"res{k}.in{j}" for k in range(1, 6) for j in (1, 2)}
    assert set(stats) == names
    mean, var = stats["res3.in2"]
    assert mean.shape == var.shape == (2, 128, 1, 1) and mean.dtype == torch.float32
    assert TransformerNet(TransformerNetConfig(norm="batch")).eval().norm_stats(torch.rand(1, 3, 8, 8)) == {}


def test_norm_stats_of_the_image_reproduce_the_plain_forward():
    torch.manual_seed(4)
    net = randomize_norms(TransformerNet()).eval()
    x = torch.rand(2, 3, 28, 20)
    with torch.no_grad():
        plain = net(x)
        torch.testing.assert_close(net(x, net.norm_stats(x)), plain)
        other = net(x, net.norm_stats(torch.rand(2, 3, 28, 20)))
    assert (other - plain).abs().max() > 1e-3 * plain.abs().max()


def test_bf16_autocast_training_step_has_finite_gradients_close_to_fp32():
    """CUDA training runs under bf16 autocast; the instance norms must stay differentiable there."""
    torch.manual_seed(0)
    net = TransformerNet()
    x = torch.rand(2, 3, 32, 32)

    def gradients(autocast: bool) -> torch.Tensor:
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = net(x)
        out.float().square().mean().backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    reference, low = gradients(False), gradients(True)
    assert torch.isfinite(low).all()
    assert float(torch.nn.functional.cosine_similarity(low, reference, dim=0)) > 0.95
