#!/usr/bin/env bash
# The CUDA checks, run on a lent GPU machine (no network there): install the wheels carried in .whl/
# (transformers, transformer-lens, nnsight and what they need beyond the machine's image), then
# tests/test_cuda.py, then the CPU unit suite on that machine, where a GPU is visible (a CPU model must stay on the CPU).
# Logs go to $OUT (or ./gpu-logs).
set -o pipefail
OUT=${OUT:-gpu-logs}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, transformers, nnsight, transformer_lens; print('torch', torch.__version__, 'transformers', transformers.__version__, 'nnsight', nnsight.__version__)"
[ -n "${SKIP_CUDA:-}" ] || timeout "${CUDA_S:-180}" python3 -m pytest -q -p no:cacheprovider -rfE tests/test_cuda.py 2>&1 | tee "$OUT/cuda.log" | tail -25
# test_loaders draws random bytes for its parameters at collection, which xdist's workers must agree on;
# llama.cpp is not installed there; 8 workers of 2 threads each (16 threads apiece oversubscribe the 16 cores)
OMP_NUM_THREADS=2 timeout "${SUITE_S:-240}" python3 -m pytest -q -p no:cacheprovider -n 8 -m "not real and not slow" -rfE --tb=line \
  --ignore=tests/test_loaders.py --ignore=tests/test_llama_cpp.py 2>&1 | tee "$OUT/suite.log" | tail -60
