#!/usr/bin/env bash
# Runs every benchmark one after another and prints the machine, each
# script's table and the load average before each. A script that fails is
# reported and the others still run; the exit status is 1 if any failed.
#   SMALL_FILES_TMPFS (1)  also run small_files.sh with TMPDIR=/dev/shm
#   DISPATCH_1M       (1)  also run dispatch.sh with MESSAGES=1000000
# Every variable of the scripts (REPEAT, COUNT, BUILD_FROM, PROFILE, ...)
# passes through.
set -euo pipefail
cd "$(dirname "$0")"

# With BUILD_FROM=head every script builds the same commit, even when
# colleagues commit meanwhile.
if [[ ${BUILD_FROM:-worktree} == head && -z ${BUILD_REV:-} ]]; then
  BUILD_REV=$(git -C .. rev-parse HEAD)
  export BUILD_REV
fi
echo "# smsdrop benchmarks"
echo "date:    $(date -u)"
echo "commit:  $(git -C .. rev-parse --short "${BUILD_REV:-HEAD}") (BUILD_FROM=${BUILD_FROM:-worktree})"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
echo "memory:  $(free -h | awk '/^Mem:/{print $2 " total, " $7 " available"}')"
echo "disk:    TMPDIR ${TMPDIR:-/tmp} on $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2{print $2}')"
echo

failed=()
step() {
  local label=$1; shift
  echo "## $label"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  local t0=$SECONDS
  if env "$@"; then
    echo "(took $((SECONDS - t0)) s)"
  else
    echo "FAILED: $label (exit $?, after $((SECONDS - t0)) s)"
    failed+=("$label")
  fi
  echo
}

step "ftp_throughput" bash ftp_throughput.sh
step "small_files" bash small_files.sh
if [[ ${SMALL_FILES_TMPFS:-1} == 1 && $(df -T /dev/shm 2>/dev/null | awk 'NR==2{print $2}') == tmpfs ]]; then
  step "small_files on tmpfs" TMPDIR=/dev/shm bash small_files.sh
fi
step "latency" bash latency.sh
step "ingest" bash ingest.sh
step "dispatch" bash dispatch.sh
if [[ ${DISPATCH_1M:-1} == 1 ]]; then
  step "dispatch 1,000,000" MESSAGES=1000000 bash dispatch.sh
fi
step "sending" bash sending.sh
step "smpp" bash smpp.sh

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all benchmarks ran"
