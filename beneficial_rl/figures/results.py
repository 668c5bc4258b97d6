"""Tolerant readers of an experiment directory's result files.

Everything the figures and the report need is loaded once into
`ExperimentResults`. A file that is absent is not an error: the reader
records why in `ExperimentResults.missing` and the figures that need it are
listed as "not run". A file that is present but malformed raises
`DataError` (file, line, field), so no number is ever guessed.

Layout read (EXP = the experiment directory):

  EXP/rl/<run>/metrics.jsonl           per-step training metrics (trainer)
  EXP/rl/<run>/run_summary.json        stop reason, budget, FLOPs (trainer)
  EXP/eval/<run>/summary.json          per-benchmark scores (eval runner)
  EXP/eval/<run>-step<N>/summary.json  intermediate checkpoints (curves)
  EXP/compare/<cand>_vs_<base>.json    eval.compare output
  EXP/persistence/<model>/metrics.json {'<benchmark>@<attack>': to_dict()}
                                       of Degradation, SelectivePersistence
                                       or CurveSummary
  EXP/persistence/<model>/finetune_curves.json
                                       {benchmark: {'steps': [...],
                                        'scores': [...]}}
  EXP/persistence_finetune/<model>/... the same files from a separate
                                       harmful-finetuning stage (merged into
                                       the model's entries)
  EXP/reward_model/reward_model_summary.json
                                       the reward-model stage: judge,
                                       objective, samples, pairs, held-out
                                       agreement (train_reward_model)
  EXP/stage_times.json, EXP/data/manifest.json, EXP/stages/*.json
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re
from typing import Any, Mapping

from beneficial_rl.utils import io as io_lib

log = logging.getLogger(__name__)

PAPER_REFERENCE = pathlib.Path(__file__).with_name("paper_reference.json")
# '<run>-step<N>' or '<run>@step<N>': an intermediate checkpoint of <run>.
_STEP_DIR = re.compile(r"^(?P<run>.+?)[-@]step(?P<step>\d+)$")
_SEED_SUFFIX = re.compile(r"_s\d+$")
REWARD_MODEL_SUMMARY = "reward_model/reward_model_summary.json"


class NotRun(Exception):
  """A figure or table cannot be drawn; the message says which input lacks."""


def variant_of(run: str) -> str:
  """'beneficial_s0' -> 'beneficial' (the run name without its seed)."""
  return _SEED_SUFFIX.sub("", run)


@dataclasses.dataclass(frozen=True)
class RLRun:
  """One RL run directory.

  Attributes:
    name: '<variant>_s<seed>'.
    metrics: rows of metrics.jsonl (each has 'step'), sorted by step.
    summary: run_summary.json, or None when the run has not finished.
  """
  name: str
  metrics: tuple[dict[str, Any], ...]
  summary: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class EvalRun:
  """One evaluation output directory (summary.json)."""
  name: str
  run: str        # the RL run (or 'sft_prior') it evaluates
  step: int | None  # None: the final checkpoint
  summary: dict[str, Any]

  @property
  def benchmarks(self) -> dict[str, dict[str, Any]]:
    return self.summary.get("benchmarks", {})


@dataclasses.dataclass(frozen=True)
class ExperimentResults:
  """All results of an experiment directory (see the module docstring).

  Attributes:
    experiment_dir: the directory read.
    rl: run name -> RLRun.
    evals: eval dir name -> EvalRun.
    compares: '<cand>_vs_<base>' -> eval.compare JSON.
    persistence: model -> {'<benchmark>@<attack>': metric dict}.
    finetune_curves: model -> {benchmark: {'steps', 'scores'}}.
    stage_times: stage -> seconds, or None.
    manifest: the data manifest, or None.
    stages: stage name -> its marker (argv, seconds).
    missing: input -> why it was not read.
    reward_model: reward_model_summary.json (checked by
      `check_reward_model_summary`), or None.
  """
  experiment_dir: pathlib.Path
  rl: dict[str, RLRun]
  evals: dict[str, EvalRun]
  compares: dict[str, dict[str, Any]]
  persistence: dict[str, dict[str, dict[str, Any]]]
  finetune_curves: dict[str, dict[str, dict[str, list[float]]]]
  stage_times: dict[str, float] | None
  manifest: dict[str, Any] | None
  stages: dict[str, dict[str, Any]]
  missing: dict[str, str]
  reward_model: dict[str, Any] | None = None

  def final_evals(self) -> dict[str, EvalRun]:
    """Evaluations of final checkpoints, by run name."""
    return {e.run: e for e in self.evals.values() if e.step is None}

  def compare_for(self, variant: str) -> tuple[str, dict[str, Any]]:
    """(name, JSON) of the first comparison of `variant` vs the baseline."""
    for name in sorted(self.compares):
      cand, _, base = name.partition("_vs_")
      if variant_of(cand) == variant and variant_of(base) == "baseline":
        return name, self.compares[name]
    raise NotRun(f"no compare/{variant}_s<seed>_vs_baseline_s<seed>.json")


def _read_object(path: pathlib.Path) -> dict[str, Any]:
  obj = io_lib.read_json(path)
  if not isinstance(obj, dict):
    raise io_lib.DataError(path, None, None, "expected a JSON object")
  return obj


def _optional(path: pathlib.Path, missing: dict[str, str], key: str
              ) -> dict[str, Any] | None:
  if not path.is_file():
    missing[key] = f"{path} not found"
    log.info("not read: %s", missing[key])
    return None
  return _read_object(path)


def read_metrics(path: pathlib.Path) -> tuple[dict[str, Any], ...]:
  """Rows of a metrics.jsonl sorted by 'step'; the last row of a step wins."""
  rows: dict[int, dict[str, Any]] = {}
  for lineno, row in io_lib.iter_jsonl(path):
    if not isinstance(row, dict) or not isinstance(row.get("step"), int):
      raise io_lib.DataError(path, lineno, "step", "missing or not an int")
    rows[row["step"]] = row
  return tuple(rows[s] for s in sorted(rows))


def _read_rl(exp: pathlib.Path, missing: dict[str, str]) -> dict[str, RLRun]:
  out = {}
  root = exp / "rl"
  if not root.is_dir():
    missing["rl"] = f"{root} not found"
    return out
  for d in sorted(p for p in root.iterdir() if p.is_dir()):
    mpath = d / "metrics.jsonl"
    metrics = read_metrics(mpath) if mpath.is_file() else ()
    if not metrics:
      missing[f"rl/{d.name}/metrics.jsonl"] = f"{mpath} not found or empty"
    summary = _optional(d / "run_summary.json", missing,
                        f"rl/{d.name}/run_summary.json")
    out[d.name] = RLRun(d.name, metrics, summary)
  return out


def _read_evals(exp: pathlib.Path, missing: dict[str, str]
                ) -> dict[str, EvalRun]:
  out = {}
  root = exp / "eval"
  if not root.is_dir():
    missing["eval"] = f"{root} not found"
    return out
  for d in sorted(p for p in root.iterdir() if p.is_dir()):
    summary = _optional(d / "summary.json", missing,
                        f"eval/{d.name}/summary.json")
    if summary is None:
      continue
    if not isinstance(summary.get("benchmarks"), dict):
      raise io_lib.DataError(d / "summary.json", None, "benchmarks",
                             "missing or not an object")
    m = _STEP_DIR.match(d.name)
    run, step = (m["run"], int(m["step"])) if m else (d.name, None)
    out[d.name] = EvalRun(d.name, run, step, summary)
  return out


def _read_compares(exp: pathlib.Path, missing: dict[str, str]
                   ) -> dict[str, dict[str, Any]]:
  root = exp / "compare"
  if not root.is_dir():
    missing["compare"] = f"{root} not found"
    return {}
  out = {}
  for p in sorted(root.glob("*_vs_*.json")):
    obj = _read_object(p)
    if not isinstance(obj.get("comparison"), dict):
      raise io_lib.DataError(p, None, "comparison", "missing or not an object")
    out[p.stem] = obj
  return out


PERSISTENCE_ROOTS = ("persistence", "persistence_finetune")


def _read_persistence(exp: pathlib.Path, missing: dict[str, str]):
  """Metrics and curves per model from every persistence root present.

  A model may appear under several roots (prompt attacks in one, harmful
  finetuning in another): its entries are merged; a key present in two
  roots is an error, since one of them would be silently dropped.
  """
  metrics: dict[str, dict] = {}
  curves: dict[str, dict] = {}
  roots = [r for name in PERSISTENCE_ROOTS
           for r in (exp / name, exp / "results" / name) if r.is_dir()]
  if not roots:
    missing["persistence"] = f"{exp / 'persistence'} not found"
    return metrics, curves
  for root in roots:
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
      mpath = d / "metrics.json"
      m = _optional(mpath, missing, f"{root.name}/{d.name}/metrics.json")
      if m is not None:
        clash = set(m) & set(metrics.get(d.name, {}))
        if clash:
          raise io_lib.DataError(mpath, None, sorted(clash)[0],
                                 "also written by another persistence stage")
        metrics.setdefault(d.name, {}).update(m)
      cpath = d / "finetune_curves.json"
      if cpath.is_file():
        c = _read_object(cpath)
        for bench, entry in c.items():
          if (not isinstance(entry, dict) or len(entry.get("steps", [])) !=
              len(entry.get("scores", ())) or not entry.get("steps")):
            raise io_lib.DataError(cpath, None, bench, "expected {'steps': "
                                   "[...], 'scores': [...]} of equal length")
        curves.setdefault(d.name, {}).update(c)
  return metrics, curves


# Field -> kind of the summary fields the report reads ('number?': a number
# or null, e.g. a Spearman correlation that is undefined).
_REWARD_MODEL_FIELDS = {
    "judge_id": "str", "objective": "str", "step": "int",
    "final_loss": "number?", "samples.train": "int",
    "samples.heldout": "int", "pairs.train": "int",
    "heldout.spearman": "number?", "heldout.pairwise_accuracy": "number?",
    "heldout.n_samples": "number", "heldout.n_pairs": "number"}


def _kind_ok(value: Any, kind: str) -> bool:
  if value is None:
    return kind.endswith("?")
  if isinstance(value, bool):
    return False
  if kind == "str":
    return isinstance(value, str)
  if kind == "int":
    return isinstance(value, int) or (isinstance(value, float)
                                      and value.is_integer())
  return isinstance(value, (int, float))


def check_reward_model_summary(path: pathlib.Path, obj: Mapping[str, Any]
                               ) -> None:
  """Checks the fields of reward_model_summary.json the report reads.

  Raises:
    DataError: naming the file and the (dotted) field that is missing or of
      the wrong type.
  """
  for field, kind in _REWARD_MODEL_FIELDS.items():
    value: Any = obj
    for part in field.split("."):
      if not isinstance(value, dict) or part not in value:
        raise io_lib.DataError(path, None, field, "missing")
      value = value[part]
    if not _kind_ok(value, kind):
      raise io_lib.DataError(path, None, field, f"expected {kind.rstrip('?')}"
                             f"{' or null' if kind.endswith('?') else ''}, "
                             f"got {value!r}")


def load_experiment(experiment_dir: io_lib.PathLike) -> ExperimentResults:
  """Reads every result file of `experiment_dir` that exists.

  Raises:
    FileNotFoundError: `experiment_dir` is not a directory.
    DataError: a present file is malformed.
  """
  exp = pathlib.Path(experiment_dir)
  if not exp.is_dir():
    raise FileNotFoundError(f"{exp}: experiment directory not found")
  missing: dict[str, str] = {}
  rl = _read_rl(exp, missing)
  evals = _read_evals(exp, missing)
  compares = _read_compares(exp, missing)
  persistence, curves = _read_persistence(exp, missing)
  stage_times = _optional(exp / "stage_times.json", missing,
                          "stage_times.json")
  manifest = _optional(exp / "data" / "manifest.json", missing,
                       "data/manifest.json")
  reward_model = _optional(exp / REWARD_MODEL_SUMMARY, missing,
                           REWARD_MODEL_SUMMARY)
  if reward_model is not None:
    check_reward_model_summary(exp / REWARD_MODEL_SUMMARY, reward_model)
  stages = {}
  if (exp / "stages").is_dir():
    for p in sorted((exp / "stages").glob("*.json")):
      obj = _read_object(p)
      stages[str(obj.get("stage", p.stem))] = obj
  return ExperimentResults(exp, rl, evals, compares, persistence, curves,
                           stage_times, manifest, stages, missing,
                           reward_model)


def load_paper_reference(path: io_lib.PathLike = PAPER_REFERENCE
                         ) -> dict[str, Any]:
  """The published headline numbers (paper_reference.json)."""
  return _read_object(pathlib.Path(path))


def metric_kind(entry: Mapping[str, Any]) -> str | None:
  """'degradation', 'selective' or 'curve' for a persistence metric dict."""
  if "degradation" in entry and "attack" in entry:
    return "degradation"
  if "harmful" in entry and "helpful" in entry:
    return "selective"
  if "drop" in entry and "auc_log_steps" in entry:
    return "curve"
  return None

