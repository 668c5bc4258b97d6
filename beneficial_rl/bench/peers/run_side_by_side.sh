#!/usr/bin/env bash
# Runs our peer-workload benchmark and the peer frameworks side by side.
#
#   bash beneficial_rl/bench/peers/run_side_by_side.sh OUT_DIR [ROUNDS]
#
# Absolute times drift on a shared machine, so each round runs our benchmark
# (`python -m beneficial_rl.bench peer-workload --runs=10`, sampler + GRPO
# step in one process) and then every peer driver, one after the other, and
# the ratios are taken within a round. ROUNDS defaults to 2. Each run's JSON
# goes to OUT_DIR/r<round>_<name>.json (its log to .log), the load average
# before and after the whole thing to OUT_DIR/loadavg.txt, and the table of
# medians and ratios is printed at the end (summarize.py).
#
# Environment: OURS_PY (default: python) runs our benchmark;
# PEERS_PY (default ../peers-venv/bin/python) runs the peer drivers, a
# separate virtualenv holding google-tunix, trl, transformers and a CPU torch
# (never a dependency of the project). RUNS (default 10) and WARMUP
# (default 2) are passed to every run. OURS_FLAGS (default empty) adds flags
# to our benchmark only, e.g. OURS_FLAGS=--host_devices=2 for its
# data-parallel run over both cores.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUT_DIR [ROUNDS]" >&2
  exit 2
fi
out_dir=$1
rounds=${2:-2}
ours_py=${OURS_PY:-python}
peers_py=${PEERS_PY:-../peers-venv/bin/python}
runs=${RUNS:-10}
warmup=${WARMUP:-2}
read -r -a ours_flags <<< "${OURS_FLAGS:-}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
peers=(hf_generate tunix_sampler trl_grpo tunix_grpo)

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
cd "$root"
echo "before $(cat /proc/loadavg)" > "$out_dir/loadavg.txt"

run_one() {  # name, command...: JSON to r<round>_<name>.json, rest to .log
  local name=$1
  shift
  local base="$out_dir/r${round}_${name}"
  rm -f "$base.json" "$base.stdout" "$base.log"
  echo "[round $round] $name (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  if ! "$@" > "$base.stdout" 2> "$base.log"; then
    echo "[round $round] $name FAILED, see $base.log" >&2
  fi
}

for round in $(seq 1 "$rounds"); do
  run_one ours "$ours_py" -m beneficial_rl.bench peer-workload \
    --runs="$runs" --warmup="$warmup" --out="$out_dir/r${round}_ours.json" \
    ${ours_flags[@]+"${ours_flags[@]}"}
  for name in "${peers[@]}"; do
    run_one "$name" "$peers_py" "$here/$name.py" --runs="$runs" \
      --warmup="$warmup"
    # The driver's result is the last stdout line (one JSON object).
    tail -n 1 "$out_dir/r${round}_${name}.stdout" \
      > "$out_dir/r${round}_${name}.json" || true
  done
done

echo "after $(cat /proc/loadavg)" >> "$out_dir/loadavg.txt"
"$ours_py" "$here/summarize.py" "$out_dir"
