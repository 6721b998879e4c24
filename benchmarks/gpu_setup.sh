# Sourced by benchmarks/gpu.sh and gpu_ocr.sh: install the carried Python 3.12 wheels (wheels/)
# and stop unless a CUDA device is there.
if [ -d wheels ]; then
  python -m pip install --quiet --no-index --find-links wheels --no-deps wheels/*.whl
fi
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script is for GPU machines"
print("GPU:", torch.cuda.get_device_name(0))
PY
