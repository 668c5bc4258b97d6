"""compare on hand-made run directories, against hand-computed statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from beneficial_rl.eval import compare
from beneficial_rl.eval import runner
from beneficial_rl.utils import io as io_lib

DOMAINS = {"b_health": "health", "b_nh1": "non_health", "b_nh2": "non_health"}


def _write_run(path, items, scoring=None, extra_benchmarks=()):
  """items: {benchmark: [(id, score, refused), ...]} -> a run directory."""
  summary = {"run": {"policy_id": f"policy-{path.name}"}, "benchmarks": {},
             "skipped": {}, "failed": {}, "complete": True}
  for name, rows in items.items():
    summary["benchmarks"][name] = {
        "domain": DOMAINS.get(name, "non_health"),
        "scoring": (scoring or {}).get(name, "mc_logprob")}
    io_lib.atomic_write_jsonl(runner.items_path(path, name), [
        {"benchmark": name, "id": i, "prompt_hash": f"h-{name}-{i}",
         "response": "", "raw": s, "score": s, "refused": r, "choice": None,
         "judge_id": None, "details": {}} for i, s, r in rows])
  for name in extra_benchmarks:
    summary["benchmarks"][name] = {"domain": "non_health"}
  io_lib.atomic_write_json(path / "summary.json", summary)
  return path


F, T = False, True
BASE = {
    "b_health": [("h0", 0, F), ("h1", 1, F), ("h2", 0, T), ("h3", 1, F),
                 ("h4", 0, F), ("h5", 1, F)],
    "b_nh1": [("n0", .2, None), ("n1", .4, None), ("n2", .6, None),
              ("n3", .8, None), ("n5", None, None)],
    "b_nh2": [("m0", 1, F), ("m1", 1, F), ("m2", 0, F), ("m3", 0, F),
              ("m4", 1, F)],
}
CAND = {
    "b_health": [("h0", 1, F), ("h1", 1, F), ("h2", 1, F), ("h3", 1, F),
                 ("h4", 0, T), ("h5", 1, F)],
    # n4 exists only here and n5 is unscored in the baseline: both left out.
    "b_nh1": [("n0", .3, None), ("n1", .5, None), ("n2", .7, None),
              ("n3", .9, None), ("n4", 0., None), ("n5", 1., None)],
    "b_nh2": [("m0", 0, F), ("m1", 0, F), ("m2", 1, F), ("m3", 0, F),
              ("m4", 0, F)],
}


def _welch_p(a, b) -> float:
  """Welch's two-sided p from the textbook formulas."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  t = (b.mean() - a.mean()) / math.sqrt(va + vb)
  df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  return 2 * sp_stats.t.sf(abs(t), df)


@pytest.fixture
def runs(tmp_path):
  return (_write_run(tmp_path / "base", BASE, extra_benchmarks=("only_a",)),
          _write_run(tmp_path / "cand", CAND))


def test_differences_and_bh_q_values(runs):
  result = compare.compare_dirs(*runs, num_resamples=0)
  by = {c["benchmark"]: c for c in result["comparison"]["benchmarks"]}
  assert set(by) == {"b_health", "b_nh1", "b_nh2"}
  # b_health: 3/6 -> 5/6; b_nh1 on n0..n3: +0.1 each; b_nh2: 3/5 -> 1/5.
  assert by["b_health"]["difference_points"] == pytest.approx(100 / 3)
  assert by["b_nh1"]["difference_points"] == pytest.approx(10)
  assert by["b_nh2"]["difference_points"] == pytest.approx(-40)
  assert by["b_nh1"]["num_baseline"] == by["b_nh1"]["num_candidate"] == 4
  assert result["aligned"]["b_nh1"] == {"num_baseline": 5, "num_candidate": 6,
                                        "num_compared": 4}
  p = {"b_health": _welch_p([0, 1, 0, 1, 0, 1], [1, 1, 1, 1, 0, 1]),
       "b_nh1": _welch_p([.2, .4, .6, .8], [.3, .5, .7, .9]),
       "b_nh2": _welch_p([1, 1, 0, 0, 1], [0, 0, 1, 0, 0])}
  for name in p:
    assert by[name]["p_value"] == pytest.approx(p[name], rel=1e-9)
  # BH by hand: sort ascending, q_(i) = min over j >= i of p_(j) * m / j.
  order = sorted(p, key=p.get)
  q = {}
  running = 1.0
  for rank in range(3, 0, -1):
    name = order[rank - 1]
    running = min(running, p[name] * 3 / rank)
    q[name] = running
  for name in q:
    assert by[name]["q_value"] == pytest.approx(q[name], rel=1e-9)
  s = result["comparison"]["summary"]
  assert s["num_improved"] == 2
  assert s["fraction_improved"] == pytest.approx(2 / 3)
  assert s["mean_difference_points"] == pytest.approx((100 / 3 + 10 - 40) / 3)
  wins = sum(q[n] < 0.05 and by[n]["difference"] > 0 for n in q)
  losses = sum(q[n] < 0.05 and by[n]["difference"] < 0 for n in q)
  assert (s["num_significant_improvements"],
          s["num_significant_regressions"]) == (wins, losses)

  split = result["domain_split"]
  assert split["in_domain_benchmarks"] == ["b_health"]
  assert sorted(split["out_of_domain_benchmarks"]) == ["b_nh1", "b_nh2"]
  assert split["in_domain_summary"]["mean_difference_points"] == (
      pytest.approx(100 / 3))
  assert split["out_of_domain_summary"]["mean_difference_points"] == (
      pytest.approx(-15))
  assert result["only_in_baseline"] == ["only_a"]
  assert result["only_in_candidate"] == []


