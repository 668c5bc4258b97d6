"""Compares two evaluation runs: `python -m beneficial_rl.eval.compare A B`.

A is the baseline, B the candidate; differences are B - A. Each run is an
output directory of `python -m beneficial_rl.eval` (summary.json plus
items/<benchmark>.jsonl). For every benchmark scored in both runs, items are
aligned by id (items scored in one run only, or unscored, are left out), and
the aligned oriented scores go to `eval.stats.compare_runs`:

  * per benchmark: means, difference in points, bootstrap CI, Welch p-value
    and the Benjamini-Hochberg q-value over the compared benchmarks;
  * summary: fraction improved, significant wins and losses (q < threshold),
    mean difference in points;
  * the same restricted to items neither model refused (benchmarks with
    refusal flags and at least 2 such items; BH over that family);
  * the summary split into health and non-health benchmarks;
  * benchmark-level aggregates both runs report (BBQ bias score, DiscrimEval
    gaps, ...): values, difference and a paired bootstrap CI
    (`eval.aggregate_compare`).

An item whose prompt hash differs between the runs means the two runs saw
different data: that is an error. Benchmarks scored differently (an
mc_logprob benchmark scored by generated choice in one run) are compared and
listed under 'warnings'.

  python -m beneficial_rl.eval.compare outputs/eval/base outputs/eval/rl \\
      [--out=compare.json] [--q_threshold=0.05] [--num_resamples=2000] \\
      [--data_dir=../shared/benchmarks]

Output: a table on stdout and a JSON file written atomically (default
B/compare_vs_<name of A>.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from beneficial_rl.eval import aggregate_compare
from beneficial_rl.eval import runner
from beneficial_rl.eval import stats
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.utils import io as io_lib

IN_DOMAIN = "health"


@dataclasses.dataclass(frozen=True)
class LoadedRun:
  """One run directory.

  Attributes:
    path: the directory.
    summary: its summary.json.
    rows: benchmark -> item id -> stored row, for scored benchmarks.
  """
  path: pathlib.Path
  summary: dict[str, Any]
  rows: dict[str, dict[str, dict[str, Any]]]

  @property
  def policy_id(self) -> str:
    return self.summary.get("run", {}).get("policy_id", "")


def load_run(path: io_lib.PathLike) -> LoadedRun:
  """Reads summary.json and the item files of its scored benchmarks.

  Raises:
    FileNotFoundError: no summary.json in `path`.
    DataError: a malformed summary or item row (file, line and field named).
  """
  path = pathlib.Path(path)
  summary_path = path / runner.SUMMARY_FILE
  if not summary_path.is_file():
    raise FileNotFoundError(f"{summary_path}: not an evaluation output "
                            "directory (no summary.json)")
  summary = io_lib.read_json(summary_path)
  if not isinstance(summary, dict) or not isinstance(
      summary.get("benchmarks"), dict):
    raise io_lib.DataError(summary_path, None, "benchmarks",
                           "missing or not an object")
  rows = {}
  for name, entry in summary["benchmarks"].items():
    if not isinstance(entry, dict) or entry.get("domain") is None:
      raise io_lib.DataError(summary_path, None, f"benchmarks.{name}.domain",
                             "missing")
    rows[name] = runner.read_item_rows(runner.items_path(path, name), name)
  return LoadedRun(path, summary, rows)


def _aligned(name: str, a: LoadedRun, b: LoadedRun
             ) -> tuple[stats.BenchmarkScores, stats.BenchmarkScores] | None:
  """Scores of items scored in both runs, in A's order; None if < 2."""
  ra, rb = a.rows[name], b.rows[name]
  ids = [i for i, row in ra.items()
         if row["score"] is not None and i in rb
         and rb[i]["score"] is not None]
  for i in ids:
    if ra[i]["prompt_hash"] != rb[i]["prompt_hash"]:
      raise ValueError(
          f"benchmark {name!r}, item {i!r}: prompt hash "
          f"{ra[i]['prompt_hash']} in {a.path} but {rb[i]['prompt_hash']} in "
          f"{b.path}; the runs evaluated different data")
  if len(ids) < 2:
    return None

  def scores(rows: Mapping[str, dict[str, Any]]) -> stats.BenchmarkScores:
    refused = [rows[i]["refused"] for i in ids]
    return stats.BenchmarkScores(
        np.array([rows[i]["score"] for i in ids], np.float64), tuple(ids),
        None if any(r is None for r in refused) else np.array(refused, bool))

  return scores(ra), scores(rb)


