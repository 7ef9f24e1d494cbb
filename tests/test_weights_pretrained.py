"""``create_model(name, pretrained=...)``: published weights served from 127.0.0.1 (generated
here, nothing is downloaded from the internet), local files in every layout, fresh classifiers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import mobilecnn
from mobilecnn import models
from mobilecnn.weights import registry
from mobilecnn.weights.download import WeightsDownloadError, weights_dir
from mobilecnn.weights.registry import get_pretrained, list_pretrained
from mobilecnn.weights.timm import to_timm_state_dict
from mobilecnn.weights.torchvision import to_torchvision_state_dict


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``routes[path] = (body, mode)``; honours ``Range``; records each request's
    range. Mode "truncated" announces the whole length and sends half."""

    routes: dict[str, tuple[bytes, str]] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        self.seen.append((self.path, self.headers.get("Range")))
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, mode = self.routes[self.path]
        start = 0
        if self.headers.get("Range", "").startswith("bytes="):
            start = int(self.headers["Range"][6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        self.wfile.write(part[: len(part) // 2] if mode == "truncated" else part)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, tuple[bytes, str]], list]]:
    routes: dict[str, tuple[bytes, str]] = {}
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Handler,), {"routes": routes, "seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes, seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    return tmp_path / "torch-home"


def _randomized(model: nn.Module) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.2 + 0.9)
    return model.eval()


def _saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _publish(server, monkeypatch, name: str, body: bytes, *, mode: str = "ok",
             sha256: str | None = "match") -> registry.PretrainedWeights:
    """Point ``name``'s default registry entry at the local server, serving ``body``."""
    base, routes, _ = server
    digest = hashlib.sha256(body).hexdigest()
    entry = get_pretrained(name)
    file = f"{name}-{digest[:8]}.pth"
    published = dataclasses.replace(
        entry, url=f"{base}/{file}",
        sha256=digest[:8] if sha256 == "match" else sha256)
    routes[f"/{file}"] = (body, mode)
    monkeypatch.setitem(registry.PRETRAINED, name, (published, *registry.PRETRAINED[name][1:]))
    return published


def test_registry_lists_upstream_files_with_hashes_and_licenses() -> None:
    v2 = get_pretrained("mobilenet_v2")
    assert v2.url == "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth"
    assert (v2.sha256, v2.license, v2.top1, v2.crop_pct) == ("7ebf99e0", "BSD-3-Clause",
                                                             72.154, 0.965)
    assert int(v2.input_size / v2.crop_pct) == 232  # torchvision's resize_size
    v1 = get_pretrained("mobilenet_v1")
    assert v1.layout == "timm" and v1.license == "Apache-2.0" and v1.sha256 is None
    assert v1.url.endswith("timm/mobilenetv1_100.ra4_e3600_r224_in1k/resolve/main/"
                           "pytorch_model.bin")
    assert "mobilenet_v2.imagenet1k_v1" in list_pretrained()
    assert all(w.layout == "timm" for n in list_pretrained() if n.startswith(("mobilenet_v1",
               "mobilenet_v4")) for w in [get_pretrained(*n.split(".", 1))])
    with pytest.raises(ValueError, match="choose one of: imagenet1k_v2, imagenet1k_v1"):
        get_pretrained("mobilenet_v2", "nope")


def test_registry_matches_torchvision_and_timm_as_installed() -> None:
    """Every fact torchvision's weight enums and timm's pretrained cfgs publish is ours too."""
    tv_models = pytest.importorskip("torchvision.models", reason="torchvision is not installed")
    from timm.models import get_pretrained_cfg  # timm comes with the dev extra

    checked = 0
    for choices in registry.PRETRAINED.values():
        for weights in choices:
            if weights.layout == "torchvision":
                enum_name, member = weights.upstream_name.split(".")
                upstream = getattr(getattr(tv_models, enum_name), member)
                preset = upstream.transforms()
                assert weights.url == upstream.url
                assert weights.top1 == upstream.meta["_metrics"]["ImageNet-1K"]["acc@1"]
                assert int(224 / weights.crop_pct) == preset.resize_size[0]
                assert preset.crop_size[0] == weights.input_size
                assert list(weights.mean) == preset.mean and list(weights.std) == preset.std
                assert weights.interpolation == preset.interpolation.value
            else:
                cfg = get_pretrained_cfg(weights.upstream_name)
                assert cfg is not None, weights.upstream_name
                assert weights.url.startswith(f"https://huggingface.co/{cfg.hf_hub_id}/")
                assert (3, weights.input_size, weights.input_size) == cfg.input_size
                assert (weights.crop_pct, weights.interpolation) == (cfg.crop_pct,
                                                                     cfg.interpolation)
                assert (weights.mean, weights.std) == (tuple(cfg.mean), tuple(cfg.std))
                assert weights.license.lower() == cfg.license
            checked += 1
    assert checked == len(list_pretrained()) == 12


def test_weights_page_lists_every_file() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "weights.md").read_text()
    for name, choices in registry.PRETRAINED.items():
        for weights in choices:
            row = next((line for line in page.splitlines()
                        if weights.url in line and f"`{name}`" in line), None)
            assert row is not None, f"docs/weights.md has no row for {weights.url}"
            assert f"{weights.top1:.3f}" in row and weights.license in row
            assert (weights.sha256 or "none published") in row


def test_pretrained_true_downloads_verifies_caches_and_loads(server, monkeypatch) -> None:
    reference = _randomized(models.create_model("mobilenet_v3_small"))
    body = _saved(to_torchvision_state_dict(reference))
    published = _publish(server, monkeypatch, "mobilenet_v3_small", body)
    model = mobilecnn.create_model("mobilenet_v3_small", pretrained=True, progress=False).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    cached = weights_dir() / published.file_name
    assert cached.read_bytes() == body
    assert sorted(p.name for p in cached.parent.iterdir() if not p.name.endswith(".lock")) == [
        cached.name]  # no .partial left
    cfg = model.pretrained_cfg
    assert (cfg["tag"], cfg["license"], cfg["top1"]) == ("imagenet1k_v1", "BSD-3-Clause", 67.668)
    assert cfg["classifier_pretrained"] is True and cfg["input_size"] == (3, 224, 224)
    # a second call reads the cache: the server no longer has the file
    server[1].pop(f"/{published.url.rsplit('/', 1)[-1]}")
    again = mobilecnn.create_model("mobilenet_v3_small", pretrained="imagenet1k_v1",
                                   progress=False).eval()
    torch.testing.assert_close(again(x), reference(x), rtol=0, atol=0)


def test_checksum_mismatch_is_refused_and_nothing_is_cached(server, monkeypatch) -> None:
    body = _saved(to_torchvision_state_dict(models.create_model("mobilenet_v3_small")))
    published = _publish(server, monkeypatch, "mobilenet_v3_small", body, sha256="0123abcd")
    with pytest.raises(WeightsDownloadError, match="expected 0123abcd.*nothing was cached"):
        mobilecnn.create_model("mobilenet_v3_small", pretrained=True, progress=False)
    folder = weights_dir()
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []
    assert not (folder / published.file_name).exists()


def test_interrupted_download_resumes_where_it_stopped(server, monkeypatch) -> None:
    reference = _randomized(models.create_model("mobilenet_v3_small"))
    body = _saved(to_torchvision_state_dict(reference))
    published = _publish(server, monkeypatch, "mobilenet_v3_small", body, mode="truncated")
    with pytest.raises(WeightsDownloadError, match="run again to resume"):
        mobilecnn.create_model("mobilenet_v3_small", pretrained=True, progress=False)
    partial = weights_dir() / (published.file_name + ".partial")
    assert partial.stat().st_size == len(body) // 2
    assert not (weights_dir() / published.file_name).exists()
    route = f"/{published.url.rsplit('/', 1)[-1]}"
    server[1][route] = (body, "ok")
    model = mobilecnn.create_model("mobilenet_v3_small", pretrained=True, progress=False)
    assert server[2][-1] == (route, f"bytes={len(body) // 2}-")  # only the rest was fetched
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x), reference(x), rtol=0, atol=0)
    assert not partial.exists()


