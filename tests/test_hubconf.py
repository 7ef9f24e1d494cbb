"""``hubconf.py``: ``torch.hub.load(<clone>, name, source="local", pretrained=...)``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from mobilecnn import models
from mobilecnn.weights.torchvision import to_torchvision_state_dict

ROOT = Path(__file__).resolve().parents[1]


def test_every_model_is_an_entry_point() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    assert spec is not None and spec.loader is not None
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # what torch.hub.list shows: the public callables of hubconf.py
    entries = [name for name in dir(hubconf) if callable(getattr(hubconf, name))
               and not name.startswith("_")]
    assert sorted(entries) == sorted(models.MODELS)
    assert hubconf.dependencies == ["torch"]
    assert "pretrained=True" in hubconf.mobilenet_v2.__doc__


def test_load_builds_and_loads_weights(tmp_path: Path) -> None:
    reference = models.create_model("mobilenet_v3_small").eval()
    path = tmp_path / "v3s.pth"
    torch.save(to_torchvision_state_dict(reference), path)
    model = torch.hub.load(str(ROOT), "mobilenet_v3_small", source="local", pretrained=path)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=0)
    small = torch.hub.load(str(ROOT), "mobilenet_v1", source="local", num_classes=10,
                           width_mult=0.25)
    assert small(x).shape == (1, 10)
    with pytest.raises(ValueError, match="no published pretrained weights|choose one of"):
        torch.hub.load(str(ROOT), "mobilenet_v2", source="local", pretrained="nope")
