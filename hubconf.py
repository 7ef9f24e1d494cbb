"""torch.hub entry points: ``torch.hub.load("mobilecnn/mobilecnn", "mobilenet_v2",
pretrained=True)``, one per model name, each taking ``create_model``'s arguments."""

from __future__ import annotations

import sys
from pathlib import Path as _Path  # private: torch.hub.list shows every public callable
from typing import Any as _Any

dependencies = ["torch"]

_SRC = _Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and "mobilecnn" not in sys.modules:  # this clone's code, not an older install
    sys.path.insert(0, str(_SRC))

import mobilecnn  # noqa: E402


def _entry_point(name: str) -> _Any:
    def build(pretrained: _Any = False, **kwargs: _Any) -> _Any:
        return mobilecnn.create_model(name, pretrained=pretrained, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{name}: ``mobilecnn.create_model({name!r}, pretrained=..., **kwargs)``;"
                     " pretrained=True (published ImageNet weights), a tag, or a file path.")
    return build


for _name in mobilecnn.models.MODELS:
    globals()[_name] = _entry_point(_name)
