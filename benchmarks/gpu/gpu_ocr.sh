#!/usr/bin/env bash
# The OCR comparison of benchmarks/ocr.py on a CUDA machine (fp16), in one command, for the
# `device` tool. The machine has torch, numpy and opencv but neither docTR nor Ray: carry the
# Python 3.12 wheels that `python -m benchmarks.gpu.gpu_wheels` packs (see benchmarks/gpu/gpu.sh),
# and run with WHEELS=<where they are>. Ran on an NVIDIA H200 on 2026-11-28: docs/benchmarks.md, "On a GPU".
#
#   bash benchmarks/gpu/gpu_ocr.sh [--quick]      # (a) raw and (b) plain; (c) too when Ray imports
#
# Prints the same table as on CPU and writes $OUT/ocr (or benchmarks/results/gpu-ocr).
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/gpu/gpu_setup.sh
targets=raw,plain
if python3 -c "import ray.serve" 2>/dev/null; then targets=raw,plain,serve; fi
out="${OUT:-benchmarks/results}/gpu-ocr"
export SERVE_APP_OCR_DEVICE=cuda PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -m benchmarks.ocr --targets "$targets" --raw-batches 1,4,16,32 \
  --config deployments/gpu.yaml --out "$out" "$@"
