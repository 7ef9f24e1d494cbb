"""Ready for PyPI: metadata, what the sdist and wheel hold, README links that work on a PyPI
page, a light ``import mobilecnn``, and the folder lock where ``flock`` does not exist."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from mobilecnn.fileio import FolderLockedError, _filelocked

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 "
                                  "needs tomli")

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/mobilecnn/mobilecnn"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_project_metadata() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]  # PEP 639
    assert not any(c.startswith("License ::") for c in project["classifiers"])  # PEP 639
    for prefix in ("Development Status ::", "Operating System ::",
                   "Programming Language :: Python :: 3.10"):
        assert any(c.startswith(prefix) for c in project["classifiers"]), prefix
    urls = project["urls"]
    assert {"Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    assert all(url.startswith(REPO) for url in urls.values())
    # filelock comes with torch; the core stays what torch installs anyway
    assert [d.split(">")[0] for d in project["dependencies"]] == ["torch", "typing-extensions",
                                                                  "filelock"]


def test_readme_links_work_on_a_pypi_page() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    relative = [link for link in links if not link.startswith(("https://", "http://"))]
    assert not relative, f"relative links break on PyPI: {relative}"
    for link in links:
        if link.startswith(f"{REPO}/blob/main/"):
            path = link[len(f"{REPO}/blob/main/"):].split("#")[0]
            assert (ROOT / path).exists(), f"{link} points at a missing file"


@pytest.mark.slow
def test_sdist_and_wheel_contents(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="the build package is not installed (pip install "
                        "'mobilecnn[dev]')")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "tests", source / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                             str(tmp_path / "dist"), str(source)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    sdist = next((tmp_path / "dist").glob("*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert "LICENSE" in names and "src/mobilecnn/data/imagenet_classes.txt" in names
    assert not [n for n in names if n.startswith("tests")], "the sdist ships tests without " \
        "their helpers and data; it must hold none"
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        metadata = archive.read(next(f for f in files if f.endswith("METADATA"))).decode()
    assert "mobilecnn/data/imagenet_classes.txt" in files and "mobilecnn/py.typed" in files
    assert any(f.endswith("licenses/LICENSE") for f in files)
    assert "License-Expression: MIT" in metadata
    assert f"Project-URL: Changelog, {REPO}/blob/main/CHANGELOG.md" in metadata


def test_import_and_cli_parser_leave_deploy_code_unloaded() -> None:
    code = ("import sys, mobilecnn, mobilecnn.cli; mobilecnn.cli.build_parser(); "
            "print(sorted(m for m in ('statistics', 'mobilecnn.deploy.bench', "
            "'mobilecnn.deploy.export', 'mobilecnn.deploy.qat') if m in sys.modules)); "
            "print(mobilecnn.export_onnx.__module__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "mobilecnn.deploy.export"]


def test_filelock_fallback_locks_and_cleans_up(tmp_path: Path) -> None:
    """The lock used where fcntl.flock does not exist (Windows), exercised here directly."""
    target = tmp_path / "runs" / "v2"
    created = [target, target.parent]
    target.mkdir(parents=True)
    with pytest.raises(FolderLockedError, match="in use by another process"):  # noqa: SIM117
        for _ in _filelocked(target, "run folder", created):
            assert (target / ".lock").exists()
            for _ in _filelocked(target, "run folder", []):
                pass  # pragma: no cover - the second holder must be refused
    assert not tmp_path.joinpath("runs").exists()  # lock file and created folders removed
    target.mkdir(parents=True)
    (target / "kept.txt").write_text("x")
    for _ in _filelocked(target, "run folder", created):
        pass
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
