"""Table of medians and peer/ours ratios from a side-by-side directory.

  python beneficial_rl/bench/peers/summarize.py OUT_DIR

Reads OUT_DIR/r<round>_<name>.json as written by `run_side_by_side.sh`
(`ours` is the full `peer-workload` result; the peers are one JSON object
each, see `peer_common.py`) and prints, per round, a markdown table:
metric, ours (median), each peer's median, and peer / ours; then the GRPO
step's phase medians (generation, reference + reward, update, total). For tokens/s a
ratio above 1 means the peer is faster; for seconds per GRPO step a ratio
above 1 means the peer is slower. Standard library only, so it runs in
either virtualenv.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from typing import Any

# Peer driver -> (metric, row label).
PEERS = {
    "hf_generate": ("sampler", "HF transformers `generate`"),
    "tunix_sampler": ("sampler", "Tunix `Sampler`"),
    "trl_grpo": ("grpo", "TRL `GRPOTrainer` step"),
    "tunix_grpo": ("grpo", "Tunix `GRPOLearner` step"),
}


def read(path: pathlib.Path) -> dict[str, Any] | None:
  """The JSON object in `path`, or None when missing / not JSON."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def ours_medians(r: dict[str, Any]) -> dict[str, float]:
  """{'sampler': tokens/s, 'grpo': seconds} medians of our result."""
  return {"sampler": r["sampler"]["tokens_per_s"]["median"],
          "grpo": r["grpo"]["seconds"]["total"]["median"]}


def round_table(out_dir: pathlib.Path, rnd: int) -> list[str]:
  """Markdown rows for one round."""
  ours = read(out_dir / f"r{rnd}_ours.json")
  mine = ours_medians(ours) if ours else {}
  unit = {"sampler": "tok/s", "grpo": "s"}
  mesh_sizes = (ours or {}).get("mesh") or {}
  mesh = ", ".join(f"{k}={v}" for k, v in mesh_sizes.items()) or "one device"
  rows = [f"Round {rnd} (ours: load {ours['machine']['load_average_1min']:.1f}"
          f" at its start; {mesh})" if ours else f"Round {rnd} (ours missing)",
          "",
          "| peer | metric | peer median (min, max) | ours median | "
          "peer / ours | load before / after |",
          "| --- | --- | --- | --- | --- | --- |"]
  for name, (metric, label) in PEERS.items():
    p = read(out_dir / f"r{rnd}_{name}.json")
    if p is None:
      rows.append(f"| {label} | {metric} | not run (see r{rnd}_{name}.log)"
                  " | | | |")
      continue
    fmt = "{:,.0f}" if metric == "sampler" else "{:.2f}"
    spread = (f"{fmt.format(p['median'])} ({fmt.format(p['min'])}, "
              f"{fmt.format(p['max'])}) {unit[metric]}")
    ours_v = mine.get(metric)
    ratio = f"{p['median'] / ours_v:.2f}" if ours_v else "n/a"
    ours_s = f"{fmt.format(ours_v)} {unit[metric]}" if ours_v else "n/a"
    rows.append(f"| {label} {p['version']} | {metric} | {spread} | {ours_s} "
                f"| {ratio} | {p['load_before']:.1f} / "
                f"{p['load_after']:.1f} |")
  rows.append("")
  # GRPO step phases (medians, seconds), ours and the GRPO peers.
  phases = ("generation", "reference_reward", "update", "total")
  rows += ["| GRPO step phase (median s) | ours | " + " | ".join(
      PEERS[n][1] for n in ("trl_grpo", "tunix_grpo")) + " |",
           "| --- | --- | --- | --- |"]
  columns = [ours["grpo"]["seconds"] if ours else {}]
  columns += [(read(out_dir / f"r{rnd}_{n}.json") or {}).get("phases") or {}
              for n in ("trl_grpo", "tunix_grpo")]
  for k in phases:
    cells = [f"{c[k]['median']:.2f}" if k in c else "n/a" for c in columns]
    rows.append(f"| {k} | " + " | ".join(cells) + " |")
  return rows + [""]


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    sys.exit("usage: summarize.py OUT_DIR")
  out_dir = pathlib.Path(argv[1])
  rounds = sorted({int(m.group(1)) for f in out_dir.glob("r*_*.json")
                   if (m := re.match(r"r(\d+)_", f.name))})
  lines = []
  for rnd in rounds:
    lines += round_table(out_dir, rnd)
  lines.append("tokens/s: peer / ours > 1 means the peer is faster; "
               "GRPO seconds: peer / ours > 1 means the peer is slower.")
  print("\n".join(lines))


if __name__ == "__main__":
  main(sys.argv)