def compare_dirs(baseline: io_lib.PathLike, candidate: io_lib.PathLike, *,
                 q_threshold: float = 0.05, num_resamples: int = 2_000,
                 aggregate_resamples: int = 1_000,
                 seed: int = 0) -> dict[str, Any]:
  """The comparison of two run directories as a JSON-ready dict.

  Keys: baseline / candidate (paths and policy ids), aligned (per benchmark:
  items in A, in B, compared), comparison (`stats.RunComparison`),
  refusal_conditional (or None) with refusal_conditional_excluded, domain
  split (`stats.DomainSplit`, in-domain 'health'), only_in_baseline,
  only_in_candidate, excluded (benchmarks with < 2 shared scored items),
  aggregates (`aggregate_compare.compare_aggregates`; its bootstrap uses
  `aggregate_resamples`), warnings.
  """
  a, b = load_run(baseline), load_run(candidate)
  shared = [n for n in a.summary["benchmarks"] if n in b.summary["benchmarks"]]
  warnings, excluded, aligned, runs_a, runs_b = [], {}, {}, {}, {}
  for name in shared:
    ea, eb = a.summary["benchmarks"][name], b.summary["benchmarks"][name]
    if ea.get("scoring") != eb.get("scoring"):
      warnings.append(f"{name}: scored by {ea.get('scoring')} in the baseline "
                      f"but {eb.get('scoring')} in the candidate")
    if ea.get("mc_normalization") != eb.get("mc_normalization"):
      warnings.append(f"{name}: choices picked by {ea.get('mc_normalization')}"
                      f" log-prob in the baseline but "
                      f"{eb.get('mc_normalization')} in the candidate")
    pair = _aligned(name, a, b)
    if pair is None:
      excluded[name] = "fewer than 2 items scored in both runs"
      continue
    runs_a[name], runs_b[name] = pair
    aligned[name] = {"num_baseline": len(a.rows[name]),
                     "num_candidate": len(b.rows[name]),
                     "num_compared": int(pair[0].scores.size)}
  if not runs_a:
    raise ValueError(f"no benchmark is scored (with >= 2 shared items) in "
                     f"both {a.path} and {b.path}")
  names = list(runs_a)
  kwargs = dict(q_threshold=q_threshold, num_resamples=num_resamples,
                seed=seed)
  comparison = stats.compare_runs(runs_a, runs_b, benchmarks=names, **kwargs)
  domains = {n: a.summary["benchmarks"][n]["domain"] for n in names}
  split = stats.domain_split(comparison, domains, IN_DOMAIN)

  answered, skipped_refusal = [], {}
  for name in names:
    try:
      stats.restrict_to_answered(name, runs_a[name], runs_b[name])
      answered.append(name)
    except ValueError as e:
      skipped_refusal[name] = str(e)
  conditional = None
  if answered:
    conditional = stats.compare_runs(runs_a, runs_b, benchmarks=answered,
                                     condition_on_refusal=True, **kwargs)
  return {
      "baseline": {"path": str(a.path), "policy_id": a.policy_id},
      "candidate": {"path": str(b.path), "policy_id": b.policy_id},
      "domains": domains,
      "aligned": aligned,
      "comparison": comparison.to_dict(),
      "domain_split": split.to_dict(),
      "refusal_conditional": (conditional.to_dict() if conditional is not None
                              else None),
      "refusal_conditional_excluded": skipped_refusal,
      "only_in_baseline": sorted(set(a.summary["benchmarks"]) - set(shared)),
      "only_in_candidate": sorted(set(b.summary["benchmarks"]) - set(shared)),
      "excluded": excluded,
      "aggregates": aggregate_compare.compare_aggregates(
          a.summary, a.rows, b.summary, b.rows,
          num_resamples=aggregate_resamples, seed=seed),
      "warnings": warnings,
  }


# ------------------------------------------------------------------ table --

