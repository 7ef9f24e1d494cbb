"""Execute the example notebooks top to bottom and save them with their outputs.

    python scripts/run_notebooks.py                       # all of examples/*.ipynb, in place
    python scripts/run_notebooks.py examples/01_building_blocks.ipynb
    python scripts/run_notebooks.py --fast --no-save      # what the test suite does

The kernel is always *this* interpreter (``sys.executable``), whatever Jupyter kernels are
installed elsewhere, so the notebooks run against the mobilecnn of the current environment.
Needs the dev extras: ``pip install -e ".[dev]"`` (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MAX_NOTEBOOK_BYTES = 500_000
KERNEL_NAME = "python3"


def execute_notebook(path: Path, working_dir: Path | None = None, timeout: int = 600) -> Any:
    """Run every cell of the notebook at ``path``; returns the executed ``NotebookNode``.

    Cells run with ``working_dir`` (default: a fresh temporary folder, so that nothing left
    over from an earlier run shows in the outputs) as the current directory, in a fresh
    kernel on ``sys.executable``. A failing cell raises
    ``nbclient.exceptions.CellExecutionError`` with the cell's traceback.
    """
    try:
        import nbformat
        from ipykernel.kernelspec import write_kernel_spec
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager
        from nbclient import NotebookClient
    except ImportError as error:
        raise SystemExit(
            f"running notebooks needs the dev extras ({error.name} is missing): "
            'pip install -e ".[dev]"'
        ) from None

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="mobilecnn-notebook-") as scratch:
        kernels = Path(scratch) / "kernels"
        workdir = Path(scratch) / "work"
        workdir.mkdir()
        # a kernel spec of our own, so no other installed "python3" kernel can be picked up
        write_kernel_spec(kernels / KERNEL_NAME)
        kernel_manager = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
        )
        client = NotebookClient(
            notebook,
            km=kernel_manager,
            kernel_name=KERNEL_NAME,
            timeout=timeout,
            record_timing=False,
            coalesce_streams=True,
            resources={"metadata": {"path": str(working_dir or workdir)}},
        )
        # the kernel inherits the environment, less a MPLBACKEND (CI sets Agg) that would
        # keep matplotlib's inline backend from putting the plots into the notebook
        environment = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        client.execute(env=environment)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: examples/*.ipynb)")
    parser.add_argument("--fast", action="store_true",
                        help="set MOBILECNN_FAST=1 so that notebooks take their short path")
    parser.add_argument("--no-save", action="store_true",
                        help="run only; keep the files as they are")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)

    import nbformat

    notebooks = args.notebooks or sorted(EXAMPLES.glob("*.ipynb"))
    if not notebooks:
        print(f"no notebooks found in {EXAMPLES}", file=sys.stderr)
        return 1
    if args.fast:
        os.environ["MOBILECNN_FAST"] = "1"
    for path in notebooks:
        if not path.is_file():
            print(f"no such notebook: {path}", file=sys.stderr)
            return 1
        start = time.perf_counter()
        notebook = execute_notebook(path, timeout=args.timeout)
        elapsed = time.perf_counter() - start
        if args.no_save:
            print(f"ran {path} in {elapsed:.0f} s")
            continue
        nbformat.write(notebook, path)
        size = path.stat().st_size
        print(f"ran and saved {path} in {elapsed:.0f} s ({size / 1000:.0f} KB)")
        if size > MAX_NOTEBOOK_BYTES:
            print(f"{path} is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,} limit: "
                  "make its outputs smaller", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