def test_offline_names_the_url_and_where_to_put_the_file(monkeypatch) -> None:
    entry = dataclasses.replace(get_pretrained("mobilenet_v2"),
                                url="http://127.0.0.1:9/mobilenet_v2-7ebf99e0.pth")
    monkeypatch.setitem(registry.PRETRAINED, "mobilenet_v2", (entry,))
    with pytest.raises(WeightsDownloadError) as caught:
        mobilecnn.create_model("mobilenet_v2", pretrained=True, progress=False)
    message = str(caught.value)
    assert "\n" not in message and entry.url in message
    assert str(weights_dir() / "mobilenet_v2-7ebf99e0.pth") in message
    assert "pretrained=PATH" in message


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_file_in_torchvision_and_timm_layouts(tmp_path: Path, suffix: str) -> None:
    save_file = pytest.importorskip("safetensors.torch", reason="safetensors is not installed "
                                    "(pip install 'mobilecnn[safetensors]')").save_file
    cases = [("mobilenet_v3_small", to_torchvision_state_dict, {}),
             ("mobilenet_v4_conv_small", to_timm_state_dict, {}),
             ("mobilenet_v1", to_timm_state_dict, {"activation": nn.ReLU6})]
    for name, export, kwargs in cases:
        reference = _randomized(models.create_model(name, **kwargs))
        path = tmp_path / f"{name}{suffix}"
        state = {k: v.contiguous() for k, v in export(reference).items()}  # type: ignore[arg-type]
        if suffix == ".pth":
            torch.save(state, path)
        else:
            save_file(state, str(path))
        model = mobilecnn.create_model(name, pretrained=path).eval()
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0, msg=name)
        assert model.pretrained_cfg["file"] == str(path)


