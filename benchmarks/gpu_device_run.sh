#!/usr/bin/env bash
# The one device call of issue #23, prepared: on the lent GPU machine, from the repository root,
#   bash benchmarks/gpu_device_run.sh [gpu_check.py options]
# with `.whl` carried (made here first by `bash benchmarks/gpu_wheels.sh`). It installs the carried
# wheels, runs benchmarks/gpu_check.py (its default budget, 420 s, fits one call of 8 minutes: give the
# device call a timeout_s of about 540), and
# leaves in $OUT what the device tool brings back (8 files at most): the report, the jobs' seconds,
# and every job's log in one archive (posteriors and data stay behind).
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "install of the carried wheels failed: run benchmarks/gpu_wheels.sh here and carry .whl"; exit 2; }
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
out=${OUT:-/tmp/gpu-check-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/nvidia-smi.txt" 2>&1
rm -rf /tmp/gpu-check  # a rerun on a warm machine starts clean (no stale checkpoint)
# --report-copy: the report and jobs.csv reach $OUT after every check, so they come back even if the
# call is killed at its limit
python3 benchmarks/gpu_check.py --out /tmp/gpu-check --report-copy "$out" "$@" 2>&1 | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
tar czf "$out/logs.tgz" -C /tmp/gpu-check --exclude='*.h5' --exclude='*.npz' --exclude='*.pt' . 2>/dev/null
exit "$status"
