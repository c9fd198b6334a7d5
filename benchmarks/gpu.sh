#!/usr/bin/env bash
# The GPU check of issue 15, as one prepared script: where CUDA is present, training examples/s and GPU utilisation of
# the hybrid's networks (the default model's) at a 200k-product catalogue, full softmax and sampled loss (Adam and
# lazy_adam), fp32 and bf16 autocast, and the loader's share of a step (it must stay under 10%). Without CUDA it
# says so and exits 0.
#
#   bash benchmarks/gpu.sh [--sessions 20000] [--output benchmarks/results/gpu.json]
#
# Needs the project's requirements installed (`pip install -r requirements.txt`); run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c 'import torch' 2>/dev/null; then
    echo "benchmarks/gpu.sh: torch is not importable by $(command -v python): install the requirements first" >&2
    exit 2
fi
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "benchmarks/gpu.sh: no CUDA device here (torch.cuda.is_available() is False): nothing to measure"
    exit 0
fi
exec python benchmarks/speed/gpu.py "$@"