def test_refusal_conditional_comparison(runs):
  result = compare.compare_dirs(*runs, num_resamples=0)
  cond = result["refusal_conditional"]
  by = {c["benchmark"]: c for c in cond["benchmarks"]}
  # b_nh1 has no refusal flags; b_health keeps h0, h1, h3, h5.
  assert set(by) == {"b_health", "b_nh2"}
  assert "b_nh1" in result["refusal_conditional_excluded"]
  h = by["b_health"]
  assert h["refusal"]["num_shared"] == 6 and h["refusal"]["num_kept"] == 4
  assert h["refusal"]["refusal_rate_baseline"] == pytest.approx(1 / 6)
  assert h["refusal"]["refusal_rate_candidate"] == pytest.approx(1 / 6)
  assert h["mean_baseline"] == pytest.approx(0.75)
  assert h["difference_points"] == pytest.approx(25)
  p_h = _welch_p([0, 1, 1, 1], [1, 1, 1, 1])
  p_2 = _welch_p([1, 1, 0, 0, 1], [0, 0, 1, 0, 0])
  assert h["p_value"] == pytest.approx(p_h, rel=1e-9)
  lo, hi = sorted([p_h, p_2])
  assert sorted(c["q_value"] for c in cond["benchmarks"]) == pytest.approx(
      [min(lo * 2, hi), hi])


def test_cli_writes_json_and_prints_table(runs, tmp_path, capsys):
  out = tmp_path / "out" / "cmp.json"
  assert compare.main([str(runs[0]), str(runs[1]), f"--out={out}",
                       "--num_resamples=200"]) == 0
  printed = capsys.readouterr().out
  assert "b_health" in printed and "+33.33" in printed
  assert "health: 1 benchmarks" in printed
  assert "only in baseline: only_a" in printed
  saved = json.loads(out.read_text())
  assert saved == json.loads(json.dumps(compare.compare_dirs(
      *runs, num_resamples=200)))
  ci = {c["benchmark"]: c for c in saved["comparison"]["benchmarks"]}
  assert ci["b_nh2"]["ci_low_points"] <= -40 <= ci["b_nh2"]["ci_high_points"]
  # Default output path: beside the candidate.
  assert compare.main([str(runs[0]), str(runs[1]), "--num_resamples=0"]) == 0
  assert (runs[1] / "compare_vs_base.json").is_file()


def test_prompt_mismatch_scoring_warning_and_missing_run(tmp_path):
  base = _write_run(tmp_path / "a", {"b_nh2": BASE["b_nh2"]})
  cand = _write_run(tmp_path / "b", {"b_nh2": CAND["b_nh2"]},
                    scoring={"b_nh2": "generated_choice"})
  result = compare.compare_dirs(base, cand, num_resamples=0)
  assert result["warnings"] == ["b_nh2: scored by mc_logprob in the baseline "
                                "but generated_choice in the candidate"]
  summary = io_lib.read_json(base / "summary.json")
  summary["benchmarks"]["b_nh2"]["mc_normalization"] = "sum"
  io_lib.atomic_write_json(base / "summary.json", summary)
  assert compare.compare_dirs(base, cand, num_resamples=0)["warnings"][1] == (
      "b_nh2: choices picked by sum log-prob in the baseline but None in the "
      "candidate")
  path = runner.items_path(cand, "b_nh2")
  rows = [json.loads(l) for l in path.read_text().splitlines()]
  rows[2]["prompt_hash"] = "changed"
  io_lib.atomic_write_jsonl(path, rows)
  with pytest.raises(ValueError, match="item 'm2': prompt hash h-b_nh2-m2 in "
                     ".* but changed in"):
    compare.compare_dirs(base, cand, num_resamples=0)
  with pytest.raises(FileNotFoundError, match="no summary.json"):
    compare.compare_dirs(base, tmp_path / "nothing")
