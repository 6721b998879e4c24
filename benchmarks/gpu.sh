#!/usr/bin/env bash
# The benchmark suite on a CUDA machine, in one command, for the `device` tool: the same
# benchmarks as `make bench-quick`, with deployments/gpu.yaml, printing the same summary table.
# The device machine has torch, numpy and opencv but not Ray, docTR or the other dependencies:
# carry Python 3.12 wheels in wheels/ (pip download --python-version 3.12 --only-binary=:all:
# -d wheels ...; the Ray wheel exceeds the 64 MiB carry limit: repack it without ray/jars/ or
# carry it in a second call on the warm machine).
#
#   bash benchmarks/gpu.sh                # the quick suite; pass other suite flags to override
#
# Not yet run on a GPU (no device was lent to this project's sessions so far).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/gpu_setup.sh
export SERVE_APP_CONFIG=deployments/gpu.yaml SERVE_APP_OCR_DEVICE=cuda \
  SERVE_APP_EMBEDDINGS_DEVICE=cuda PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-benchmarks/results}/gpu-suite"
# OCR in its GPU form (fp16, larger batches); the rest through the suite.
bash benchmarks/gpu_ocr.sh --quick || echo "gpu_ocr.sh failed; continuing"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then args=(--quick); fi
python -m benchmarks.suite --only embeddings,search,plans,cold_start --out "$out" "${args[@]}"
