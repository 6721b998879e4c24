#!/usr/bin/env bash
# The OCR comparison of benchmarks/ocr.py on a CUDA machine (fp16), in one command, for the
# `device` tool. The machine has torch, numpy and opencv but neither docTR nor Ray: carry
# Python 3.12 wheels in wheels/ (pip download --python-version 3.12 --only-binary=:all: -d wheels
# python-doctr==1.1.0 ray[serve]==2.60.0 ...; the Ray wheel is over the 64 MiB carry limit:
# repack it without ray/jars/ or carry it in a second call on the warm machine).
#
#   bash benchmarks/gpu_ocr.sh [--quick]          # (a) raw and (b) plain; (c) too when Ray imports
#
# Prints the same table as on CPU and writes $OUT/ocr (or benchmarks/results/gpu-ocr).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_setup.sh
targets=raw,plain
if python -c "import ray.serve" 2>/dev/null; then targets=raw,plain,serve; fi
out="${OUT:-benchmarks/results}/gpu-ocr"
export SERVE_APP_OCR_DEVICE=cuda PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -m benchmarks.ocr --targets "$targets" --raw-batches 1,4,16,32 \
  --config deployments/gpu.yaml --out "$out" "$@"
