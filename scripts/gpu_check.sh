#!/usr/bin/env bash
# The CUDA verification, as one script for a machine with an NVIDIA GPU:
#   1. the project installed the way the README's test command says (skipped when this checkout
#      already imports with torch and the dev tools, as on a lent machine without a registry);
#   2. nvidia-smi and torch.cuda.get_device_name();
#   3. the CUDA test subset (scripts/cuda_check.sh);
#   4. the GPU benchmarks: inference (mobilecnn bench: eager fp32, optimized channels_last + AMP,
#      torch.compile) of MobileNetV2 at 224 and 64x64 (total_stride=16), the training step
#      (64x64, batch 256, AMP, channels_last) against torchvision's mobilenet_v2 in the same run,
#      and the data path (decoded cache + batch augmentation on the GPU) in images/s.
# Every log and CSV goes to $OUT (default gpu-results/). Exits non-zero at the first failure.
#
#     bash scripts/gpu_check.sh              # about 5-8 minutes on an H-class GPU
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg

if ! python -c "import torch, torchvision, pytest, mobilecnn" 2>/dev/null; then
    python3 -m venv .venv && . .venv/bin/activate
    pip install "torch==2.14.1" "torchvision==0.29.1" -e ".[dev]"
fi

run() {  # run NAME COMMAND...: echo the command, keep its output in $out/NAME.txt
    local name=$1; shift
    echo "+ $*" | tee "$out/$name.txt"
    "$@" 2>&1 | tee -a "$out/$name.txt"
}

run nvidia-smi nvidia-smi
run device python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"
run cuda-tests bash scripts/cuda_check.sh
run bench-224 python -m mobilecnn bench mobilenet_v2 --device cuda --input-size 224 \
    --batch-size 256 --compile --csv "$out/bench-224.csv"
run bench-64 python -m mobilecnn bench mobilenet_v2 --device cuda --input-size 64 \
    --total-stride 16 --num-classes 200 --batch-size 256 --compile --csv "$out/bench-64.csv"
run train-step python benchmarks/train.py --device cuda --batch-size 256
run data-path python benchmarks/data.py --device cuda --images 20000 --out "$out/data"
echo "all GPU checks done; logs in $out/"
