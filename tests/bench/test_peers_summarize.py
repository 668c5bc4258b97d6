"""`bench/peers/summarize.py`, run by path as `run_side_by_side.sh` runs it,
on a hand-made side-by-side directory."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

SCRIPT = (pathlib.Path(__file__).resolve().parents[2] / "beneficial_rl" /
          "bench" / "peers" / "summarize.py")


def _ours(tok_s: float, step_s: float, mesh):
  phases = {k: {"median": v} for k, v in (
      ("generation", 0.25), ("reference_reward", 0.15), ("update", 0.6),
      ("total", step_s))}
  return {"sampler": {"tokens_per_s": {"median": tok_s}},
          "grpo": {"seconds": phases},
          "machine": {"load_average_1min": 1.25}, "mesh": mesh}


def _peer(median: float, phases=None):
  record = {"median": median, "min": median * 0.9, "max": median * 1.1,
            "version": "9.9", "load_before": 1.0, "load_after": 2.0}
  if phases:
    record["phases"] = {k: {"median": v} for k, v in phases.items()}
  return record


def _write(d: pathlib.Path, name: str, record) -> None:
  (d / name).write_text(json.dumps(record))


def test_summarize_tables_ratios_mesh_and_missing_peers(tmp_path):
  _write(tmp_path, "r1_ours.json",
         _ours(8000.0, 1.0, {"data": 2, "fsdp": 1, "tensor": 1}))
  _write(tmp_path, "r1_tunix_sampler.json", _peer(4000.0))
  _write(tmp_path, "r1_tunix_grpo.json", _peer(
      1.5, {"generation": 0.5, "total": 1.5}))
  _write(tmp_path, "r2_ours.json", _ours(6000.0, 2.0, None))
  out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)],
                       capture_output=True, text=True, check=True).stdout
  round1, round2 = out.split("Round 2")
  assert "load 1.2 at its start; data=2, fsdp=1, tensor=1" in round1
  # 4,000 / 8,000 tok/s and 1.5 / 1.0 s.
  assert ("| Tunix `Sampler` 9.9 | sampler | 4,000 (3,600, 4,400) tok/s | "
          "8,000 tok/s | 0.50 | 1.0 / 2.0 |") in round1
  assert "| Tunix `GRPOLearner` step 9.9 | grpo | 1.50 (1.35, 1.65) s | " \
         "1.00 s | 1.50 |" in round1
  assert "| generation | 0.25 | n/a | 0.50 |" in round1
  assert "| HF transformers `generate` | sampler | not run" in round1
  assert "one device" in round2
  assert "| total | 2.00 | n/a | n/a |" in round2