def _num(x: float | None, spec: str = "+.2f") -> str:
  return "-" if x is None else format(x, spec)


def _summary_line(label: str, s: Mapping[str, Any]) -> str:
  return (f"{label}: {s['num_benchmarks']} benchmarks, improved "
          f"{s['num_improved']} ({_num(s['fraction_improved'], '.0%')}), "
          f"significant wins {s['num_significant_improvements']}, losses "
          f"{s['num_significant_regressions']} (q < {s['q_threshold']}), "
          f"mean difference {_num(s['mean_difference_points'])} points")


def format_report(result: Mapping[str, Any]) -> str:
  """The comparison as a text table plus summary lines."""
  header = ("benchmark", "domain", "n", "base", "cand", "diff pts",
            "95% CI", "p", "q", "")
  rows = []
  q_thr = result["comparison"]["summary"]["q_threshold"]
  for c in result["comparison"]["benchmarks"]:
    sig = ""
    if c["q_value"] is not None and c["q_value"] < q_thr:
      sig = "win" if c["difference"] > 0 else "loss"
    rows.append((c["benchmark"], result["domains"][c["benchmark"]],
                 str(c["num_baseline"]), _num(c["mean_baseline"], ".3f"),
                 _num(c["mean_candidate"], ".3f"),
                 _num(c["difference_points"]),
                 f"[{_num(c['ci_low_points'])}, {_num(c['ci_high_points'])}]",
                 _num(c["p_value"], ".3g"), _num(c["q_value"], ".3g"), sig))
  widths = [max(len(r[i]) for r in [header] + rows)
            for i in range(len(header))]
  line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
  out = [f"baseline:  {result['baseline']['path']} "
         f"({result['baseline']['policy_id']})",
         f"candidate: {result['candidate']['path']} "
         f"({result['candidate']['policy_id']})", "",
         line(header), line(["-" * w for w in widths])]
  out += [line(r) for r in rows]
  out += ["", _summary_line("all", result["comparison"]["summary"])]
  split = result["domain_split"]
  out.append(_summary_line(f"{split['in_domain']}",
                           split["in_domain_summary"]))
  out.append(_summary_line("non-health", split["out_of_domain_summary"]))
  if result["refusal_conditional"] is not None:
    out.append(_summary_line("answered by both (refusals removed)",
                             result["refusal_conditional"]["summary"]))
  for key in ("only_in_baseline", "only_in_candidate"):
    if result[key]:
      out.append(f"{key.replace('_', ' ')}: {', '.join(result[key])}")
  for name, why in result["excluded"].items():
    out.append(f"excluded {name}: {why}")
  out += aggregate_compare.format_aggregates(result.get("aggregates") or {})
  for w in result["warnings"]:
    out.append(f"warning: {w}")
  return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m beneficial_rl.eval.compare",
      description="Compare two evaluation runs (candidate B vs baseline A).")
  parser.add_argument("baseline", help="run directory A (baseline)")
  parser.add_argument("candidate", help="run directory B (candidate)")
  parser.add_argument("--out", default=None,
                      help="JSON output (default: B/compare_vs_<A>.json)")
  parser.add_argument("--q_threshold", type=float, default=0.05)
  parser.add_argument("--num_resamples", type=int, default=2_000,
                      help="bootstrap resamples of the CIs (0: none)")
  parser.add_argument("--aggregate_resamples", type=int, default=1_000,
                      help="bootstrap resamples of aggregate differences "
                      "(0: values only)")
  parser.add_argument("--data_dir", default=None,
                      help="public benchmark files, for the items the "
                      "aggregate bootstrap recomputes on (default: "
                      "the registry's)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.data_dir:
    registry.set_data_dir(args.data_dir)
  result = compare_dirs(args.baseline, args.candidate,
                        q_threshold=args.q_threshold,
                        num_resamples=args.num_resamples,
                        aggregate_resamples=args.aggregate_resamples,
                        seed=args.seed)
  out = pathlib.Path(args.out) if args.out else (
      pathlib.Path(args.candidate) /
      f"compare_vs_{pathlib.Path(args.baseline).absolute().name}.json")
  io_lib.atomic_write_json(out, result)
  print(format_report(result))
  print(f"\nwritten: {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
