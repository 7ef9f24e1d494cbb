"""Starting from trained weights: ``--init`` specs and layer-wise learning rates.

An init spec is

* ``torchvision:PATH`` - torchvision ``mobilenet_v2`` ImageNet weights (``.pth``, e.g. the
  ``MobileNet_V2_Weights.IMAGENET1K_V2`` file users already have). The backbone is loaded into
  the model, the classifier stays freshly initialized (the classes differ). The small-input
  model (``total_stride=16``) has exactly the same parameters as the ImageNet one - only the
  stem stride differs - so every backbone tensor is used.
* ``PATH`` - a mobilecnn checkpoint. Its weights are loaded, the classifier too when it has the
  same classes (e.g. to fine-tune with quantization-aware training), otherwise the backbone only.

A file of another architecture or width raises ``ValueError`` in one line; the model is then
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import MobileNetBase

__all__ = ["layerwise_lr_groups", "load_init"]


def load_init(model: MobileNetBase, spec: str, classes: list[str] | None = None) -> str:
    """Load the weights named by ``spec`` into ``model`` (in place); returns one line saying
    what was loaded."""
    source, _, rest = spec.partition(":")
    if source == "torchvision" and rest:
        return _load_torchvision(model, Path(rest).expanduser())
    return _load_checkpoint(model, Path(spec).expanduser(), classes)


def _load_torchvision(model: MobileNetBase, path: Path) -> str:
    from ..models import MobileNetV2
    from ..weights import load_torchvision_state_dict

    if not isinstance(model, MobileNetV2):
        raise ValueError(f"--init torchvision:{path}: torchvision weights exist only for "
                         f"mobilenet_v2, this run trains {type(model).__name__}")
    if not path.is_file():
        raise FileNotFoundError(f"--init torchvision:{path}: no such file")
    try:
        load_torchvision_state_dict(model, path, include_classifier=False)
    except ValueError as error:
        first = " ".join(str(error).split())
        raise ValueError(f"--init torchvision:{path} does not fit mobilenet_v2 width "
                         f"{model.width_mult}: {first}") from None
    return f"initialized the backbone from torchvision weights {path} (classifier: new)"


def _load_checkpoint(model: MobileNetBase, path: Path, classes: list[str] | None) -> str:
    from .checkpoints import load_checkpoint

    checkpoint = load_checkpoint(path)
    state: dict[str, torch.Tensor] = checkpoint["model"]
    target = model.state_dict()
    same_classes = classes is None or list(checkpoint["classes"]) == list(classes)
    wanted = {key: value for key, value in state.items()
              if same_classes or not key.startswith("classifier.")}
    missing = [key for key in target if key not in wanted
               and not (key.startswith("classifier.") and not same_classes)]
    unexpected = [key for key in wanted if key not in target]
    mismatched = [key for key in wanted if key in target and target[key].shape
                  != wanted[key].shape]
    if missing or unexpected or mismatched:
        problem = (f"{len(mismatched)} tensors of another shape (first: {mismatched[0]})"
                   if mismatched else f"{len(missing)} missing / {len(unexpected)} unexpected "
                   f"tensors (first: {(missing + unexpected)[0]})")
        raise ValueError(f"--init {path} holds {checkpoint['model_name']} "
                         f"{checkpoint['model_kwargs']}, which does not fit this model: "
                         f"{problem}; use the same --model/--width/--total-stride")
    model.load_state_dict(wanted, strict=False)
    what = "all weights" if same_classes else "the backbone (other classes; classifier: new)"
    return f"initialized {what} from checkpoint {path}"


def layerwise_lr_groups(model: MobileNetBase, weight_decay: float,
                        lr_decay: float = 1.0) -> list[dict[str, Any]]:
    """Optimizer parameter groups with ``lr_scale = lr_decay ** depth_from_top``.

    The classifier has depth 0, ``features[-1]`` depth 1, ... the stem the largest: with
    ``lr_decay < 1`` early layers (generic ImageNet features) move less than late ones. Each
    depth has a group with ``weight_decay`` (weights) and one without (norm parameters and
    biases). Parameters that do not require gradients (a frozen backbone) are left out.
    Multiply each group's learning rate by its ``lr_scale``.
    """
    if not 0.0 < lr_decay <= 1.0:
        raise ValueError(f"layer-wise lr decay must be in (0, 1], got {lr_decay!r}")
    depth_of: dict[int, int] = {}
    features = model.features
    assert isinstance(features, nn.Sequential)
    count = len(features)
    for index, block in enumerate(features):
        for parameter in block.parameters():
            depth_of[id(parameter)] = count - index
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        depth = depth_of.get(id(parameter), 0)
        groups.setdefault((depth, parameter.ndim >= 2), []).append(parameter)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0,
             "decays": decays, "lr_scale": lr_decay**depth}
            for (depth, decays), params in sorted(groups.items())]
