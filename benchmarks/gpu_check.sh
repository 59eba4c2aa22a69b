#!/usr/bin/env bash
# GPU readiness in one go (about 5 minutes on one GPU): the GPU-marked tests, then
# the biLM benchmark on the GPU per shape and precision, then the `elmo` component
# on the GPU (original shape, EWT dev sentences). Run from the repository
# root in an environment where spacy-elmo is installed:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
PY
python -m pytest -m gpu -q -rs tests/test_gpu.py
status=$?
for model in small original; do
  for precision in fp32 bf16; do
    python benchmarks/bench_bilm.py --model "$model" --device cuda --precision "$precision" --sentences 1024 --batch-size 64 || status=1
  done
done
for run in "fp32 4096" "fp32 65536" "bf16 65536"; do
  set -- $run
  python benchmarks/bench_component.py --model original --gpu-id 0 --precision "$1" --max-batch-items "$2" || status=1
done
exit $status
