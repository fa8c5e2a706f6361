#!/usr/bin/env bash
# The study's `gpu` profile (the laptop study scaled up, same shipped CIFAR-10 subset) on one CUDA GPU, packed for
# the trip back: the executed notebooks, the results JSON and the runner's log in one archive.
#
#   bash tools/study_gpu.sh [SECONDS] [NOTEBOOKS]     # e.g. bash tools/study_gpu.sh 540 01,04,05,07
#
# SECONDS (default: no limit) stops the runner after that long, leaving time to pack what finished; run the same
# command again on the same machine and it resumes (--resume; trained models, crafted examples and scored cells are
# in its cache). NOTEBOOKS (default: all) is the runner's --only. Results go to results/gpu-<card>-<date>/ (a second
# results set beside the CPU run's; `python -m snnlib.study compare results/laptop results/gpu-...` judges every
# claim from both), the executed notebooks to runs/gpu/book/, and the archive to $OUT/study_gpu.tar.gz where OUT is
# set (the device tool's output folder), else runs/gpu/study_gpu.tar.gz.
#
# Run it from the repository root with a python3 that has torch with CUDA, scipy, PyYAML and matplotlib. Packages
# that machine lacks travel as wheels in .whl/ (fetch them once on a machine with pip: bash tools/gpu_wheels.sh).
set -uo pipefail
limit=${1:-0}
only=${2:-}
py=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/snnlib-site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/snnlib-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
card=$("$py" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no-gpu')" \
       | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//' | tr 'A-Z' 'a-z')
results=${STUDY_GPU_RESULTS:-results/gpu-$card-$(date -u +%Y-%m-%d)}
runs=runs/gpu
mkdir -p "$runs" "$results"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$runs/gpu.txt" 2>&1 || true
args=(-m snnlib.study run --profile "${STUDY_GPU_PROFILE:-gpu}" --resume --keep-going --yes
      --results-dir "$results" --out-dir "$runs/book")
[ -n "$only" ] && args+=(--only "$only")
[ -n "${STUDY_GPU_PARAMS:-}" ] && for kv in $STUDY_GPU_PARAMS; do args+=(-p "$kv"); done
echo "study_gpu: $py ${args[*]} (limit ${limit}s)" | tee -a "$runs/runner.log"
if [ "$limit" -gt 0 ]; then
  timeout --signal=INT --kill-after=30 "$limit" "$py" "${args[@]}" 2>&1 | tee -a "$runs/runner.log"
else
  "$py" "${args[@]}" 2>&1 | tee -a "$runs/runner.log"
fi
rc=${PIPESTATUS[0]}
echo "study_gpu: runner exit code $rc" | tee -a "$runs/runner.log"
archive=${OUT:-$runs}/study_gpu.tar.gz
tar -czf "$archive" --exclude=.study_log.lock "$results" "$runs/book" "$runs/runner.log" "$runs/gpu.txt" 2>/dev/null
echo "study_gpu: packed $(du -h "$archive" | cut -f1) into $archive (unpack in the repository root: tar -xzf ...)"
exit "$rc"
