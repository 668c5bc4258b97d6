"""Runs a suite of benchmarks on a policy, resumably, into an output directory.

Layout of an output directory:

  run.json                 what is evaluated and how (written at the start;
                           a rerun must match it, see `IDENTITY_KEYS`)
  items/<benchmark>.jsonl  one scored item per line (`ITEM_FIELDS`)
  summary.json             per-benchmark scores, skipped and failed
                           benchmarks, and the run record (rewritten
                           atomically after every benchmark)

Resuming: items are scored in chunks of `RunSettings.chunk_size`; each
chunk's lines are appended with one write and fsync-ed. A rerun reads the
file, drops a partial last line left by a crash (rewriting the file
atomically), and scores only the items whose id has no line yet, so an
interrupted run loses at most the chunk in flight. A stored item whose
prompt hash differs from the current item's is an error: the benchmark data
changed under the run.

Per benchmark:
  * data absent (`MissingDataError`): listed under 'skipped' with the reason
    'missing data at PATH'; not a failure.
  * mc_logprob on a policy without choice log-probs (a served model): scored
    as 'generated_choice' with the choices listed in the last user turn
    (`scoring.format_choices`), or skipped, by `RunSettings.mc_fallback`.
    Benchmarks whose items need the log-probs themselves (TruthfulQA MC2,
    metadata['mc_metric'] == 'mc2') are skipped with the reason.
  * belief kinds (MASK, DeceptionBench) with the pattern judge, which cannot
    grade their generated free-text criteria: skipped with the reason.
  * judged kinds record the judge on every row ('judge_id'): the rubric
    judge for rubric and belief kinds, the scale judge for judge_scale.
  * any other error: listed under 'failed' with the message; the run goes on.

The summary of a benchmark comes from `scoring.summarize` over all stored
lines of its current items, so it is the same whether the run was resumed or
not. That includes the benchmark-level `aggregates` (`Benchmark.aggregate`,
e.g. BBQ's bias score), which are recomputed from the stored rows' choices
and log-probs on every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import time
import traceback
from typing import Any, Literal, Mapping, Sequence

from beneficial_rl.data.scenarios import Message
from beneficial_rl.eval.benchmarks import belief
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.eval.benchmarks.spec import EvalItem
from beneficial_rl.eval.benchmarks.spec import MissingDataError
from beneficial_rl.eval.benchmarks.spec import Policy
from beneficial_rl.grading import judges as judges_lib
from beneficial_rl.grading import scale_judge as scale_judge_lib
from beneficial_rl.utils import io as io_lib

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
ITEMS_DIR = "items"
# 2: mc_logprob ties give 1/k credit; embedded mc benchmarks pick by per-char
# normalised log-prob. A directory of another version cannot be resumed.
FORMAT_VERSION = 2
# Fields of every line of items/<benchmark>.jsonl.
ITEM_FIELDS = ("benchmark", "id", "prompt_hash", "response", "raw", "score",
               "refused", "choice", "judge_id", "details")
# Fields of run.json that a resumed run must share with the stored one.
IDENTITY_KEYS = ("format_version", "policy_id", "policy_settings", "judge_id",
                 "judge_prompt_version", "max_new_tokens", "seed")
# Identity fields added after format 1 was first written: checked only when
# the stored run.json has them.
LATER_IDENTITY_KEYS = ("scale_judge_id", "scale_judge_prompt_version")
McFallback = Literal["generated_choice", "skip"]


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """How a suite is run.

  Attributes:
    suite: suite name recorded in the summary.
    max_new_tokens: generation budget of generated scorings.
    chunk_size: items scored (and written) per chunk; also the number of
      conversations per policy call.
    max_items: score only the first N items of each benchmark (smoke runs).
    seed: recorded; policies take their own seed.
    mc_fallback: what mc_logprob benchmarks become on a policy without
      choice log-probs: 'generated_choice' or 'skip'.
    retry_unscored: rescore stored items whose score is None (e.g. rubric
      items whose judge failed on every criterion).
  """
  suite: str = "embedded"
  max_new_tokens: int = scoring.DEFAULT_MAX_NEW_TOKENS
  chunk_size: int = scoring.DEFAULT_BATCH_SIZE
  max_items: int | None = None
  seed: int = 0
  mc_fallback: McFallback = "generated_choice"
  retry_unscored: bool = False

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(f"RunSettings.max_new_tokens={self.max_new_tokens} "
                       "must be >= 1")
    if self.chunk_size < 1:
      raise ValueError(f"RunSettings.chunk_size={self.chunk_size} must be "
                       ">= 1")
    if self.max_items is not None and self.max_items < 1:
      raise ValueError(f"RunSettings.max_items={self.max_items} must be >= 1")
    if self.mc_fallback not in ("generated_choice", "skip"):
      raise ValueError(f"RunSettings.mc_fallback={self.mc_fallback!r}; "
                       "expected 'generated_choice' or 'skip'")


def prompt_hash(item: EvalItem) -> str:
  """16 hex digits of sha256 over the item's messages and choices."""
  payload = json.dumps({"messages": [[m.role, m.content]
                                     for m in item.messages],
                        "choices": list(item.choices)},
                       sort_keys=True, ensure_ascii=False)
  return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def as_generated_choice(item: EvalItem) -> EvalItem:
  """The item with its choices listed under the last user turn."""
  messages = list(item.messages)
  last = messages[-1]
  messages[-1] = Message(last.role,
                         scoring.format_choices(last.content, item.choices))
  return dataclasses.replace(item, messages=tuple(messages))


