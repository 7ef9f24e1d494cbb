"""Weights from other libraries: torchvision's and timm's state_dicts, by explicit key rules.

* :mod:`~mobilecnn.weights.torchvision` - :func:`load_torchvision_state_dict` /
  :func:`to_torchvision_state_dict` (MobileNetV2, MobileNetV3);
* :mod:`~mobilecnn.weights.timm` - :func:`load_timm_state_dict` / :func:`to_timm_state_dict`
  (MobileNetV4);
* :mod:`~mobilecnn.weights.keymap` - the shared loading machinery: read, check every tensor, copy.
"""

from __future__ import annotations

from .keymap import StateDict, load_with_key_map, model_name, read_state_dict
from .timm import load_timm_state_dict, timm_key_map, to_timm_state_dict
from .torchvision import load_torchvision_state_dict, to_torchvision_state_dict, torchvision_key_map

__all__ = [
    "StateDict",
    "load_timm_state_dict",
    "load_torchvision_state_dict",
    "load_with_key_map",
    "model_name",
    "read_state_dict",
    "timm_key_map",
    "to_timm_state_dict",
    "to_torchvision_state_dict",
    "torchvision_key_map",
]
