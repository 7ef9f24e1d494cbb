"""Shared fixtures: the devices to test on, with a visible reason for each one skipped.

The suite runs in parallel processes (pytest-xdist, ``-n auto`` in pyproject.toml, one file per
process at a time). Each process, and every process a test starts, then uses one thread:
several processes with several OpenMP threads each on the same cores slow PyTorch down many
times over.
"""

from __future__ import annotations

import os

import pytest
import torch

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the subprocesses tests start
    torch.set_num_threads(1)


def _device_params() -> list:
    params = [pytest.param("cpu", id="cpu")]
    cuda_reason = "CUDA is not available on this machine"
    params.append(
        pytest.param(
            "cuda",
            id="cuda",
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason=cuda_reason),
            ],
        )
    )
    mps_available = getattr(torch.backends, "mps", None) is not None and (
        torch.backends.mps.is_available()
    )
    params.append(
        pytest.param(
            "mps",
            id="mps",
            marks=pytest.mark.skipif(not mps_available, reason="MPS is not available here"),
        )
    )
    return params


DEVICES = _device_params()

# Compare CUDA against CPU in true fp32: TF32 convolutions/matmuls differ by ~1e-3.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device of this machine: CPU always, CUDA and MPS when present."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny models run faster on one thread, and a busy machine stays responsive."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