def items_path(out_dir: io_lib.PathLike, benchmark: str) -> pathlib.Path:
  return pathlib.Path(out_dir) / ITEMS_DIR / f"{benchmark}.jsonl"


# ------------------------------------------------------------ item files --

def _drop_partial_tail(path: pathlib.Path) -> None:
  """Rewrites `path` without a last line that lacks its newline."""
  data = path.read_bytes()
  if not data or data.endswith(b"\n"):
    return
  keep = data[:data.rfind(b"\n") + 1]
  log.warning("%s: dropping a partial last line (%d bytes) left by an "
              "interrupted run", path, len(data) - len(keep))
  io_lib.atomic_write_bytes(path, keep)


def read_item_rows(path: io_lib.PathLike, benchmark: str | None = None,
                   repair: bool = False) -> dict[str, dict[str, Any]]:
  """id -> stored row (the last line wins when an id repeats).

  Args:
    path: an items/<benchmark>.jsonl file; absent means no rows.
    benchmark: when given, every row's 'benchmark' must equal it.
    repair: drop a partial last line (a crash mid-append) first.

  Raises:
    DataError: naming the file, line and field of a malformed row.
  """
  path = pathlib.Path(path)
  if not path.exists():
    return {}
  if repair:
    _drop_partial_tail(path)
  rows: dict[str, dict[str, Any]] = {}
  for lineno, row in io_lib.iter_jsonl(path):
    if not isinstance(row, dict):
      raise io_lib.DataError(path, lineno, None, "expected a JSON object")
    for field in ITEM_FIELDS:
      if field not in row:
        raise io_lib.DataError(path, lineno, field, "missing")
    if not isinstance(row["id"], str):
      raise io_lib.DataError(path, lineno, "id", "must be a string")
    if benchmark is not None and row["benchmark"] != benchmark:
      raise io_lib.DataError(path, lineno, "benchmark",
                             f"{row['benchmark']!r} in the file of "
                             f"{benchmark!r}")
    score = row["score"]
    if score is not None and not isinstance(score, (int, float)):
      raise io_lib.DataError(path, lineno, "score", f"not a number: {score!r}")
    rows[row["id"]] = row
  return rows


