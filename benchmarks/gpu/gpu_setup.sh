# Sourced by benchmarks/gpu/gpu.sh and gpu_ocr.sh: install the carried Python 3.12 wheels from
# $WHEELS (default wheels/; `python -m benchmarks.gpu.gpu_wheels` makes them, cutting files too big
# for one device call into NAME.partNN pieces, which join_parts.sh joins), and stop unless a
# CUDA device is there.
# gpu.sh sources this and then runs gpu_ocr.sh, which sources it again: install once.
WHEELS="${WHEELS:-wheels}"
if [ -d "$WHEELS" ] && [ -z "${GPU_WHEELS_INSTALLED:-}" ]; then
  bash benchmarks/gpu/join_parts.sh "$WHEELS"
  if compgen -G "$WHEELS/*.whl" > /dev/null; then
    python3 -m pip install --quiet --no-index --no-deps "$WHEELS"/*.whl
  fi
  export GPU_WHEELS_INSTALLED=1
fi
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for GPU machines"
print("GPU:", torch.cuda.get_device_name(0))
PY
