"""Mobile MQA, RMSNorm2d, LayerScale2d, "same" padding and the multi-scale fusion adapter: their
arithmetic against timm's, their MACs, folding and tracing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equivalence_helpers import randomize
from mobilecnn import mac_count
from mobilecnn.deploy import fold_batchnorm
from mobilecnn.layers import (
    ConvNormAct,
    LayerScale2d,
    MobileMQA,
    MultiQueryAttention2d,
    MultiScaleFusionAdapter,
    RMSNorm2d,
)
from mobilecnn.layers.fusion import resize_to

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rms_norm_and_layer_scale_arithmetic() -> None:
    x = torch.randn(2, 6, 3, 4)
    norm = randomize(RMSNorm2d(6))
    expected = x / torch.sqrt((x ** 2).mean(dim=1, keepdim=True) + 1e-6) * norm.weight.view(
        1, -1, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    assert RMSNorm2d(6, affine=False).weight is None
    scale = LayerScale2d(6)
    assert torch.equal(scale.gamma, torch.full((6,), 1e-5))
    torch.testing.assert_close(scale(x), x * 1e-5)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        RMSNorm2d(0)


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_multi_query_attention_equals_timm(kv_stride: int) -> None:
    timm_attention = pytest.importorskip(
        "timm.layers.attention2d", reason="timm is not installed (pip install 'mobilecnn[dev]')")
    reference = timm_attention.MultiQueryAttention2d(
        32, dim_out=24, num_heads=4, key_dim=16, value_dim=8, kv_stride=kv_stride).eval()
    ours = MultiQueryAttention2d(32, 24, num_heads=4, key_dim=16, value_dim=8,
                                 kv_stride=kv_stride)
    names = {"query_proj": "query.proj", "key_proj": "key.proj", "value_proj": "value.proj",
             "out_proj": "output.proj", "key_down.conv": "key.down_conv",
             "key_down.bn": "key.norm", "value_down.conv": "value.down_conv",
             "value_down.bn": "value.norm"}
    randomize(reference)
    source = reference.state_dict()
    state = {}
    for key in ours.state_dict():
        part, tensor = key.rsplit(".", 1)
        state[key] = source[f"{names[part]}.{tensor}"]
    ours.load_state_dict(state)
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_multi_query_attention_runs_the_fused_kernel(kv_stride: int) -> None:
    """Keys, queries and values are laid out as PyTorch's fused (flash) CPU attention needs:
    with only that kernel allowed, the forward runs instead of raising 'no available kernel'
    (the unfused fallback made MobileNetV5-300M ~15% slower than timm)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    attention = MultiQueryAttention2d(32, 24, num_heads=4, key_dim=16, value_dim=16,
                                      kv_stride=kv_stride).eval()
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        expected = attention(x)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            torch.testing.assert_close(attention(x), expected)


def test_attention_macs_are_counted() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    block = MobileMQA(32, 32, num_heads=4, key_dim=16, kv_stride=2).eval()
    heads_queries, keys = 4 * 8 * 8, 4 * 4
    projections = 8 * 8 * 32 * (4 * 16) + 2 * 4 * 4 * 32 * 16 + 8 * 8 * 64 * 32
    downsampling = 2 * 4 * 4 * 32 * 9
    attention = heads_queries * keys * (16 + 16)
    assert mac_count(block, (32, 8, 8)) == projections + downsampling + attention
    with FlopCounterMode(display=False) as counter, torch.no_grad(), \
            sdpa_kernel(SDPBackend.MATH):  # the math kernel's matmuls are visible to it
        block(torch.zeros(1, 32, 8, 8))
    assert mac_count(block, (32, 8, 8)) == counter.get_total_flops() // 2


def test_mobile_mqa_folds_traces_and_exports() -> None:
    block = randomize(MobileMQA(16, 16, num_heads=2, key_dim=8, kv_stride=2))
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        expected = block(x)
        folded = fold_batchnorm(block)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), expected, rtol=1e-5, atol=1e-6)
        traced = torch.fx.symbolic_trace(block)
        torch.testing.assert_close(traced(x), expected)
        exported = torch.export.export(block, (x,)).module()
        torch.testing.assert_close(exported(x), expected)
        scripted = torch.jit.script(block)
        torch.testing.assert_close(scripted(x), expected)


def test_same_padding_equals_tensorflow_and_traces() -> None:
    timm_layers = pytest.importorskip("timm.layers", reason="timm is not installed")
    for size in (8, 9):
        for kernel in (3, 5):
            ours = ConvNormAct(4, 6, kernel, stride=2, norm_layer=None, activation=None,
                               padding="same")
            reference = timm_layers.create_conv2d(4, 6, kernel, stride=2, padding="same",
                                                  bias=True)
            reference.load_state_dict(ours.conv.state_dict())
            x = torch.randn(1, 4, size, size)
            with torch.no_grad():
                assert ours(x).shape[-1] == -(size // -2)  # ceil(size / 2)
                torch.testing.assert_close(ours(x), reference(x))
                torch.testing.assert_close(torch.fx.symbolic_trace(ours)(x), ours(x))
    assert not hasattr(ConvNormAct(4, 6, 3, padding="same"), "pad")  # stride 1: symmetric
    with pytest.raises(ValueError, match="padding must be 'symmetric' or 'same'"):
        ConvNormAct(4, 6, 3, padding="valid")  # type: ignore[arg-type]


class TwoMaps(nn.Module):
    def __init__(self, adapter: MultiScaleFusionAdapter) -> None:
        super().__init__()
        self.adapter = adapter

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.adapter([fine, coarse])


def test_fusion_adapter_resizes_and_traces() -> None:
    x = torch.randn(1, 3, 8, 8)
    assert resize_to(x, (8, 8)) is x
    torch.testing.assert_close(resize_to(x, (4, 4)), nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(resize_to(x, (6, 6)), nn.functional.interpolate(
        x, size=(6, 6), mode="bilinear", align_corners=False))
    adapter = randomize(MultiScaleFusionAdapter(12, 10, output_size=4,
                                                norm_layer=RMSNorm2d))
    fine, coarse = torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        out = adapter([fine, coarse])
        assert out.shape == (2, 10, 4, 4)
        upsampled = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        expected = adapter.norm(nn.functional.avg_pool2d(
            adapter.ffn(torch.cat([fine, upsampled], 1)), 2))
        torch.testing.assert_close(out, expected)
        traced = torch.fx.symbolic_trace(TwoMaps(adapter))  # as a model calls it
        torch.testing.assert_close(traced(fine, coarse), out)
    assert MultiScaleFusionAdapter(12, 10, output_size=None)([fine, coarse]).shape[-1] == 8
    with pytest.raises(ValueError, match="output_size must be"):
        MultiScaleFusionAdapter(12, 10, output_size=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: MultiQueryAttention2d(16, kv_stride=4), "kv_stride must be 1"),
        (lambda: MultiQueryAttention2d(16, num_heads=0), "num_heads must be a positive"),
        (lambda: MultiQueryAttention2d(16, kv_kernel_size=2), "kv_kernel_size must be"),
    ],
)
def test_bad_attention_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)