def _append_rows(path: pathlib.Path, rows: Sequence[Mapping[str, Any]]
                 ) -> None:
  """Appends lines with one write, then fsyncs (see the module docstring)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                 for r in rows)
  with open(path, "a", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())


def _row(benchmark: str, item: EvalItem, record: scoring.ItemRecord,
         judge_id: str | None) -> dict[str, Any]:
  d = record.to_dict()
  return {"benchmark": benchmark, "id": item.id,
          "prompt_hash": prompt_hash(item), "response": d["response"],
          "raw": d["raw"], "score": d["score"], "refused": d["refused"],
          "choice": d["choice"], "judge_id": judge_id,
          "details": d["details"]}


def _item_score(row: Mapping[str, Any]) -> scoring.ItemScore:
  return scoring.ItemScore(row["raw"], row["refused"], row["response"],
                           row["choice"], row["details"] or {})


# ----------------------------------------------------------- one benchmark --

def _benchmark_entry(benchmark: Benchmark, scored_as: Benchmark,
                     result: scoring.BenchmarkResult,
                     num_available: int) -> dict[str, Any]:
  entry = result.summary.to_dict()
  entry.update(
      direction="higher" if benchmark.higher_is_better else "lower",
      data_pin=(dataclasses.asdict(benchmark.data_pin)
                if benchmark.data_pin else None),
      num_available=num_available,
      scoring_fallback=(None if scored_as.scoring == benchmark.scoring
                        else f"{benchmark.scoring}->{scored_as.scoring}"))
  return entry


def run_benchmark(benchmark: Benchmark, policy: Policy,
                  out_dir: io_lib.PathLike, settings: RunSettings,
                  judge: judges_lib.Judge | None = None,
                  scale_judge: scale_judge_lib.ScaleJudge | None = None
                  ) -> tuple[str, dict[str, Any]]:
  """Scores the benchmark's unfinished items and summarizes all of them.

  `judge` grades rubric and belief kinds, `scale_judge` judge_scale ones
  (defaults: `scoring.resolve_judges`).

  Returns:
    ('done', summary entry) or ('skipped', {'reason': ...}).

  Raises:
    DataError: a stored row is malformed or belongs to a changed item.
    Whatever the benchmark's loader, the policy or the judge raise.
  """
  try:
    items = list(benchmark.load_items())
  except MissingDataError as e:
    return "skipped", {"reason": f"missing data at {e.path}"}
  num_available = len(items)
  if settings.max_items is not None:
    items = items[:settings.max_items]
  if not items:
    raise ValueError(f"benchmark {benchmark.name!r} has no items")
  ids = [it.id for it in items]
  if len(set(ids)) != len(ids):
    dup = next(i for n, i in enumerate(ids) if i in ids[:n])
    raise ValueError(f"benchmark {benchmark.name!r}: duplicate item id "
                     f"{dup!r}")

  scored_as, asked = benchmark, items
  if benchmark.scoring == "mc_logprob" and not getattr(
      policy, "supports_choice_logprobs", True):
    if any(it.metadata.get("mc_metric") == scoring.MC2 for it in items):
      return "skipped", {"reason": (
          f"policy {policy.policy_id!r} gives no choice log-probs, which the "
          "MC2 score needs (mc_logprob)")}
    if settings.mc_fallback == "skip":
      return "skipped", {"reason": (
          f"policy {policy.policy_id!r} gives no choice log-probs "
          "(mc_logprob); rerun with mc_fallback='generated_choice' to score "
          "a generated choice letter")}
    scored_as = dataclasses.replace(benchmark, scoring="generated_choice")
    asked = [as_generated_choice(it) for it in items]
  judge, scale_judge, judge_id = scoring.resolve_judges(
      scored_as.scoring, judge, scale_judge)
  if scored_as.scoring in belief.KINDS and (
      problem := belief.judge_problem(judge)):
    return "skipped", {"reason": problem}

  path = items_path(out_dir, benchmark.name)
  stored = read_item_rows(path, benchmark.name, repair=True)
  for item in items:
    row = stored.get(item.id)
    if row is not None and row["prompt_hash"] != prompt_hash(item):
      raise io_lib.DataError(
          path, None, "prompt_hash",
          f"item {item.id!r} was stored with prompt hash "
          f"{row['prompt_hash']} but is now {prompt_hash(item)}: the "
          "benchmark data changed; use a new output directory")

  def pending(item: EvalItem) -> bool:
    row = stored.get(item.id)
    return row is None or (settings.retry_unscored and row["score"] is None)

  todo = [(it, q) for it, q in zip(items, asked) if pending(it)]
  if todo:
    log.info("%s: %d of %d items to score", benchmark.name, len(todo),
             len(items))
  for s in range(0, len(todo), settings.chunk_size):
    chunk = todo[s:s + settings.chunk_size]
    scores = scoring.score_items(
        scored_as, [q for _, q in chunk], policy, judge,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.chunk_size, scale_judge=scale_judge)
    records = scoring.summarize(scored_as, [it.id for it, _ in chunk],
                                scores).records
    rows = [_row(benchmark.name, it, r, judge_id)
            for (it, _), r in zip(chunk, records)]
    _append_rows(path, rows)
    stored.update((r["id"], r) for r in rows)

  # Aggregates see the items as loaded (their metadata), not as asked.
  result = scoring.summarize(
      scored_as, ids, [_item_score(stored[i]) for i in ids],
      getattr(policy, "policy_id", ""), judge_id, items)
  return "done", _benchmark_entry(benchmark, scored_as, result,
                                  num_available)


# ------------------------------------------------------------------ suite --

def _check_identity(out_dir: pathlib.Path, record: Mapping[str, Any]) -> None:
  path = out_dir / RUN_FILE
  if not path.exists():
    return
  stored = io_lib.read_json(path)
  later = [k for k in LATER_IDENTITY_KEYS if k in stored]
  for key in IDENTITY_KEYS + tuple(later):
    if json.dumps(stored.get(key), sort_keys=True) != json.dumps(
        record.get(key), sort_keys=True):
      raise io_lib.DataError(
          path, None, key, f"this run has {record.get(key)!r} but the output "
          f"directory holds a run with {stored.get(key)!r}; use a new "
          "--out_dir")


def run_suite(benchmarks: Sequence[Benchmark], policy: Policy,
              out_dir: io_lib.PathLike, settings: RunSettings,
              judge: judges_lib.Judge | None = None,
              run_info: Mapping[str, Any] | None = None,
              scale_judge: scale_judge_lib.ScaleJudge | None = None
              ) -> dict[str, Any]:
  """Runs every benchmark into `out_dir` (resuming) and returns the summary.

  Args:
    benchmarks: in order of evaluation.
    policy: the `Policy` under evaluation.
    out_dir: output directory (created; see the module docstring).
    settings: `RunSettings`.
    judge: rubric and belief judge (default `PatternJudge`).
    run_info: extra JSON fields of the run record (checkpoint path and step,
      policy settings...); 'policy_settings' is part of the identity.
    scale_judge: 0-100 judge of judge_scale benchmarks (default: the one
      matching `judge`, `scale_judge.matching_scale_judge`, when there is one).

  Returns:
    The summary written to out_dir/summary.json: {'run': record,
    'benchmarks': {name: entry}, 'skipped': {name: {'reason'}}, 'failed':
    {name: {'error'}}, 'complete': bool}.

  Raises:
    DataError: out_dir holds a run of another policy, judge or settings.
  """
  out_dir = pathlib.Path(out_dir)
  if scale_judge is None:
    # None when no scale judge matches `judge`: judge_scale benchmarks then
    # fail with the reason (`scoring.resolve_judges`), the others run.
    scale_judge = scale_judge_lib.matching_scale_judge(judge)
  names = [b.name for b in benchmarks]
  if len(set(names)) != len(names):
    raise ValueError(f"benchmarks listed twice: {names}")
  record = {
      "format_version": FORMAT_VERSION,
      "policy_id": getattr(policy, "policy_id", ""),
      "policy_settings": None,
      "judge_id": judge.judge_id if judge is not None else "pattern",
      "judge_prompt_version": (judge.prompt_version if judge is not None
                               else judges_lib.PatternJudge.prompt_version),
      "scale_judge_id": getattr(scale_judge, "judge_id", None),
      "scale_judge_prompt_version": getattr(scale_judge, "prompt_version",
                                            None),
      "suite": settings.suite, "seed": settings.seed,
      "max_new_tokens": settings.max_new_tokens,
      "max_items": settings.max_items, "chunk_size": settings.chunk_size,
      "mc_fallback": settings.mc_fallback,
      "benchmarks": names,
      **dict(run_info or {})}
  record = json.loads(json.dumps(record))  # Tuples -> lists, as stored.
  _check_identity(out_dir, record)
  out_dir.mkdir(parents=True, exist_ok=True)
  io_lib.atomic_write_json(out_dir / RUN_FILE, record)

  summary: dict[str, Any] = {"run": record, "benchmarks": {}, "skipped": {},
                             "failed": {}, "complete": False}
  for benchmark in benchmarks:
    start = time.monotonic()
    try:
      status, entry = run_benchmark(benchmark, policy, out_dir, settings,
                                    judge, scale_judge)
    except Exception as e:  # pylint: disable=broad-except
      log.error("benchmark %s failed:\n%s", benchmark.name,
                traceback.format_exc())
      summary["failed"][benchmark.name] = {
          "error": f"{type(e).__name__}: {e}"}
    else:
      key = "benchmarks" if status == "done" else "skipped"
      summary[key][benchmark.name] = entry
      if status == "done":
        log.info("%s: score %.4f (n=%d) in %.1fs", benchmark.name,
                 entry["score"] if entry["score"] is not None else float("nan"),
                 entry["n"], time.monotonic() - start)
      else:
        log.info("%s: skipped (%s)", benchmark.name, entry["reason"])
    io_lib.atomic_write_json(out_dir / SUMMARY_FILE, summary)
  summary["complete"] = True
  io_lib.atomic_write_json(out_dir / SUMMARY_FILE, summary)
  return summary


def format_summary(summary: Mapping[str, Any]) -> str:
  """A text table of a summary: one row per scored, skipped, failed one;
  a scored benchmark's `aggregates` follow its row, one per line."""
  header = ("benchmark", "domain", "n", "score", "stderr", "refusal",
            "raw", "metric")
  rows, extra = [], {}
  fmt = lambda x: "-" if x is None else f"{x:.4f}"
  for name, e in summary["benchmarks"].items():
    rows.append((name, e["domain"], str(e["n"]), fmt(e["score"]),
                 fmt(e["stderr"]), fmt(e["refusal_rate"]), fmt(e["raw"]),
                 f"{e['metric']} ({e['direction']})"))
    extra[len(rows) - 1] = [f"    {k}: {fmt(v)}"
                            for k, v in (e.get("aggregates") or {}).items()]
  for name, e in summary["skipped"].items():
    rows.append((name, "", "", "skipped", "", "", "", e["reason"]))
  for name, e in summary["failed"].items():
    rows.append((name, "", "", "FAILED", "", "", "", e["error"]))
  widths = [max(len(r[c]) for r in [header] + rows)
            for c in range(len(header))]
  line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
  out = [line(header), line(["-" * w for w in widths])]
  for i, r in enumerate(rows):
    out += [line(r)] + extra.get(i, [])
  return "\n".join(out)
