"""Prints the benchmark registry: `python -m beneficial_rl.eval.list`.

One row per benchmark: name, category, domain, scoring, metric, direction
and the number of items, or 'missing data at PATH' for a file-backed
benchmark whose data is absent. Loading fails for another reason ->
'error: ...' in that column and exit status 1.

  python -m beneficial_rl.eval.list                    # everything
  python -m beneficial_rl.eval.list --suite embedded_health
  python -m beneficial_rl.eval.list --category fairness --format json
  python -m beneficial_rl.eval.list --suite embedded --length_bias

`--length_bias` prints, per multiple-choice benchmark, the fraction of items
whose target is the longest / the shortest choice in characters
(`benchmarks.choice.length_bias`) and marks fractions >= `BIAS_FLAG`: a
summed log-prob rewards short choices, so such a benchmark partly measures
choice length.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from beneficial_rl.eval.benchmarks import choice
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import MissingDataError

COLUMNS = ("name", "category", "domain", "scoring", "metric", "direction",
           "items")
BIAS_COLUMNS = ("name", "scoring", "normalization", "items", "longest",
                "shortest", "chance_longest", "flag")
MC_SCORINGS = ("mc_logprob", "generated_choice")
BIAS_FLAG = 0.9  # target longest / shortest in at least this share of items


def describe(benchmark: Benchmark, count: bool = True) -> dict[str, str]:
  """The table row of one benchmark; loads its items when `count`."""
  row = {"name": benchmark.name, "category": benchmark.category,
         "domain": benchmark.domain, "scoring": benchmark.scoring,
         "metric": benchmark.metric,
         "direction": "higher" if benchmark.higher_is_better else "lower",
         "items": "-"}
  if count:
    try:
      row["items"] = str(len(benchmark.load_items()))
    except MissingDataError as e:
      row["items"] = f"missing data at {e.path}"
    except Exception as e:  # pylint: disable=broad-except
      row["items"] = f"error: {type(e).__name__}: {e}"
  return row


def length_bias_row(benchmark: Benchmark) -> dict[str, str]:
  """The `--length_bias` row of one multiple-choice benchmark.

  'longest' / 'shortest': fractions of items whose target is the strictly
  longest / shortest choice; 'flag' names the ones >= `BIAS_FLAG`. A
  benchmark whose data is missing or fails to load gets the reason in
  'items' and '-' elsewhere.
  """
  row = {c: "-" for c in BIAS_COLUMNS}
  row.update(name=benchmark.name, scoring=benchmark.scoring, flag="")
  if benchmark.scoring == "mc_logprob":
    row["normalization"] = benchmark.mc_normalization
  try:
    bias = choice.length_bias(benchmark)
  except MissingDataError as e:
    row["items"] = f"missing data at {e.path}"
    return row
  except Exception as e:  # pylint: disable=broad-except
    row["items"] = f"error: {type(e).__name__}: {e}"
    return row
  row.update(items=str(bias.n), longest=f"{bias.target_longest:.2f}",
             shortest=f"{bias.target_shortest:.2f}",
             chance_longest=f"{bias.chance_longest:.2f}")
  row["flag"] = ",".join(
      name for name, frac in (("longest", bias.target_longest),
                              ("shortest", bias.target_shortest))
      if frac >= BIAS_FLAG)
  return row


def format_table(rows: Sequence[dict[str, str]],
                 columns: Sequence[str] = COLUMNS) -> str:
  """Left-aligned columns separated by two spaces, with a header rule."""
  widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
  def line(values: dict[str, str]) -> str:
    return "  ".join(values[c].ljust(widths[c]) for c in columns).rstrip()
  out = [line({c: c for c in columns}),
         line({c: "-" * widths[c] for c in columns})]
  out += [line(r) for r in rows]
  return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m beneficial_rl.eval.list",
      description="List the registered benchmarks.")
  parser.add_argument("--suite", default="all",
                      help="suite to list (default: all)")
  parser.add_argument("--category", default=None, help="only this category")
  parser.add_argument("--format", choices=("table", "json"), default="table")
  parser.add_argument("--no-count", action="store_true",
                      help="do not load items (fast)")
  parser.add_argument("--length_bias", action="store_true",
                      help="per multiple-choice benchmark, how often the "
                      "target is the longest / shortest choice")
  args = parser.parse_args(argv)
  try:
    pool = registry.suite_benchmarks(args.suite)
  except KeyError as e:
    parser.error(str(e.args[0]))
  pool = [b for b in pool if args.category in (None, b.category)]
  if args.length_bias:
    rows = [length_bias_row(b) for b in pool if b.scoring in MC_SCORINGS]
    columns = BIAS_COLUMNS
  else:
    rows = [describe(b, count=not args.no_count) for b in pool]
    columns = COLUMNS
  if args.format == "json":
    print(json.dumps(rows, indent=2))
  else:
    print(format_table(rows, columns))
    print(f"\n{len(rows)} benchmarks")
    if args.length_bias:
      print(f"flag: target longest / shortest in >= {BIAS_FLAG:.0%} of "
            "items (characters; strict)")
  return 1 if any(r["items"].startswith("error:") for r in rows) else 0


if __name__ == "__main__":
  sys.exit(main())
