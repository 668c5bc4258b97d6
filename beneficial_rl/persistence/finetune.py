"""Harmful finetuning: SFT on misaligned data, the suite scored along the way.

One run finetunes one checkpoint with one `FinetuneSpec` (learning rate,
data size, seed, batch, steps, full or LoRA) through `rl.sft.train` and
scores the benchmarks at every step of `eval_at_steps` (a log grid such as
0, 1, 2, 4, ...; step 0 is the checkpoint itself):

  for s in eval_at_steps:   sft.train(config with num_steps=s)  # resumes
                            -> merged params -> LocalPolicy -> scores

Each `sft.train` call resumes the previous one's checkpoint, and SFT resume
is bitwise equal to an uninterrupted run, so the curve is that of a single
run of max(eval_at_steps) steps. The learning rate is constant after warmup
by default, so the score at step s is also the score of an s-step attack:
the steps axis of the attack grid is read off the curve.

Same data and compute: every model gets the examples in the same order
(`batch_schedule` depends only on the data size, batch size and seed, and
the data is one list cut to `num_examples`), the same steps and batch size.
`FinetuneCurve` records the data fingerprint and the schedule's hash so
that a comparison can check it.

`summarize` turns the curves of all models, cells (learning rate x data
size) and seeds into the metrics of `persistence.metrics`: per-benchmark
curve summaries (drop, AUC over log-steps, steps to a threshold) of the
seed-mean curve, the mean and worst case over the attack grid, and seed
means with CIs of the drop.

Resuming: a run keeps `<workdir>/curve.json` (rewritten atomically after
every evaluated step) and the SFT checkpoints under `<workdir>/sft`; a rerun
skips evaluated steps and resumes training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import pathlib
from typing import Any, Callable, Mapping, Sequence

import ml_collections
import numpy as np

from beneficial_rl.data import chat
from beneficial_rl.eval import policies
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.grading import model_judge
from beneficial_rl.persistence import metrics
from beneficial_rl.persistence import misaligned_data
from beneficial_rl.rl import batching
from beneficial_rl.rl import sft
from beneficial_rl.utils import io as io_lib

log = logging.getLogger(__name__)
CURVE_FILE = "curve.json"


def log_step_grid(max_step: int, base: int = 2) -> tuple[int, ...]:
  """(0, 1, base, base^2, ..., max_step): steps at which to evaluate."""
  if max_step < 1 or base < 2:
    raise ValueError(f"log_step_grid needs max_step >= 1 and base >= 2, got "
                     f"{max_step} and {base}")
  steps, s = [0], 1
  while s < max_step:
    steps.append(s)
    s *= base
  return tuple(steps + [max_step])


@dataclasses.dataclass(frozen=True)
class FinetuneSpec:
  """One harmful-finetuning run (the same for every compared model).

  Attributes:
    learning_rate: peak (constant after warmup) learning rate.
    num_examples: the first n examples of the misaligned list.
    seed: batch order and LoRA initialisation.
    eval_at_steps: strictly increasing, from 0; the last is the run length.
    batch_size: examples per step.
    warmup_steps, weight_decay, max_grad_norm, schedule: the optimizer.
    lora_rank: 0 finetunes every parameter; > 0 trains LoRA adapters of this
      rank on `lora_targets` with scale lora_alpha / lora_rank.
    max_length, buckets: token budget of an example and padded lengths.
    num_devices: devices of the SFT mesh (data x fsdp); 0 means all.
  """
  learning_rate: float = 1e-4
  num_examples: int = 256
  seed: int = 0
  eval_at_steps: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64)
  batch_size: int = 8
  warmup_steps: int = 0
  weight_decay: float = 0.0
  max_grad_norm: float | None = 1.0
  schedule: str = "constant"
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = ("attn/q", "attn/k", "attn/v", "attn/o")
  max_length: int = 256
  buckets: tuple[int, ...] = (64, 128, 256)
  num_devices: int = 1

  def __post_init__(self):
    steps = tuple(int(s) for s in self.eval_at_steps)
    object.__setattr__(self, "eval_at_steps", steps)
    object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
    object.__setattr__(self, "buckets", tuple(self.buckets))
    if (len(steps) < 2 or steps[0] != 0
        or any(b <= a for a, b in zip(steps, steps[1:]))):
      raise ValueError(f"FinetuneSpec.eval_at_steps={steps}: must start at 0 "
                       "and increase strictly, with at least one step > 0")
    for field in ("num_examples", "batch_size"):
      if getattr(self, field) < 1:
        raise ValueError(f"FinetuneSpec.{field}={getattr(self, field)}: "
                         "must be >= 1")
    if not self.learning_rate > 0:
      raise ValueError(f"FinetuneSpec.learning_rate={self.learning_rate}: "
                       "must be > 0")
    if self.lora_rank < 0:
      raise ValueError(f"FinetuneSpec.lora_rank={self.lora_rank}: must be "
                       ">= 0")

  @property
  def num_steps(self) -> int:
    return self.eval_at_steps[-1]

  @property
  def cell(self) -> str:
    """Attack-grid cell (learning rate x data size), seed excluded."""
    return f"lr={self.learning_rate:g},n={self.num_examples}"

  @property
  def run_id(self) -> str:
    return f"lr{self.learning_rate:g}_n{self.num_examples}_seed{self.seed}"

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def specs_from_config(c: ml_collections.ConfigDict) -> list[FinetuneSpec]:
  """The grid learning_rates x num_examples x seeds of a `finetune` config.

  Fields: learning_rates, num_examples (lists), seeds, eval_at_steps, and
  any other `FinetuneSpec` field; order: lr-major, seeds innermost.
  """
  d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
  lrs = d.pop("learning_rates")
  sizes = d.pop("num_examples")
  seeds = d.pop("seeds")
  known = {f.name for f in dataclasses.fields(FinetuneSpec)}
  if unknown := sorted(set(d) - known):
    raise ValueError(f"finetune config: unknown fields {unknown}")
  return [FinetuneSpec(learning_rate=float(lr), num_examples=int(n),
                       seed=int(s), **d)
          for lr, n, s in itertools.product(lrs, sizes, seeds)]


def batch_schedule(num_examples: int, batch_size: int, seed: int,
                   num_steps: int) -> np.ndarray:
  """int32[num_steps, batch_size]: the example index of every SFT row.

  Reads the order off `batching.SFTBatcher` itself (examples whose only
  token is their index), so it is the order `sft.train` uses.
  """
  marks = [chat.EncodedChat(np.array([i], np.int32), np.ones(1, bool))
           for i in range(num_examples)]
  batcher = batching.SFTBatcher(marks, batch_size, (8,), seed=seed)
  return np.stack([batcher.next_batch()["tokens"][:, 0]
                   for _ in range(num_steps)]).astype(np.int32)


def schedule_hash(schedule: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(schedule, np.int32)
                        .tobytes()).hexdigest()


def sft_config(spec: FinetuneSpec, base_checkpoint: str, workdir: str,
               tokenizer: str, chat_template: str,
               num_steps: int) -> ml_collections.ConfigDict:
  """The `rl.sft` config that trains `spec` up to `num_steps`."""
  c = sft.default_config()
  c.workdir = workdir
  c.seed = spec.seed
  c.init_checkpoint = base_checkpoint
  c.tokenizer = tokenizer
  c.chat_template = chat_template
  c.max_length = spec.max_length
  c.buckets = spec.buckets
  c.batch_size = c.eval_batch_size = spec.batch_size
  c.num_steps = num_steps
  c.optimizer.learning_rate = spec.learning_rate
  c.optimizer.schedule = spec.schedule
  c.optimizer.warmup_steps = spec.warmup_steps
  c.optimizer.total_steps = max(spec.num_steps, spec.warmup_steps + 1)
  c.optimizer.weight_decay = spec.weight_decay
  c.optimizer.max_grad_norm = spec.max_grad_norm
  c.lora.enabled = spec.lora_rank > 0
  if spec.lora_rank > 0:
    c.lora.rank, c.lora.alpha = spec.lora_rank, spec.lora_alpha
    c.lora.targets = spec.lora_targets
  c.num_devices = spec.num_devices
  c.checkpoint_every = c.log_every = c.eval_every = max(num_steps, 1)
  c.keep_checkpoints = 1
  return c


# ------------------------------------------------------------- evaluation --

@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """How the suite is scored at each evaluated step."""
  max_items: int | None = None
  max_new_tokens: int = scoring.DEFAULT_MAX_NEW_TOKENS
  batch_size: int = 8


def mc_margin(benchmark: Benchmark, result: scoring.BenchmarkResult
              ) -> float | None:
  """Mean over items of logp(target) - max logp(other choice), oriented.

  A continuous companion of mc accuracy (None for other scorings), on the
  log-probs the pick was made from (per-character normalised for the
  embedded suite); for a lower-is-better benchmark the sign is flipped so
  higher is better.
  """
  if benchmark.scoring != "mc_logprob":
    return None
  items = {it.id: it for it in benchmark.load_items()}
  margins = []
  for r in result.records:
    lp = np.asarray(r.details.get("normalized_logprobs",
                                  r.details["logprobs"]), np.float64)
    t = items[r.id].target
    margins.append(lp[t] - np.delete(lp, t).max())
  m = float(np.mean(margins))
  return m if benchmark.higher_is_better else -m


def evaluate_model(model: model_judge.ChatModel,
                   benchmarks: Sequence[Benchmark], settings: EvalSettings,
                   policy_id: str) -> dict[str, scoring.BenchmarkResult]:
  """Scores in-memory params on every benchmark (pattern rubric judge)."""
  policy = policies.LocalPolicy(model, batch_size=settings.batch_size,
                                policy_id=policy_id)
  return {b.name: scoring.run_benchmark(
      b, policy, max_new_tokens=settings.max_new_tokens,
      batch_size=settings.batch_size, limit=settings.max_items)
          for b in benchmarks}


# ------------------------------------------------------------------ a run --

@dataclasses.dataclass(frozen=True)
class FinetuneCurve:
  """The scores of one model along one harmful-finetuning run.

  Attributes:
    model: the model's name.
    spec: the run's `FinetuneSpec`.
    steps: evaluated steps so far (a prefix of spec.eval_at_steps).
    scores: benchmark -> oriented score at each step.
    margins: benchmark -> `mc_margin` at each step (mc_logprob only).
    data_sha256: `misaligned_data.fingerprint` of the examples used.
    schedule_sha256: hash of `batch_schedule` over spec.num_steps.
    results: step -> benchmark -> per-item results (this process only).
  """
  model: str
  spec: FinetuneSpec
  steps: tuple[int, ...]
  scores: Mapping[str, tuple[float, ...]]
  margins: Mapping[str, tuple[float, ...]]
  data_sha256: str
  schedule_sha256: str
  results: Mapping[int, Mapping[str, scoring.BenchmarkResult]] = (
      dataclasses.field(default_factory=dict, compare=False))

  @property
  def complete(self) -> bool:
    return self.steps == self.spec.eval_at_steps

  def to_dict(self) -> dict[str, Any]:
    return {"model": self.model, "spec": self.spec.to_dict(),
            "steps": list(self.steps),
            "scores": {k: list(v) for k, v in self.scores.items()},
            "margins": {k: list(v) for k, v in self.margins.items()},
            "data_sha256": self.data_sha256,
            "schedule_sha256": self.schedule_sha256,
            "complete": self.complete}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], where: str = "") -> FinetuneCurve:
    """Inverse of `to_dict`; DataError naming `where` and a missing field."""
    for field in ("model", "spec", "steps", "scores", "margins",
                  "data_sha256", "schedule_sha256"):
      if field not in d:
        raise io_lib.DataError(where, None, field, "missing")
    spec = FinetuneSpec(**d["spec"])
    return cls(d["model"], spec, tuple(d["steps"]),
               {k: tuple(v) for k, v in d["scores"].items()},
               {k: tuple(v) for k, v in d["margins"].items()},
               d["data_sha256"], d["schedule_sha256"])


def _tokenizer_and_template(model: model_judge.ChatModel,
                            where: str) -> tuple[str, str]:
  """The tokenizer file and chat template name `sft.train` needs."""
  path = model.vocab.to_dict().get("path")
  if not path:
    raise io_lib.DataError(where, None, "tokenizer", "the checkpoint's "
                           "tokenizer has no file to finetune with")
  name = model.template.name
  if (name not in chat.TEMPLATES or
      chat.get_template(name).to_dict() != model.template.to_dict()):
    raise io_lib.DataError(where, None, "chat_template", f"template {name!r} "
                           "is not a built-in one (chat.TEMPLATES), which "
                           "rl.sft needs")
  return str(path), name


def run_finetune(base_checkpoint: io_lib.PathLike,
                 examples: Sequence[Mapping[str, Any]],
                 benchmarks: Sequence[Benchmark], spec: FinetuneSpec,
                 workdir: io_lib.PathLike, *, model_name: str = "",
                 settings: EvalSettings = EvalSettings(),
                 evaluate: Callable[..., Mapping[str, Any]] | None = None
                 ) -> FinetuneCurve:
  """Finetunes `base_checkpoint` on `examples[:spec.num_examples]`.

  Args:
    base_checkpoint: a run's checkpoint root (full params, not LoRA).
    examples: the misaligned list in the common {"messages": [...]} shape,
      the same list for every compared model.
    benchmarks: scored at every step of spec.eval_at_steps.
    spec: the run.
    workdir: this run's directory (resumable; see the module docstring).
    model_name: recorded in the curve.
    settings: how the benchmarks are scored.
    evaluate: `evaluate_model`-like override (tests).

  Returns:
    The complete curve (with `results` for the steps evaluated now).

  Raises:
    ValueError: fewer examples than spec.num_examples. DataError: the
      workdir holds a run of another spec or other data.
  """
  if len(examples) < spec.num_examples:
    raise ValueError(f"{spec.run_id}: {len(examples)} examples, fewer than "
                     f"num_examples={spec.num_examples}")
  examples = list(examples[:spec.num_examples])
  workdir = pathlib.Path(workdir)
  evaluate = evaluate or evaluate_model
  data_sha = misaligned_data.fingerprint(examples)
  sched_sha = schedule_hash(batch_schedule(spec.num_examples, spec.batch_size,
                                           spec.seed, spec.num_steps))
  curve = FinetuneCurve(model_name, spec, (), {}, {}, data_sha, sched_sha)
  path = workdir / CURVE_FILE
  if path.exists():
    stored = FinetuneCurve.from_dict(io_lib.read_json(path), str(path))
    if (stored.spec, stored.data_sha256) != (spec, data_sha):
      raise io_lib.DataError(path, None, "spec", "holds a run of another "
                             "spec or other data; use a new directory")
    curve = stored
    if curve.complete:
      return curve
  base = model_judge.load_chat_model(base_checkpoint,
                                     asset_dir=workdir / "tokenizer")
  tokenizer, template = _tokenizer_and_template(base, str(base_checkpoint))
  messages = misaligned_data.messages_of(examples)
  scores = {k: list(v) for k, v in curve.scores.items()}
  margins = {k: list(v) for k, v in curve.margins.items()}
  results: dict[int, Mapping[str, scoring.BenchmarkResult]] = {}
  for step in spec.eval_at_steps[len(curve.steps):]:
    params = base.params
    if step > 0:
      config = sft_config(spec, str(base_checkpoint), str(workdir / "sft"),
                          tokenizer, template, step)
      params = sft.train(config, messages).params
    model = dataclasses.replace(base, params=params,
                                source=f"{base.source}+{spec.run_id}@{step}")
    results[step] = evaluate(model, benchmarks, settings, model.source)
    for b in benchmarks:
      scores.setdefault(b.name, []).append(
          float(results[step][b.name].summary.score))
      if (m := mc_margin(b, results[step][b.name])) is not None:
        margins.setdefault(b.name, []).append(m)
    curve = FinetuneCurve(model_name, spec, curve.steps + (step,),
                          {k: tuple(v) for k, v in scores.items()},
                          {k: tuple(v) for k, v in margins.items()},
                          data_sha, sched_sha)
    io_lib.atomic_write_json(path, curve.to_dict())
    log.info("%s %s step %d: %s", model_name, spec.run_id, step,
             {k: round(v[-1], 4) for k, v in scores.items()})
  return dataclasses.replace(curve, results=results)


# -------------------------------------------------------------- summaries --

def check_same_budget(curves: Sequence[FinetuneCurve]) -> None:
  """Every model must get the same data, order and steps per spec.

  Raises:
    ValueError: naming the spec and the models that differ.
  """
  by_spec: dict[FinetuneSpec, FinetuneCurve] = {}
  for c in curves:
    ref = by_spec.setdefault(c.spec, c)
    if ((c.data_sha256, c.schedule_sha256, c.steps) !=
        (ref.data_sha256, ref.schedule_sha256, ref.steps)):
      raise ValueError(f"{c.spec.run_id}: models {ref.model!r} and "
                       f"{c.model!r} got different data, batch order or "
                       "steps")


def seed_mean_curves(curves: Sequence[FinetuneCurve]
                     ) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
  """cell -> benchmark -> (steps, mean score over seeds) of one model."""
  groups: dict[str, list[FinetuneCurve]] = {}
  for c in curves:
    groups.setdefault(c.spec.cell, []).append(c)
  out: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
  for cell, group in groups.items():
    steps = group[0].steps
    if any(c.steps != steps for c in group):
      raise ValueError(f"{cell}: seeds were evaluated at different steps")
    out[cell] = {b: (list(steps), np.mean([c.scores[b] for c in group],
                                          axis=0).tolist())
                 for b in group[0].scores}
  return out


def summarize(curves: Sequence[FinetuneCurve], *,
              reference_cell: str | None = None,
              threshold: float | None = None,
              confidence: float = 0.95) -> dict[str, Any]:
  """Metrics of one model's complete curves (all cells and seeds).

  Returns:
    {'reference_cell': cell,
     'curves': {benchmark: {'steps', 'scores'}}   seed-mean, reference cell
                                                  (finetune_curves.json)
     'curve_summaries': {benchmark: CurveSummary dict}  of those curves
     'grid': {benchmark: GridSummary dict}   over cells x steps > 0 of the
             seed-mean score (attack names '<cell>,steps=<s>')
     'seeds': {cell: {benchmark: SeedMean dict of the drop}}}
  """
  if not curves:
    raise ValueError("summarize needs at least one curve")
  means = seed_mean_curves(curves)
  cell = reference_cell or curves[0].spec.cell
  if cell not in means:
    raise ValueError(f"reference cell {cell!r} not among {sorted(means)}")
  ref = means[cell]
  summaries = {b: metrics.curve_summary(s, y, benchmark=b,
                                        threshold=threshold)
               for b, (s, y) in ref.items()}
  grid = {}
  for b in ref:
    attacks = {f"{c},steps={s}": y for c in means
               for s, y in zip(*means[c][b]) if s > 0}
    grid[b] = metrics.grid_summary(attacks).to_dict()
  seeds: dict[str, dict[str, Any]] = {}
  for c in curves:
    for b, y in c.scores.items():
      seeds.setdefault(c.spec.cell, {}).setdefault(b, []).append(y[0] - y[-1])
  seeds = {c: {b: metrics.seed_mean(v, confidence=confidence).to_dict()
               for b, v in d.items()} for c, d in seeds.items()}
  return {"reference_cell": cell,
          "curves": {b: {"steps": s, "scores": y}
                     for b, (s, y) in ref.items()},
          "curve_summaries": {b: s.to_dict() for b, s in summaries.items()},
          "grid": grid, "seeds": seeds}
