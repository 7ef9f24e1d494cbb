"""Every example notebook runs top to bottom, on this interpreter, in a scratch directory.

The notebooks are executed with nbclient by ``scripts/run_notebooks.py`` (the same code that
saves them with outputs). ``MOBILECNN_FAST=1`` lets notebook 03 train for a few steps only.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = (
    "01_building_blocks.ipynb",
    "02_model_zoo_costs.ipynb",
    "03_train_tinyimagenet.ipynb",
    "04_deploy.ipynb",
)
MAX_NOTEBOOK_BYTES = 500_000

pytest.importorskip("nbclient", reason="the notebook tests need the dev extras: nbclient")
pytest.importorskip("ipykernel", reason="the notebook tests need the dev extras: ipykernel")


def _runner() -> ModuleType:
    script = ROOT / "scripts" / "run_notebooks.py"
    spec = importlib.util.spec_from_file_location("run_notebooks", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_notebooks = _runner()


def _copy_to(tmp_path: Path, name: str) -> Path:
    source = EXAMPLES / name
    if not source.exists():
        pytest.fail(f"examples/{name} is missing")
    target = tmp_path / name
    shutil.copy(source, target)
    return target


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook_path = _copy_to(tmp_path, name)
    monkeypatch.setenv("MOBILECNN_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as in CI: the runner must still get the plots
    executed = run_notebooks.execute_notebook(notebook_path, working_dir=tmp_path, timeout=300)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert code_cells, f"{name} has no code"
    assert all(cell.get("execution_count") for cell in code_cells), "a cell did not run"
    errors = [o for cell in code_cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    images = [o for cell in code_cells for o in cell.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no plot into the notebook"


def test_kernel_is_this_interpreter(tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    notebook_path = tmp_path / "which_python.ipynb"
    source = "import os, sys\nprint(sys.executable)\nprint(os.getcwd())"
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), notebook_path)
    executed = run_notebooks.execute_notebook(notebook_path, working_dir=tmp_path, timeout=120)
    executable, cwd = executed.cells[0].outputs[0]["text"].split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(cwd).resolve() == tmp_path.resolve()


def test_failing_cell_fails_the_run(tmp_path: Path) -> None:
    import nbformat
    from nbclient.exceptions import CellExecutionError
    from nbformat.v4 import new_code_cell, new_notebook

    notebook_path = tmp_path / "broken.ipynb"
    cell = new_code_cell("assert 1 + 1 == 3, 'arithmetic'")
    nbformat.write(new_notebook(cells=[cell]), notebook_path)
    with pytest.raises(CellExecutionError, match="arithmetic"):
        run_notebooks.execute_notebook(notebook_path, working_dir=tmp_path, timeout=120)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_with_outputs(name: str) -> None:
    """Saved executed (so it reads on GitHub), every cell run in order, no error, small."""
    path = EXAMPLES / name
    assert path.exists(), f"examples/{name} is missing"
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{name} is too large; shrink its outputs"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    counts = [cell["execution_count"] for cell in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"{name} was not saved from one top-to-bottom run: python scripts/run_notebooks.py"
    )
    assert any(cell["outputs"] for cell in code_cells), f"{name} has no outputs"
    for cell in code_cells:
        assert all(o["output_type"] != "error" for o in cell["outputs"]), f"{name} saved an error"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
