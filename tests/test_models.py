"""Every registered model, the same checks (in the spirit of timm's model tests).

Parametrized over ``list_models()``: a new model gets all of these for free. Models are built
thin (``width_mult=0.25``) and run on small inputs so that the file stays fast; the traces
that cost seconds per model (``torch.export``, ``torch.compile``, TorchScript) are marked slow.
"""

from __future__ import annotations

import copy
import math
import os
import warnings

import pytest
import torch
from torch import nn

from mobilecnn import FeatureExtractor, MobileNetBase, create_model, list_models

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_NAMES = list_models()
ENCODERS = list_models("*_encoder")  # forward returns the feature map; no classifier
CLASSIFIERS = [name for name in MODEL_NAMES if name not in ENCODERS]
NUM_CLASSES = 5

# The tracing checks (torch.export, torch.compile, TorchScript, FX) take seconds to minutes per
# model on a 2-core CPU. MobileNetV5 is 10-38M parameters even at width 0.25, and the large V4
# variants repeat the blocks of their medium siblings: these run with MOBILECNN_TEST_HEAVY=1.
HEAVY = {name: ("minutes per trace on a CPU" if name.startswith("mobilenet_v5") else
                f"the blocks of {name.replace('large', 'medium')}, traced there")
         for name in MODEL_NAMES
         if name.startswith("mobilenet_v5") or name.startswith("mobilenet_v4") and "large" in name}
TRACED = [
    pytest.param(name, marks=pytest.mark.skipif(
        name in HEAVY and not os.environ.get("MOBILECNN_TEST_HEAVY"),
        reason=f"{name}: {HEAVY.get(name)}; run with MOBILECNN_TEST_HEAVY=1"))
    for name in MODEL_NAMES
]


def classes(name: str) -> int:
    return 0 if name in ENCODERS else NUM_CLASSES


def build(name: str, **kwargs: object) -> MobileNetBase:
    options: dict[str, object] = {"width_mult": 0.25, "num_classes": classes(name)}
    options.update(kwargs)
    return create_model(name, **options)  # type: ignore[arg-type]


def randomize_norm_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that eval-mode outputs differ between layers."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
    return model


