#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: print the device and run the CUDA test subset (the tests
# parametrized over devices, CUDA ids only). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("no CUDA device visible to torch; nothing to check")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device: {torch.cuda.get_device_name(0)}")
PY
python -m pytest -m cuda -k cuda -rs -q "$@"
