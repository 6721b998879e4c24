#!/usr/bin/env bash
# The benchmark suite on a CUDA machine, in one command, for the `device` tool: the same
# benchmarks as `make bench-quick`, with deployments/gpu.yaml, printing the same summary table
# and then each model's table. The device machine has torch, transformers, numpy and opencv but
# not Ray, docTR, Z3 or the rest: `python -m benchmarks.gpu.gpu_wheels` packs Python 3.12 wheels
# into .gpu1, .gpu2, ... (each under the 64 MiB carry limit; its docstring has the device calls),
# and the last call runs `WHEELS=/tmp/gw bash benchmarks/gpu/gpu.sh`.
#
#   bash benchmarks/gpu/gpu.sh            # the quick suite; pass other suite flags to override
#
# Ran on an NVIDIA H200 on 2026-11-28: docs/benchmarks.md, "On a GPU".
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/gpu/gpu_setup.sh
export SERVE_APP_CONFIG=deployments/gpu.yaml SERVE_APP_OCR_DEVICE=cuda \
  SERVE_APP_EMBEDDINGS_DEVICE=cuda PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${OUT:-benchmarks/results}/gpu-suite"
# OCR in its GPU form (fp16, larger batches); the rest through the suite.
bash benchmarks/gpu/gpu_ocr.sh --quick || echo "gpu_ocr.sh failed; continuing"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then args=(--quick); fi
status=0
python3 -m benchmarks.harness.suite --only embeddings,search,plans,cold_start \
  --config deployments/gpu.yaml --out "$out" "${args[@]}" || status=$?
for table in "$out"/embeddings.md "$out"/search.md "$out"/plans.md; do
  if [ -f "$table" ]; then printf '\n== %s\n' "$table"; cat "$table"; fi
done
exit "$status"
