#!/usr/bin/env bash
# Join the NAME.part00, NAME.part01, ... pieces in folder $1 (as `python -m
# benchmarks.gpu.gpu_wheels` cuts files too big for one device call) back into NAME.
set -euo pipefail
for first in "$1"/*.part00; do
  [ -e "$first" ] || continue
  whole="${first%.part00}"
  cat "$whole".part[0-9][0-9] > "$whole"
  rm -f "$whole".part[0-9][0-9]
done
