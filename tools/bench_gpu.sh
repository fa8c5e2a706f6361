#!/usr/bin/env bash
# The GPU measurements of issue 17 in one run (a few minutes on one H100/H200-class card): the single-model modes
# at the laptop study's T (SNN-BP T=16, SNN-conv T=64) with the share of the fp32 matmul peak, and `bench --compare`
# (snnlib, its bf16 option, plain PyTorch, snnTorch, SpikingJelly) on CUDA, 5 repetitions.
#
#   bash tools/bench_gpu.sh            # writes results/bench/*_cuda*.json (or under $OUT where that is set)
#
# Run it from the repository root with a python3 that has torch with CUDA, scipy and PyYAML.  Where snnTorch and
# SpikingJelly cannot be installed from the network, put their wheels in .whl/ first (on a machine with pip):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl snntorch==1.0.0 spikingjelly==0.0.0.0.14
set -euo pipefail
out=${OUT:-results/bench}
mkdir -p "$out"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/snnlib-site .whl/*.whl
  export PYTHONPATH=/tmp/snnlib-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -m snnlib.bench --device cuda --modes ann_infer,snn_infer,snn_bptt,snn_attack --T 16 --batch 128 \
    --seconds 5 --peak --json "$out/modes_cuda_T16.json"
python3 -m snnlib.bench --device cuda --modes snn_infer,snn_attack --T 64 --batch 128 --seconds 5 \
    --json "$out/modes_cuda_T64.json"
python3 -m snnlib.bench --device cuda --compare --reps 5 --json "$out/compare_cuda.json"