def test_timm_mobilenet_v1_is_built_with_relu6() -> None:
    timm = pytest.importorskip("timm", reason="timm is not installed (pip install "
                               "'mobilecnn[dev]')")
    reference = _randomized(timm.create_model("mobilenetv1_100"))
    path_state = {k: v.clone() for k, v in reference.state_dict().items()}
    ours = mobilecnn.create_model("mobilenet_v1", pretrained=_write(path_state)).eval()
    x = torch.randn(1, 3, 64, 64) * 4  # activations above 6: ReLU and ReLU6 would differ
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def _write(state: dict[str, torch.Tensor]) -> Path:
    path = Path(torch.hub.get_dir()) / "local.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("kwargs", [{"num_classes": 10}, {"total_stride": 16}])
def test_other_classes_or_stride_load_the_backbone_and_a_fresh_classifier(kwargs) -> None:
    reference = _randomized(models.create_model("mobilenet_v2"))
    path = _write(to_torchvision_state_dict(reference))
    model = mobilecnn.create_model("mobilenet_v2", pretrained=path, **kwargs)
    fresh = models.create_model("mobilenet_v2", **kwargs)
    for key, value in model.state_dict().items():
        if key.startswith("classifier.1."):
            assert not torch.equal(value, reference.state_dict()[key]) or value.numel() == 0
            assert value.shape == fresh.state_dict()[key].shape
        else:
            assert torch.equal(value, reference.state_dict()[key]), key
    assert model.pretrained_cfg["classifier_pretrained"] is False
    if "total_stride" in kwargs:
        assert "input_size" not in model.pretrained_cfg or \
            model.pretrained_cfg["input_size"] != (3, 224, 224)


def test_wrong_files_and_values_fail_in_one_line(tmp_path: Path) -> None:
    v4 = _write(to_timm_state_dict(models.create_model("mobilenet_v4_conv_small")))
    with pytest.raises(ValueError, match="timm weights are mapped only for MobileNetV1, "):
        mobilecnn.create_model("mobilenet_v2", pretrained=v4)
    with pytest.raises(ValueError, match="timm weights for mobilenet_v4_conv_small"):
        mobilecnn.create_model("mobilenet_v4_conv_medium", pretrained=v4)
    junk = tmp_path / "junk.pth"
    torch.save({"layer.weight": torch.zeros(1)}, junk)
    with pytest.raises(ValueError, match="holds no torchvision, timm or mobilecnn"):
        mobilecnn.create_model("mobilenet_v2", pretrained=junk)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        mobilecnn.create_model("mobilenet_v2", pretrained=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="width_mult=1.0"):
        mobilecnn.create_model("mobilenet_v2", pretrained=True, width_mult=0.5)
    with pytest.raises(ValueError, match="3-channel"):
        mobilecnn.create_model("mobilenet_v2", pretrained=v4, in_channels=1)


def test_safetensors_without_the_extra_is_one_line(tmp_path: Path, monkeypatch) -> None:
    import sys

    path = tmp_path / "w.safetensors"
    path.write_bytes(b"0")
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'mobilecnn\[safetensors\]'"):
        mobilecnn.create_model("mobilenet_v2", pretrained=path)


def test_own_checkpoint_layout_loads(tmp_path: Path) -> None:
    reference = _randomized(models.create_model("mobilenet_v3_small", num_classes=7))
    path = tmp_path / "ours.pt"
    torch.save({"model": reference.state_dict()}, path)
    model = mobilecnn.create_model("mobilenet_v3_small", num_classes=7, pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_predict_prints_the_top5_imagenet_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    state = to_torchvision_state_dict(models.create_model("mobilenet_v3_small"))
    state["classifier.3.bias"] = torch.zeros(1000)
    state["classifier.3.bias"][281] = 50.0  # "tabby" must win, "espresso" come second
    state["classifier.3.bias"][967] = 45.0
    weights = tmp_path / "v3s.pth"
    torch.save(state, weights)
    photo = tmp_path / "photo.jpg"
    image_module.new("RGB", (120, 90), (200, 120, 40)).save(photo)
    command = [sys.executable, "-m", "mobilecnn", "predict", "--model", "mobilenet_v3_small",
               "--pretrained", str(weights), str(photo)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{photo}:" and len(lines) == 6
    assert lines[1].endswith("tabby (281)") and lines[2].endswith("espresso (967)")
    assert "99." in lines[1]
    wrong = subprocess.run(command[:6] + [str(photo)], capture_output=True, text=True,
                           timeout=300)  # --model without --pretrained
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == ("mobilecnn: error: --model and --pretrained go together "
                                    "(e.g. --model mobilenet_v2 --pretrained "
                                    "mobilenet_v2-7ebf99e0.pth)")


def test_num_classes_0_loads_the_backbone_for_pooled_features() -> None:
    reference = _randomized(models.create_model("mobilenet_v3_large"))
    path = _write(to_torchvision_state_dict(reference))
    try:
        models.create_model("mobilenet_v3_large", num_classes=0)
    except ValueError:
        pytest.skip("this build's models do not take num_classes=0 yet")
    model = mobilecnn.create_model("mobilenet_v3_large", pretrained=path, num_classes=0).eval()
    x = torch.randn(1, 3, 64, 64)
    features = model(x)
    assert features.shape == (1, 1280)  # V3's head layer (classifier.0) is loaded too
    with torch.no_grad():
        pooled = reference.forward_features(x).mean((2, 3))
        expected = reference.classifier[:-1](pooled)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
