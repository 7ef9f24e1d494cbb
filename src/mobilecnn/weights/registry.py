"""The published ImageNet weights each model accepts: whose they are, where they live, how to
evaluate them.

torchvision publishes ``mobilenet_v2`` and ``mobilenet_v3_*`` (BSD-3-Clause) at
``download.pytorch.org`` with the first 8 hex digits of the file's SHA-256 in its name; timm
publishes ``mobilenetv1_100`` and ``mobilenetv4_conv_*`` (Apache-2.0) on the Hugging Face hub.
The facts (URLs, hashes, top-1, eval resize/crop/normalization) are those the two libraries
publish in their weight enums and pretrained configs; the first entry of each model is its
default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = ["PRETRAINED", "PretrainedWeights", "get_pretrained", "list_pretrained"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
TORCHVISION_LICENSE = "BSD-3-Clause"
TIMM_LICENSE = "Apache-2.0"
HF_HUB = "https://huggingface.co"


@dataclass(frozen=True)
class PretrainedWeights:
    """One upstream weight file and what evaluating it needs.

    ``layout`` is the key naming of the file (``"torchvision"`` or ``"timm"``); ``sha256`` the
    file's published SHA-256 or its published prefix (torchvision's 8 digits), ``None`` where
    upstream publishes none; ``top1`` the published ImageNet-1k top-1 (%) at ``input_size``
    with ``crop_pct``; ``model_kwargs`` what the architecture needs to reproduce upstream's
    outputs exactly (timm's MobileNetV1 uses ReLU6).
    """

    model: str
    tag: str
    layout: str
    url: str
    sha256: str | None
    license: str
    top1: float
    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    num_classes: int = 1000
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        """The name of the cached file under ``<TORCH_HOME>/hub/checkpoints``. torchvision's
        files keep their own names (a file torchvision downloaded is reused); timm's are named
        after the tag."""
        base = self.url.rsplit("/", 1)[-1]
        if self.layout == "timm":
            repo = self.url.split("/resolve/")[0].rsplit("/", 1)[-1]
            return f"{repo}-{base}"
        return base

    @property
    def upstream_name(self) -> str:
        """The name upstream gives these weights: torchvision's enum member
        (``MobileNet_V2_Weights.IMAGENET1K_V2``) or timm's ``architecture.tag``."""
        if self.layout == "timm":
            return self.url.split("/resolve/")[0].rsplit("/", 1)[-1]
        parts = [part.upper() if part[1:].isdigit() else part.capitalize()
                 for part in self.model.split("_")[1:]]  # v3, large -> V3, Large
        return f"{'_'.join(['MobileNet', *parts])}_Weights.{self.tag.upper()}"

    @property
    def source(self) -> str:
        """Where the weights come from, in one phrase."""
        return ("torchvision (download.pytorch.org)" if self.layout == "torchvision"
                else "timm (Hugging Face hub)")

    def cfg(self) -> dict[str, Any]:
        """The keys these weights add to ``model.pretrained_cfg`` (timm's names)."""
        return {
            "tag": self.tag, "source": self.source, "url": self.url,
            "hf_hub_id": self.url.split("/resolve/")[0][len(HF_HUB) + 1:]
            if self.url.startswith(HF_HUB) else None,
            "license": self.license, "top1": self.top1,
            "input_size": (3, self.input_size, self.input_size), "crop_pct": self.crop_pct,
            "interpolation": self.interpolation, "mean": self.mean, "std": self.std,
        }


def _torchvision(model: str, tag: str, file: str, top1: float, resize: int = 256
                 ) -> PretrainedWeights:
    return PretrainedWeights(
        model=model, tag=tag, layout="torchvision",
        url=f"https://download.pytorch.org/models/{file}",
        sha256=file.rsplit("-", 1)[-1].split(".")[0], license=TORCHVISION_LICENSE, top1=top1,
        # torchvision resizes to `resize`, then crops 224: 224 / crop_pct, rounded down,
        # must give `resize` back (0.875 -> 256, 0.965 -> 232)
        crop_pct=math.floor(224 / resize * 1000) / 1000, interpolation="bilinear")


def _timm(model: str, timm_name: str, top1: float, input_size: int = 224,
          crop_pct: float = 0.95, inception_norm: bool = False, **model_kwargs: Any
          ) -> PretrainedWeights:
    """timm's ``architecture.tag`` weights; the tag is ours too."""
    return PretrainedWeights(
        model=model, tag=timm_name.split(".", 1)[1], layout="timm",
        url=f"{HF_HUB}/timm/{timm_name}/resolve/main/pytorch_model.bin", sha256=None,
        license=TIMM_LICENSE, top1=top1, input_size=input_size, crop_pct=crop_pct,
        interpolation="bicubic", mean=INCEPTION_MEAN if inception_norm else IMAGENET_MEAN,
        std=INCEPTION_STD if inception_norm else IMAGENET_STD, model_kwargs=model_kwargs)


PRETRAINED: dict[str, tuple[PretrainedWeights, ...]] = {
    "mobilenet_v1": (
        _timm("mobilenet_v1", "mobilenetv1_100.ra4_e3600_r224_in1k", 75.382, crop_pct=0.875,
              inception_norm=True, activation=nn.ReLU6),
    ),
    "mobilenet_v2": (
        _torchvision("mobilenet_v2", "imagenet1k_v2", "mobilenet_v2-7ebf99e0.pth", 72.154, 232),
        _torchvision("mobilenet_v2", "imagenet1k_v1", "mobilenet_v2-b0353104.pth", 71.878),
    ),
    "mobilenet_v3_large": (
        _torchvision("mobilenet_v3_large", "imagenet1k_v2", "mobilenet_v3_large-5c1a4163.pth",
                     75.274, 232),
        _torchvision("mobilenet_v3_large", "imagenet1k_v1", "mobilenet_v3_large-8738ca79.pth",
                     74.042),
    ),
    "mobilenet_v3_small": (
        _torchvision("mobilenet_v3_small", "imagenet1k_v1", "mobilenet_v3_small-047dcff4.pth",
                     67.668),
    ),
    "mobilenet_v4_conv_small": (
        _timm("mobilenet_v4_conv_small", "mobilenetv4_conv_small.e2400_r224_in1k", 73.756,
              crop_pct=0.875),
        _timm("mobilenet_v4_conv_small", "mobilenetv4_conv_small.e1200_r224_in1k", 73.454,
              crop_pct=0.875),
    ),
    "mobilenet_v4_conv_medium": (
        _timm("mobilenet_v4_conv_medium", "mobilenetv4_conv_medium.e500_r256_in1k", 79.928,
              input_size=256),
        _timm("mobilenet_v4_conv_medium", "mobilenetv4_conv_medium.e500_r224_in1k", 79.094),
    ),
    "mobilenet_v4_conv_large": (
        _timm("mobilenet_v4_conv_large", "mobilenetv4_conv_large.e600_r384_in1k", 82.952,
              input_size=384),
        _timm("mobilenet_v4_conv_large", "mobilenetv4_conv_large.e500_r256_in1k", 81.862,
              input_size=256),
    ),
}
"""Per model name, the weights it accepts; the first is what ``pretrained=True`` loads."""


def list_pretrained(model: str | None = None) -> list[str]:
    """``"model.tag"`` for every published weight file (of ``model`` only, if given)."""
    names = [model] if model is not None else sorted(PRETRAINED)
    return [f"{name}.{weights.tag}" for name in names for weights in PRETRAINED.get(name, ())]


def get_pretrained(model: str, tag: str | None = None) -> PretrainedWeights:
    """The weights ``tag`` of ``model`` (its default when ``tag`` is None); a one-line
    ``ValueError`` names the choices otherwise."""
    choices = PRETRAINED.get(model, ())
    if not choices:
        raise ValueError(f"no published pretrained weights for {model!r}; models with weights: "
                         f"{', '.join(sorted(PRETRAINED))}; or pass pretrained=PATH")
    if tag is None:
        return choices[0]
    for weights in choices:
        if tag in (weights.tag, f"{model}.{weights.tag}", weights.upstream_name):
            return weights
    raise ValueError(f"no pretrained weights {tag!r} for {model}; choose one of: "
                     f"{', '.join(w.tag for w in choices)}, or a file path")
