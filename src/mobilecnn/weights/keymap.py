"""Loading weights by explicit key rules, shared by the torchvision and timm layouts.

Reading a file or a mapping (checkpoint wrappers and DataParallel prefixes removed), checking
every tensor against a ``{ours: theirs}`` key map before anything is copied, and naming the
architecture a wrong state_dict belongs to.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..models import MobileNetBase

__all__ = ["StateDict", "load_with_key_map", "model_name", "read_state_dict"]

StateDict = Mapping[str, torch.Tensor]
"""A flat ``{name: tensor}`` mapping, as ``nn.Module.state_dict()`` returns."""

def model_name(model: nn.Module) -> str:
    """The :data:`~mobilecnn.MODELS` name of ``model`` (e.g. ``"mobilenet_v3_small"``)."""
    variant = getattr(model, "variant", None)
    base = {"MobileNetV1": "mobilenet_v1", "MobileNetV2": "mobilenet_v2",
            "MobileNetV3": "mobilenet_v3", "MobileNetV4": "mobilenet_v4",
            "MobileNetV5": "mobilenet_v5", "MobileNetV5Encoder": "mobilenet_v5"}.get(
        type(model).__name__, type(model).__name__)
    suffix = "_encoder" if type(model).__name__ == "MobileNetV5Encoder" else ""
    return f"{base}_{variant}{suffix}" if variant else base


def read_state_dict(source: StateDict | str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a mapping or a ``.pth`` file (loaded with weights_only)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no state_dict file at {str(path)!r}")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors come in many types
            raise ValueError(
                f"{str(path)!r} is not a loadable PyTorch state_dict: {error}"
            ) from None
    else:
        loaded = source
    if not isinstance(loaded, Mapping):
        raise ValueError(f"expected a state_dict (a mapping of names to tensors), got "
                         f"{type(loaded).__name__}")
    # Training checkpoints often wrap the weights; DataParallel prefixes them with "module.".
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
            break
    state = {
        (key[len("module."):] if key.startswith("module.") else key): value
        for key, value in loaded.items()
    }
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"expected a state_dict of tensors, but {not_tensors[0]!r} is a "
                         f"{type(state[not_tensors[0]]).__name__}")
    return state


def _guess_architecture(
    source_keys: set[str], candidates: Mapping[str, Callable[[], dict[str, str]]]
) -> str | None:
    """The name of the candidate whose key map has exactly ``source_keys`` (counters aside)."""
    wanted = {key for key in source_keys if not key.endswith("num_batches_tracked")}
    for name, key_map in candidates.items():
        keys = {k for k in key_map().values() if not k.endswith("num_batches_tracked")}
        if keys == wanted:
            return name
    return None


def load_with_key_map(
    model: MobileNetBase,
    mapping: dict[str, str],
    state_dict: StateDict | str | os.PathLike[str],
    *,
    include_classifier: bool,
    library: str,
    candidates: Mapping[str, Callable[[], dict[str, str]]],
) -> None:
    """Check every tensor of ``state_dict`` against ``mapping`` ``{ours: theirs}``, then copy.

    ``include_classifier=False`` leaves out the last linear layer. Raises a one-line ValueError
    for missing/unexpected keys (naming the architecture the keys belong to, when one of
    ``candidates`` matches) or for the first shape mismatch; ``model`` is unchanged then.
    """
    source = read_state_dict(state_dict)
    name = model_name(model)
    if not include_classifier:
        last = model.classifier[-1]
        ours_last = {f"classifier.{len(model.classifier) - 1}.{key}"
                     for key in last.state_dict()}
        theirs_last = {mapping[key] for key in ours_last}
        mapping = {ours: theirs for ours, theirs in mapping.items() if ours not in ours_last}
        source = {key: value for key, value in source.items() if key not in theirs_last}
    target = model.state_dict()
    missing = [theirs for ours, theirs in mapping.items()
               if theirs not in source and not ours.endswith("num_batches_tracked")]
    unexpected = sorted(set(source) - set(mapping.values()))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:3])})")
        guess = _guess_architecture(set(source), candidates) if include_classifier else None
        hint = ""
        if guess is not None and guess != name:
            hint = (f"; its keys are those of {library} weights for {guess}: build "
                    f"create_model({guess!r}) for them, or load {name} weights")
        raise ValueError(
            f"the state_dict is not a {library} {name} with this model's block table: "
            + "; ".join(parts) + hint
        )
    converted: dict[str, torch.Tensor] = {}
    for ours, theirs in mapping.items():
        if theirs not in source:
            continue
        expected = target[ours].shape
        found = source[theirs].shape
        if expected != found:
            raise ValueError(
                f"shape mismatch at {library} tensor {theirs!r} (mobilecnn {ours!r}): "
                f"state_dict has {tuple(found)}, model expects {tuple(expected)}; check that "
                f"width_mult (model: {getattr(model, 'width_mult', '?')}) and num_classes "
                f"(model: {model.num_classes}) match the weights, or pass "
                "include_classifier=False"
            )
        converted[ours] = source[theirs]
    model.load_state_dict(converted, strict=False)

