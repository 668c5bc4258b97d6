"""Aggregate comparison of two runs against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval import aggregate_compare
from beneficial_rl.eval import compare
from beneficial_rl.eval import runner
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.utils import io as io_lib

NAME = "test_group_gap"
GROUPS = {"i0": "x", "i1": "x", "i2": "x", "i3": "y", "i4": "y", "i5": "y"}
ITEMS = [EvalItem(i, (Message("user", f"q {i}"),), ("a", "b"), 0,
                  metadata={"group": g}) for i, g in GROUPS.items()]


def group_gap(items, records):
  """mean raw of group x - mean raw of group y; NaN if a group is absent."""
  by = {"x": [], "y": []}
  for it, r in zip(items, records):
    if r.raw is not None:
      by[it.metadata["group"]].append(r.raw)
  if not by["x"] or not by["y"]:
    return {"gap": float("nan")}
  return {"gap": float(np.mean(by["x"]) - np.mean(by["y"]))}


@pytest.fixture
def gap_benchmark():
  registry.load_builtin()
  bench = registry.register(Benchmark(
      NAME, "fairness", "non_health", lambda: ITEMS, "mc_logprob", "accuracy",
      aggregate=group_gap))
  yield bench
  registry.unregister(NAME)


def _write_run(path, raws):
  """raws: {id: raw}; the summary's aggregate is computed from them."""
  records = [aggregate_compare.record_from_row(
      {"id": i, "raw": r, "score": r}) for i, r in raws.items()]
  items = [it for it in ITEMS if it.id in raws]
  summary = {"run": {"policy_id": path.name}, "benchmarks": {NAME: {
      "domain": "non_health", "scoring": "mc_logprob",
      "aggregates": group_gap(items, records)}},
             "skipped": {}, "failed": {}, "complete": True}
  io_lib.atomic_write_jsonl(runner.items_path(path, NAME), [
      {"benchmark": NAME, "id": i, "prompt_hash": f"h{i}", "response": "",
       "raw": r, "score": r, "refused": None, "choice": 0, "judge_id": None,
       "details": {}} for i, r in raws.items()])
  io_lib.atomic_write_json(path / "summary.json", summary)
  return path


BASE = {"i0": 1.0, "i1": 1.0, "i2": 0.0, "i3": 0.0, "i4": 0.0, "i5": 1.0}
CAND = {"i0": 1.0, "i1": 0.0, "i2": 0.0, "i3": 0.0, "i4": 1.0, "i5": 1.0}


def test_values_difference_and_ci(tmp_path, gap_benchmark):
  a = _write_run(tmp_path / "a", BASE)
  b = _write_run(tmp_path / "b", CAND)
  result = compare.compare_dirs(a, b, num_resamples=0,
                                aggregate_resamples=400)
  entry = result["aggregates"][NAME]
  m = entry["metrics"]["gap"]
  # Baseline: 2/3 - 1/3 = 1/3; candidate: 1/3 - 2/3 = -1/3.
  assert m["baseline"] == pytest.approx(1 / 3)
  assert m["candidate"] == pytest.approx(-1 / 3)
  assert m["difference"] == pytest.approx(-2 / 3)
  assert entry["num_items"] == 6 and entry["ci_unavailable"] is None
  assert m["ci_low"] <= m["difference"] <= m["ci_high"]
  assert m["ci_low"] < m["ci_high"]
  # Per-item differences are in {-1, 0, 1}; a gap difference is a
  # difference of two such means, so it lies in [-2, 2].
  assert -2 <= m["ci_low"] and m["ci_high"] <= 2
  text = compare.format_report(result)
  assert f"{NAME}.gap: 0.333 -> -0.333 (-0.667)" in text


def test_ci_matches_a_hand_written_paired_bootstrap(gap_benchmark):
  rec = lambda raws: [aggregate_compare.record_from_row(
      {"id": i, "raw": r}) for i, r in raws.items()]
  cis = aggregate_compare.bootstrap_aggregate_difference(
      gap_benchmark, ITEMS, rec(BASE), rec(CAND), ["gap"],
      num_resamples=300, seed=7)
  rng = np.random.default_rng(7)
  base, cand = np.array(list(BASE.values())), np.array(list(CAND.values()))
  is_x = np.array([GROUPS[i] == "x" for i in BASE])
  diffs = []
  for _ in range(300):
    idx = rng.integers(0, 6, size=6)
    x, y = is_x[idx], ~is_x[idx]
    if x.any() and y.any():
      gap = lambda v: v[idx][x].mean() - v[idx][y].mean()
      diffs.append(gap(cand) - gap(base))
  assert cis["gap"] == pytest.approx(
      (np.percentile(diffs, 2.5), np.percentile(diffs, 97.5)))


def test_identical_runs_give_a_zero_width_ci(tmp_path, gap_benchmark):
  a = _write_run(tmp_path / "a", BASE)
  b = _write_run(tmp_path / "b", BASE)
  m = compare.compare_dirs(a, b, num_resamples=0, aggregate_resamples=50
                           )["aggregates"][NAME]["metrics"]["gap"]
  assert (m["difference"], m["ci_low"], m["ci_high"]) == (0.0, 0.0, 0.0)


def test_unknown_benchmark_reports_values_without_ci(tmp_path, gap_benchmark):
  a = _write_run(tmp_path / "a", BASE)
  b = _write_run(tmp_path / "b", CAND)
  registry.unregister(NAME)
  try:
    entry = compare.compare_dirs(a, b, num_resamples=0)["aggregates"][NAME]
  finally:
    registry.register(gap_benchmark)
  assert entry["metrics"]["gap"]["difference"] == pytest.approx(-2 / 3)
  assert entry["metrics"]["gap"]["ci_low"] is None
  assert "items unavailable" in entry["ci_unavailable"]
  assert NAME in entry["ci_unavailable"]


def test_undefined_aggregate_has_no_difference(tmp_path, gap_benchmark):
  a = _write_run(tmp_path / "a", BASE)
  # Only group x scored in the candidate: its gap is undefined (NaN -> null).
  b = _write_run(tmp_path / "b", {"i0": 1.0, "i1": 0.0})
  m = compare.compare_dirs(a, b, num_resamples=0, aggregate_resamples=50
                           )["aggregates"][NAME]["metrics"]["gap"]
  assert m["baseline"] == pytest.approx(1 / 3)
  assert m["candidate"] is None and m["difference"] is None


def test_runs_without_aggregates_have_none(tmp_path, gap_benchmark):
  a = _write_run(tmp_path / "a", BASE)
  b = _write_run(tmp_path / "b", CAND)
  for path in (a, b):
    s = io_lib.read_json(path / "summary.json")
    s["benchmarks"][NAME]["aggregates"] = {}
    io_lib.atomic_write_json(path / "summary.json", s)
  result = compare.compare_dirs(a, b, num_resamples=0)
  assert result["aggregates"] == {}
  assert "aggregates (" not in compare.format_report(result)
