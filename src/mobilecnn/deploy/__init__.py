"""Shipping a trained model: fast inference, torchvision weights, exported files.

One job per module:

* :mod:`~mobilecnn.deploy.fold` - :func:`fold_batchnorm` and :func:`optimize_for_inference`
  (BatchNorm folded, channels_last, optional bfloat16; the original is untouched);
* :mod:`~mobilecnn.deploy.torchvision_weights` - :func:`load_torchvision_state_dict` /
  :func:`to_torchvision_state_dict`, explicit key rules between torchvision and mobilecnn;
* :mod:`~mobilecnn.deploy.timm_weights` - :func:`load_timm_state_dict` /
  :func:`to_timm_state_dict` for MobileNetV4;
* :mod:`~mobilecnn.deploy.export` - :func:`export_onnx` / :func:`export_torchscript`.

Feature extraction and freezing (:class:`FeatureExtractor`, :func:`freeze_backbone`) live in
:mod:`mobilecnn.models.features` and are re-exported here. See ``docs/deployment.md``.
"""

from __future__ import annotations

from ..devices import cpu_has_fast_bfloat16
from ..models.features import (
    FeatureExtractor,
    FrozenBatchNorm2d,
    create_feature_extractor,
    freeze_backbone,
    unfreeze_backbone,
)
from .export import export_onnx, export_torchscript
from .fold import fold_batchnorm, optimize_for_inference
from .timm_weights import load_timm_state_dict, timm_key_map, to_timm_state_dict
from .torchvision_weights import (
    load_torchvision_state_dict,
    to_torchvision_state_dict,
    torchvision_key_map,
)

__all__ = [
    "FeatureExtractor",
    "FrozenBatchNorm2d",
    "cpu_has_fast_bfloat16",
    "create_feature_extractor",
    "export_onnx",
    "export_torchscript",
    "fold_batchnorm",
    "freeze_backbone",
    "load_timm_state_dict",
    "load_torchvision_state_dict",
    "optimize_for_inference",
    "timm_key_map",
    "to_timm_state_dict",
    "to_torchvision_state_dict",
    "torchvision_key_map",
    "unfreeze_backbone",
]
