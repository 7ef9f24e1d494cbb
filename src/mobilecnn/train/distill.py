"""Knowledge distillation: a teacher's softened logits as extra targets for the student.

The loss (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network") is
``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * label_loss``;
the ``T^2`` keeps the gradient scale of the soft term independent of the temperature.

A teacher is named by a *spec*:

* ``PATH`` - a mobilecnn checkpoint (``best.pt`` of another run, e.g. a wider model);
* ``torchvision:ARCH:PATH`` - ``torchvision.models.get_model(ARCH)`` with the state_dict saved at
  ``PATH`` (for example ``torchvision:resnet18:teacher.pth``; needs torchvision);
* ``timm:ARCH:PATH`` - ``timm.create_model(ARCH)`` with the state_dict at ``PATH`` (needs timm).

Nothing is downloaded: the weights must be on disk and predict the training data's classes
(fine-tune an ImageNet model on the data first). The teacher sees the student's normalized
input batch, runs in eval mode under ``torch.no_grad`` and inside the same autocast as the
student.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["distillation_loss", "load_teacher", "parse_teacher_spec"]

TEACHER_SOURCES = ("torchvision", "timm")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      label_loss: torch.Tensor, alpha: float = 0.5,
                      temperature: float = 4.0) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * label_loss`` (batch mean).

    Logits are softened by ``temperature`` ``T`` and compared in float32; ``alpha=1`` trains
    on the teacher alone.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation alpha must be in [0, 1], got {alpha!r}")
    if not temperature > 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    soft = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1.0 - alpha) * label_loss


def parse_teacher_spec(spec: str) -> tuple[str, str | None, Path]:
    """``(source, arch, path)``: ``("mobilecnn", None, path)`` for a checkpoint path, or
    ``("torchvision" | "timm", arch, path)`` for ``SOURCE:ARCH:PATH``."""
    source, _, rest = spec.partition(":")
    if source in TEACHER_SOURCES:
        arch, _, path = rest.partition(":")
        if not arch or not path:
            raise ValueError(f"teacher {spec!r}: write {source}:ARCH:PATH, e.g. "
                             f"{source}:resnet18:weights.pth (a state_dict on disk)")
        return source, arch, Path(path).expanduser()
    return "mobilecnn", None, Path(spec).expanduser()


def load_teacher(spec: str, num_classes: int, device: torch.device | str = "cpu",
                 classes: Sequence[str] | None = None) -> nn.Module:
    """The teacher named by ``spec`` (see the module docs) in eval mode on ``device``, with
    gradients off. A teacher predicting another number of classes than ``num_classes`` (or,
    for a mobilecnn checkpoint, other ``classes``) raises ``ValueError`` in one line."""
    source, arch, path = parse_teacher_spec(spec)
    if not path.is_file():
        raise FileNotFoundError(f"teacher {spec!r}: no file at {path}")
    if source == "mobilecnn":
        model = _mobilecnn_teacher(path, num_classes, classes)
    else:
        assert arch is not None
        model = _library_teacher(source, arch, path, num_classes)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


def _mobilecnn_teacher(path: Path, num_classes: int, classes: Sequence[str] | None) -> nn.Module:
    from .checkpoints import load_model

    model, checkpoint = load_model(path)
    teacher_classes = list(checkpoint["classes"])
    if len(teacher_classes) != num_classes:
        raise ValueError(f"teacher {path} predicts {len(teacher_classes)} classes, the data has "
                         f"{num_classes}; distill from a model trained on the same classes")
    if classes is not None and teacher_classes != list(classes):
        raise ValueError(f"teacher {path} was trained on other classes (or another order) "
                         "than this data set; distill from a model trained on the same data")
    return model


def _library_teacher(source: str, arch: str, path: Path, num_classes: int) -> nn.Module:
    build = _builder(source, arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle errors come in many types
        raise ValueError(f"teacher {path} is not a loadable state_dict: "
                         f"{type(error).__name__}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"teacher {path} holds a {type(state).__name__}, not a state_dict")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    model = build(num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        found = _state_dict_classes(state, model)
        if found is not None and found != num_classes:
            raise ValueError(f"teacher {path} predicts {found} classes, the data has "
                             f"{num_classes}; fine-tune {source} {arch} on this data first, "
                             "then distill from those weights") from None
        first = " ".join(str(error).split())[:200]
        raise ValueError(f"teacher {path} does not fit {source} {arch}: {first}") from None
    return model


def _builder(source: str, arch: str) -> Callable[[int], nn.Module]:
    if source == "torchvision":
        try:
            import torchvision.models
        except ImportError as error:
            raise ImportError("a torchvision teacher needs torchvision: pip install "
                              "torchvision (matching your torch)") from error
        if arch not in torchvision.models.list_models():
            raise ValueError(f"torchvision has no model {arch!r}; see "
                             "torchvision.models.list_models()")
        return lambda classes: torchvision.models.get_model(arch, weights=None,
                                                            num_classes=classes)
    try:
        import timm
    except ImportError as error:
        raise ImportError("a timm teacher needs timm: pip install timm") from error
    if not timm.is_model(arch):
        raise ValueError(f"timm has no model {arch!r}; see timm.list_models()")
    return lambda classes: timm.create_model(arch, pretrained=False, num_classes=classes)


def _state_dict_classes(state: dict[str, Any], model: nn.Module) -> int | None:
    """The output size the state_dict's classifier has, found by the last Linear of ``model``."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return None
    weight = state.get(f"{last}.weight")
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None