def spatial(size: int, stride: int) -> int:
    return math.ceil(size / stride)  # every stride-2 conv pads "same": ceil(size / 2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_at_several_input_sizes(name: str) -> None:
    model = randomize_norm_statistics(build(name)).eval()
    for batch, height, width in [(1, 32, 32), (2, 48, 64), (1, 35, 50)]:
        x = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            features = model.forward_features(x)
            logits = model(x)
        assert features.shape[:2] == (batch, model.num_features)
        assert features.shape[2] >= spatial(height, 32) and features.shape[3] >= spatial(width, 32)
        if name in ENCODERS:
            assert torch.equal(logits, features)
        else:
            assert logits.shape == (batch, NUM_CLASSES)
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = build(name, total_stride=16).train()
    model(torch.randn(2, 3, 32, 32)).logsumexp(dim=1).mean().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{parameter_name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, f"{parameter_name} got a zero gradient"


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_num_classes_zero_gives_pooled_pre_logits(name: str) -> None:
    model = randomize_norm_statistics(build(name, num_classes=0)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        embeddings = model(x)
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True)
    assert embeddings.shape == (2, model.head_hidden_size)
    torch.testing.assert_close(embeddings, pre_logits)
    assert isinstance(model.get_classifier(), nn.Identity)

    classifier_model = build(name)
    classifier_model.load_state_dict(model.state_dict(), strict=False)
    classifier_model.eval()
    linear = classifier_model.get_classifier()
    assert isinstance(linear, nn.Linear)
    assert (linear.in_features, linear.out_features) == (model.head_hidden_size, NUM_CLASSES)
    classifier_model.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(classifier_model(x), embeddings)
    classifier_model.reset_classifier(3)
    assert classifier_model(x).shape == (2, 3) and classifier_model.num_classes == 3


@pytest.mark.parametrize("total_stride", [32, 16])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_features_only_shapes_and_reductions(name: str, total_stride: int) -> None:
    model = build(name, total_stride=total_stride)
    extractor = create_model(name, width_mult=0.25, total_stride=total_stride,
                             features_only=True)
    assert isinstance(extractor, FeatureExtractor)
    info = extractor.feature_info
    assert info.channels() == [level["num_chs"] for level in model.feature_info]
    assert info.reduction() == [level["reduction"] for level in model.feature_info]
    assert info.reduction()[-1] == total_stride
    assert info.reduction() == sorted(info.reduction())
    assert (extractor.channels, extractor.reductions) == (info.channels(), info.reduction())
    with torch.no_grad():
        maps = extractor.eval()(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(2, c, spatial(64, r), spatial(64, r))
                                              for c, r in zip(info.channels(),
                                                              info.reduction(), strict=True)]
    chosen = create_model(name, width_mult=0.25, total_stride=total_stride,
                          features_only=True, out_indices=(1, -1))
    assert chosen.feature_info.channels() == [info.channels(1), info.channels(-1)]


@pytest.mark.parametrize("name", TRACED)
def test_fx_symbolic_trace_and_torchvision_feature_extractor(name: str) -> None:
    tv_extraction = pytest.importorskip("torchvision.models.feature_extraction",
                                        reason="torchvision is a dev dependency")
    model = randomize_norm_statistics(build(name)).eval()
    x = torch.randn(2, 3, 64, 64)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    nodes = {level["module"]: str(index) for index, level in enumerate(model.feature_info)}
    extractor = tv_extraction.create_feature_extractor(model, return_nodes=nodes)
    with torch.no_grad():
        maps = extractor(x)
    assert [maps[str(i)].shape[1] for i in range(len(nodes))] == [
        level["num_chs"] for level in model.feature_info]


@pytest.mark.slow  # about 5-8 s of CPU per model
@pytest.mark.parametrize("name", TRACED)
def test_export_with_dynamic_batch_height_and_width(name: str) -> None:
    from torch.export import Dim

    # MobileNetV5's fusion resizes to 16x16 by a rule that depends on the map's size (as timm
    # does), which a size-generic graph cannot hold: exported with dynamic sizes it keeps the
    # finest map (fusion_size=None), as docs/api.md says; at a fixed size the default exports.
    options = {"fusion_size": None} if name.startswith("mobilenet_v5") else {}
    model = randomize_norm_statistics(build(name, **options)).eval()
    # above 32 pixels the last map is at least 2x2: torch.export specializes sizes of 1
    dynamic = {"x": {0: Dim("batch", min=1, max=64), 2: Dim("height", min=33, max=512),
                     3: Dim("width", min=33, max=512)}}
    exported = torch.export.export(model, (torch.randn(2, 3, 64, 64),), dynamic_shapes=dynamic)
    for shape in [(1, 3, 40, 48), (3, 3, 70, 96)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.slow  # about 4-7 s of CPU per model
@pytest.mark.parametrize("name", TRACED)
def test_compile_fullgraph_without_graph_breaks(name: str) -> None:
    torch._dynamo.reset()
    model = randomize_norm_statistics(build(name)).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.slow  # about 2-4 s of CPU per model
@pytest.mark.parametrize("name", TRACED)
def test_torchscript_model_and_feature_extractor(name: str) -> None:
    model = randomize_norm_statistics(build(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        scripted = torch.jit.script(model)
        extractor = FeatureExtractor(model, out_indices=(1, -1)).eval()
        scripted_extractor = torch.jit.script(extractor)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))
        for got, expected in zip(scripted_extractor(x), extractor(x), strict=True):
            torch.testing.assert_close(got, expected)
    with pytest.raises(Exception, match="expected a 4-D input tensor"):
        scripted(torch.randn(3, 32, 32))
    with pytest.raises(Exception, match="got float64"):
        scripted_extractor(x.double())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_matches_contiguous(name: str) -> None:
    model = randomize_norm_statistics(build(name)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_state_dict_round_trip_and_eval_determinism(name: str) -> None:
    model = randomize_norm_statistics(build(name)).eval()
    torch.manual_seed(123)
    other = build(name).eval()
    other.load_state_dict(model.state_dict())
    assert list(other.state_dict()) == list(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        first = model(x)
        assert torch.equal(model(x), first)
        assert torch.equal(other(x), first)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_cfg_describes_the_model(name: str) -> None:
    model = build(name, in_chans=1, total_stride=16)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name
    assert cfg["input_size"] == (1, 64, 64)  # the size total_stride=16 is meant for
    assert cfg["num_classes"] == classes(name)
    assert len(cfg["mean"]) == len(cfg["std"]) == 1
    assert 0 < cfg["crop_pct"] <= 1 and cfg["interpolation"] in ("bilinear", "bicubic")
    modules = dict(model.named_modules())
    first_conv = modules[cfg["first_conv"]]
    assert isinstance(first_conv, nn.Conv2d) and first_conv.in_channels == 1
    assert modules[cfg["classifier"]] is model.get_classifier()
    assert build(name).pretrained_cfg["input_size"][0] == 3


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_grad_checkpointing_gives_identical_outputs_gradients_and_statistics(name: str) -> None:
    model = build(name, total_stride=16).train()
    checkpointed = copy.deepcopy(model)
    checkpointed.set_grad_checkpointing()
    x = torch.randn(2, 3, 32, 32)
    outputs = []
    for network in (model, checkpointed):
        torch.manual_seed(7)  # the same dropout masks
        out = network(x)
        out.logsumexp(dim=1).mean().backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=0)
    assert len(outputs) == 2
    for (key, a), b in zip(model.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, msg=f"gradient of {key}")
    for (key, a), b in zip(model.state_dict().items(), checkpointed.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), f"{key} differs (running statistics updated twice?)"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_input_checks_are_one_line_errors(name: str) -> None:
    model = build(name).eval()
    bad_inputs = [
        (torch.randn(3, 32, 32), r"4-D input .* got shape \[3, 32, 32\].*unsqueeze\(0\)"),
        (torch.randn(1, 4, 32, 32), r"\(batch, 3, height, width\), got shape \[1, 4, 32, 32\]"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), r"x.float\(\) / 255"),
        (torch.randn(1, 3, 32, 32, dtype=torch.float64), r"got float64.*x.float\(\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.int64), "integer or bool tensor"),
    ]
    for x, message in bad_inputs:
        with pytest.raises(ValueError, match=message) as error:
            model(x)
        assert "\n" not in str(error.value)
    for dtype in (torch.float16, torch.bfloat16):  # accepted (as under autocast)
        low = build(name).eval().to(dtype)
        with torch.no_grad():
            assert low(torch.randn(1, 3, 32, 32, dtype=dtype)).dtype == dtype


BAD_ARGUMENTS = [
    ({"width_mult": math.inf}, ValueError, "width_mult must be a finite number > 0"),
    ({"width_mult": "1.0"}, TypeError, r"width_mult must be a number .* got '1.0' \(str\)"),
    ({"width_mult": 0}, ValueError, "width_mult must be a finite number > 0.*got 0"),
    ({"num_classes": True}, TypeError, r"num_classes must be an integer >= 0, got True"),
    ({"num_classes": -1}, ValueError, "num_classes must be an integer >= 0, got -1"),
    ({"num_classes": 2.5}, TypeError, "num_classes must be an integer"),
    ({"in_chans": 0}, ValueError, "in_channels must be an integer >= 1, got 0"),
    ({"drop_rate": 1.0}, ValueError, r"drop_rate must be in \[0, 1\), got 1.0"),
    ({"drop_rate": "0.1"}, TypeError, "drop_rate must be a number"),
    ({"total_stride": 4}, ValueError, "total_stride must be one of"),
    ({"width_mult": 1e6}, ValueError, r"width_mult must be at most 10 \("),
    ({"num_classes": 10**9}, ValueError, r"num_classes must be at most 100,000 \("),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_ARGUMENTS,
                         ids=[next(iter(k)) + "=" + repr(next(iter(k.values())))
                              for k, _, _ in BAD_ARGUMENTS])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_constructor_arguments_are_one_line_errors(
    name: str, kwargs: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as raised:
        create_model(name, **kwargs)
    assert "\n" not in str(raised.value)
