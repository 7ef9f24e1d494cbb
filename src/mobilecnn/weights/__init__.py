"""Weights from other libraries: torchvision's and timm's state_dicts, by explicit key rules.

* :mod:`~mobilecnn.weights.torchvision` - :func:`load_torchvision_state_dict` /
  :func:`to_torchvision_state_dict` (MobileNetV2, MobileNetV3);
* :mod:`~mobilecnn.weights.timm` - :func:`load_timm_state_dict` / :func:`to_timm_state_dict`
  (MobileNetV4);
* :mod:`~mobilecnn.weights.keymap` - the shared loading machinery: read, check every tensor, copy;
* :mod:`~mobilecnn.weights.registry` - the published ImageNet weights of each model;
* :mod:`~mobilecnn.weights.download` - downloading them into torch.hub's cache;
* :mod:`~mobilecnn.weights.pretrained` - ``pretrained=`` (a tag or a file) into a model.
"""

from __future__ import annotations

from .download import WeightsDownloadError, download_weights, weights_dir
from .keymap import StateDict, load_with_key_map, model_name, read_state_dict
from .pretrained import apply_pretrained, fetch_pretrained, read_weights_file
from .registry import PRETRAINED, PretrainedWeights, get_pretrained, list_pretrained
from .timm import load_timm_state_dict, timm_key_map, to_timm_state_dict
from .torchvision import load_torchvision_state_dict, to_torchvision_state_dict, torchvision_key_map

__all__ = [
    "PRETRAINED",
    "PretrainedWeights",
    "StateDict",
    "WeightsDownloadError",
    "apply_pretrained",
    "download_weights",
    "fetch_pretrained",
    "get_pretrained",
    "list_pretrained",
    "read_weights_file",
    "weights_dir",
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
