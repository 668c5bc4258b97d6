"""Compares benchmark-level aggregates (BBQ bias score, DiscrimEval gaps, ...)
between two evaluation runs.

Aggregates are not means of per-item scores, so the Welch / BH machinery of
`eval.stats` does not apply. For each aggregate both runs report, this module
gives the two values and their difference, plus a paired percentile
bootstrap CI of the difference: items scored in both runs are resampled with
replacement (the same resample for both runs) and the benchmark's own
`aggregate` recomputed on each resample. The CI needs the benchmark's items
(from the registry, for public benchmarks from the data directory); when
they cannot be loaded the values and difference are still reported and the
reason for the missing CI is stated.

Aggregates have no common direction (a bias score is best at 0), so no
"improved" flag is derived from them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem

Rows = Mapping[str, Mapping[str, Any]]  # item id -> stored item row


def record_from_row(row: Mapping[str, Any]) -> scoring.ItemRecord:
  """The `ItemRecord` an aggregate reads, rebuilt from a stored item row."""
  return scoring.ItemRecord(
      id=row["id"], raw=row.get("raw"), score=row.get("score"),
      refused=row.get("refused"), response=row.get("response") or "",
      choice=row.get("choice"), details=row.get("details") or {})


def _finite(x: Any) -> float | None:
  return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _load_items(name: str) -> tuple[Benchmark, dict[str, EvalItem]]:
  """The registered benchmark and its items by id (raises when unavailable)."""
  benchmark = registry.get(name)
  if benchmark.aggregate is None:
    raise ValueError(f"benchmark {name!r} has no aggregate")
  return benchmark, {it.id: it for it in benchmark.load_items()}


def bootstrap_aggregate_difference(
    benchmark: Benchmark, items: Sequence[EvalItem],
    baseline: Sequence[scoring.ItemRecord],
    candidate: Sequence[scoring.ItemRecord], keys: Sequence[str], *,
    confidence: float = 0.95, num_resamples: int = 1_000, seed: int = 0
) -> dict[str, tuple[float, float] | None]:
  """Paired percentile bootstrap CI of candidate - baseline per aggregate key.

  Args:
    benchmark: supplies `aggregate(items, records) -> {key: value}`.
    items: the N items scored in both runs; baseline[i] / candidate[i] are
      their records in the same order.
    keys: aggregate keys to bound.
    num_resamples: bootstrap resamples (index draws shared by both runs).

  Returns:
    key -> (low, high), or None when fewer than 2 resamples gave a finite
    difference for that key (e.g. a group missing from most resamples).
  """
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  if not len(items) == len(baseline) == len(candidate):
    raise ValueError(f"{len(items)} items but {len(baseline)} baseline and "
                     f"{len(candidate)} candidate records")
  rng = np.random.default_rng(seed)
  n = len(items)
  diffs: dict[str, list[float]] = {k: [] for k in keys}
  for _ in range(num_resamples):
    idx = rng.integers(0, n, size=n)
    sub = [items[i] for i in idx]
    va = benchmark.aggregate(sub, [baseline[i] for i in idx])
    vb = benchmark.aggregate(sub, [candidate[i] for i in idx])
    for k in keys:
      a, b = _finite(va.get(k)), _finite(vb.get(k))
      if a is not None and b is not None:
        diffs[k].append(b - a)
  alpha = 100 * (1 - confidence) / 2
  out: dict[str, tuple[float, float] | None] = {}
  for k, d in diffs.items():
    out[k] = (None if len(d) < 2 else
              (float(np.percentile(d, alpha)),
               float(np.percentile(d, 100 - alpha))))
  return out


def compare_aggregates(summary_a: Mapping[str, Any], rows_a: Mapping[str, Rows],
                       summary_b: Mapping[str, Any], rows_b: Mapping[str, Rows],
                       *, confidence: float = 0.95, num_resamples: int = 1_000,
                       seed: int = 0) -> dict[str, Any]:
  """Aggregates of every benchmark that reports them in both runs.

  Args:
    summary_a, summary_b: the runs' summary.json contents (A = baseline).
    rows_a, rows_b: benchmark -> item id -> stored row.
    num_resamples: 0 skips the bootstrap.

  Returns:
    benchmark -> {'metrics': {key: {'baseline', 'candidate', 'difference',
    'ci_low', 'ci_high'}}, 'num_items': items in the bootstrap,
    'ci_unavailable': reason or None}. Values are None where undefined.
  """
  out: dict[str, Any] = {}
  bench_a, bench_b = summary_a["benchmarks"], summary_b["benchmarks"]
  for name in bench_a:
    agg_a = (bench_a[name] or {}).get("aggregates") or {}
    agg_b = (bench_b.get(name) or {}).get("aggregates") or {}
    keys = [k for k in agg_a if k in agg_b]
    if not keys:
      continue
    metrics = {}
    for k in keys:
      a, b = _finite(agg_a[k]), _finite(agg_b[k])
      metrics[k] = {"baseline": a, "candidate": b,
                    "difference": None if a is None or b is None else b - a,
                    "ci_low": None, "ci_high": None}
    entry = {"metrics": metrics, "num_items": 0, "ci_unavailable": None}
    out[name] = entry
    if num_resamples <= 0:
      entry["ci_unavailable"] = "bootstrap off (num_resamples = 0)"
      continue
    try:
      benchmark, items = _load_items(name)
    except (KeyError, ValueError, OSError) as e:  # MissingDataError is OSError
      entry["ci_unavailable"] = f"items unavailable: {e}"
      continue
    ra, rb = rows_a.get(name, {}), rows_b.get(name, {})
    ids = [i for i in ra if i in rb and i in items]
    if len(ids) < 2:
      entry["ci_unavailable"] = "fewer than 2 items in both runs"
      continue
    cis = bootstrap_aggregate_difference(
        benchmark, [items[i] for i in ids],
        [record_from_row(ra[i]) for i in ids],
        [record_from_row(rb[i]) for i in ids], keys,
        confidence=confidence, num_resamples=num_resamples, seed=seed)
    entry["num_items"] = len(ids)
    for k, ci in cis.items():
      if ci is not None:
        metrics[k]["ci_low"], metrics[k]["ci_high"] = ci
  return out


def format_aggregates(result: Mapping[str, Any]) -> list[str]:
  """Text lines for `compare.format_report` (empty when no aggregates)."""
  if not result:
    return []
  fmt = lambda x: "-" if x is None else f"{x:+.3f}"
  lines = ["", "aggregates (candidate - baseline, paired bootstrap CI):"]
  for name, entry in result.items():
    for key, m in entry["metrics"].items():
      ci = (f"[{fmt(m['ci_low'])}, {fmt(m['ci_high'])}]"
            if m["ci_low"] is not None else "")
      base = "-" if m["baseline"] is None else f"{m['baseline']:.3f}"
      cand = "-" if m["candidate"] is None else f"{m['candidate']:.3f}"
      lines.append(f"  {name}.{key}: {base} -> {cand} "
                   f"({fmt(m['difference'])}) {ci}".rstrip())
    if entry["ci_unavailable"]:
      lines.append(f"  {name}: no CI ({entry['ci_unavailable']})")
  return lines
