"""Trains the learned reward model of an experiment: one resumable binary.

  python -m beneficial_rl.grading.train_reward_model \
      --config=configs/reward_model/embedded.py [--config.key=value ...]

Data: every candidate response stored with the data dir's train scenarios
(beneficial, partial and failing ones) is graded against its scenario's
rubric by the configured judge (default the pattern judge); the rubric score
is the target (`JudgedSample`s). The held-out split's candidates, graded the
same way, measure agreement. `max_train_samples` / `max_heldout_samples` cap
the counts: whole scenarios are taken in a seeded order while their
candidates fit, so the pairs of one prompt stay together.

Model: the backbone of `init_checkpoint` (an SFT run's checkpoint root; its
config gives the TransformerConfig, chat template and tokenizer) with a fresh,
zero reward head, or a random init of `model.preset` when no checkpoint is
given. Training is `reward_model.RewardModelTrainer` (objective mse,
bradley_terry or both).

Outputs (WORKDIR = config.workdir):

  checkpoints/<step>/                Orbax steps (head='reward' config,
                                     tokenizer), every `checkpoint_every`
  checkpoints/agreement-<step>.json  held-out agreement of the final step
  train_metrics.jsonl                logged training metrics ({'step', ...})
  reward_model_summary.json          samples, pairs, judge, objective, final
                                     loss, held-out agreement with n, data
                                     hashes, seconds (written last)

Resuming: a rerun restores the last checkpoint and continues (batches depend
only on (seed, step), so the result equals an uninterrupted run); a finished
run (summary written at `num_steps`) does nothing. The scenario files' sha256
are written to WORKDIR/data_hashes.json when a run starts; a resume whose
data dir hashes differently stops with an error naming the changed file
(the batches would no longer be those of the saved steps). Every config field is
checked by `validate_config` before any data is graded or compiled; errors
name the field.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
import time
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from beneficial_rl import checkpoints
from beneficial_rl import models
from beneficial_rl.data import chat
from beneficial_rl.data import layout
from beneficial_rl.data import procedural
from beneficial_rl.data import scenarios as scenarios_lib
from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.grading import judges as judges_lib
from beneficial_rl.grading import model_judge
from beneficial_rl.grading import reward_model as rm
from beneficial_rl.grading import rubric
from beneficial_rl.parallel import mesh as mesh_lib
from beneficial_rl.utils import factories
from beneficial_rl.utils import io as io_lib

SUMMARY_FILE = "reward_model_summary.json"
METRICS_FILE = "train_metrics.jsonl"
DATA_HASHES_FILE = "data_hashes.json"
SUMMARY_FORMAT = 1
CANDIDATE_LABELS = ("beneficial", "partial", *procedural.FAILURE_KINDS)
# Fields passed through to `reward_model.RewardModelConfig`.
_RM_FIELDS = tuple(f.name for f in dataclasses.fields(rm.RewardModelConfig))


def default_config() -> ml_collections.ConfigDict:
  """All fields with defaults; configs/reward_model/*.py start from this."""
  c = ml_collections.ConfigDict()
  c.workdir = ""  # Checkpoints, metrics and the summary.
  c.data_dir = ""  # A data dir of `beneficial_rl.data.build`.
  c.init_checkpoint = ""  # SFT checkpoint root; '' = random init of preset.
  c.model = ml_collections.ConfigDict(dict(preset="tiny", overrides={}))
  c.tokenizer = ""  # Without init_checkpoint; '' = DATA_DIR's tokenizer.
  c.chat_template = "default"  # Without init_checkpoint.
  c.judge = ml_collections.ConfigDict(dict(name="pattern"))
  c.negative_only = "avoidance"  # Rubric rule for penalty-only sets.
  c.candidate_labels = ()  # () = every label.
  c.max_train_samples = 0  # 0 = every train candidate.
  c.max_heldout_samples = 0  # 0 = every held-out candidate.
  c.data_seed = 0  # Order in which capped scenarios are taken.
  defaults = rm.RewardModelConfig()
  for name in _RM_FIELDS:
    value = getattr(defaults, name)
    setattr(c, name, 0 if name == "max_pairs_per_prompt" else value)
  c.eval_batch_size = 32  # Held-out scoring batch.
  c.checkpoint_every = 100
  c.log_every = 20
  c.num_devices = 1  # 1: no mesh; 0: all devices; n: the first n.
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  return c


def _fail(field: str, value: Any, why: str):
  raise ValueError(f"config.{field}={value!r}: {why}")


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _saved_config(path: str) -> dict[str, Any]:
  """The run config of an init checkpoint, checked for full params."""
  try:
    saved = checkpoints.load_config(path)
  except (FileNotFoundError, ValueError) as e:
    _fail("init_checkpoint", path, f"no readable checkpoint: {e}")
  for field in ("model", "chat_template"):
    if field not in saved:
      _fail("init_checkpoint", path, f"its config has no {field!r} field")
  if saved.get("sft", {}).get("lora", {}).get("enabled"):
    _fail("init_checkpoint", path, "holds LoRA adapters, not full params; "
          "merge them (lora.merge) and save a full checkpoint first")
  return saved


def model_config(config: ml_collections.ConfigDict
                 ) -> models.TransformerConfig:
  """The backbone's shape: the init checkpoint's, else the preset's."""
  if config.init_checkpoint:
    return models.TransformerConfig.from_dict(
        _saved_config(config.init_checkpoint)["model"])
  try:
    return models.get_preset(config.model.preset,
                             **config.model.overrides.to_dict())
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.model: {e}") from None


def validate_config(config: ml_collections.ConfigDict) -> mesh_lib.MeshConfig:
  """Checks every field before any compute; returns the mesh config.

  Raises:
    ValueError: naming the offending config field.
  """
  unknown = sorted(set(config.keys()) - set(default_config().keys()))
  if unknown:
    raise ValueError(f"config: unknown fields {unknown}")
  if not isinstance(config.workdir, str) or not config.workdir:
    _fail("workdir", config.workdir, "must name a directory")
  if not isinstance(config.data_dir, str) or not config.data_dir:
    _fail("data_dir", config.data_dir, "must name a data directory")
  missing = layout.missing_files(config.data_dir, tuple(
      layout.scenarios_relpath(s) for s in layout.SPLITS))
  if missing:
    _fail("data_dir", config.data_dir, f"lacks {', '.join(missing)}; build "
          "it with `python -m beneficial_rl.data.build`")
  if config.init_checkpoint and not pathlib.Path(
      config.init_checkpoint).is_dir():
    _fail("init_checkpoint", config.init_checkpoint, "no such directory")
  if not config.init_checkpoint:
    if config.model.preset not in models.preset_names():
      _fail("model.preset", config.model.preset,
            f"expected one of {models.preset_names()}")
    if config.tokenizer and not pathlib.Path(config.tokenizer).exists():
      _fail("tokenizer", config.tokenizer, "no such file or directory")
    if config.chat_template not in chat.TEMPLATES:
      _fail("chat_template", config.chat_template,
            f"expected one of {sorted(chat.TEMPLATES)}")
  try:
    name, _ = factories.split_named_config(config.judge, "judge")
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.judge: {e}") from None
  if name not in judges_lib.judge_names():
    _fail("judge.name", name, f"expected one of {judges_lib.judge_names()}")
  if config.negative_only not in ("avoidance", "undefined"):
    _fail("negative_only", config.negative_only,
          "expected 'avoidance' or 'undefined'")
  bad = [l for l in config.candidate_labels if l not in CANDIDATE_LABELS]
  if bad:
    _fail("candidate_labels", tuple(config.candidate_labels),
          f"unknown labels {bad}; expected some of {list(CANDIDATE_LABELS)}")
  for field in ("num_steps", "batch_size", "max_length", "eval_batch_size",
                "checkpoint_every", "log_every"):
    if not _is_int(config[field]) or config[field] < 1:
      _fail(field, config[field], "must be an int >= 1")
  for field in ("max_train_samples", "max_heldout_samples", "warmup_steps",
                "max_pairs_per_prompt", "num_devices", "seed", "data_seed"):
    if not _is_int(config[field]) or config[field] < 0:
      _fail(field, config[field], "must be an int >= 0")
  for field in ("mse_weight", "bt_weight", "weight_decay", "min_margin"):
    if not _is_number(config[field]) or config[field] < 0:
      _fail(field, config[field], "must be a finite number >= 0")
  for field in ("learning_rate", "max_grad_norm"):
    if not _is_number(config[field]) or config[field] <= 0:
      _fail(field, config[field], "must be a finite number > 0")
  if (not _is_number(config.end_learning_rate_fraction)
      or not 0 <= config.end_learning_rate_fraction <= 1):
    _fail("end_learning_rate_fraction", config.end_learning_rate_fraction,
          "must be in [0, 1]")
  if config.objective not in ("mse", "bradley_terry", "both"):
    _fail("objective", config.objective,
          "expected 'mse', 'bradley_terry' or 'both'")
  if config.objective != "mse" and config.batch_size % 2:
    _fail("batch_size", config.batch_size, "must be even for pair "
          f"objectives (config.objective={config.objective!r})")
  available = jax.device_count()
  if config.num_devices > available:
    _fail("num_devices", config.num_devices, f"must be in [0, {available}]")
  devices = config.num_devices or available
  mesh_cfg, data, fsdp = mesh_lib.resolve_config_mesh(config.mesh.to_dict(),
                                                      devices)
  if devices > 1:
    for field in ("batch_size", "eval_batch_size"):
      if config[field] % (data * fsdp):
        _fail(field, config[field], f"not divisible by the {data * fsdp} "
              f"data-parallel ways of config.mesh (data={data} x "
              f"fsdp={fsdp})")
  cfg = model_config(config)
  if config.max_length > cfg.max_seq_len:
    _fail("max_length", config.max_length, f"exceeds the model's "
          f"max_seq_len={cfg.max_seq_len}")
  return mesh_cfg


def reward_model_config(config: ml_collections.ConfigDict
                        ) -> rm.RewardModelConfig:
  """The trainer's options from the flat config fields."""
  fields = {name: config[name] for name in _RM_FIELDS}
  fields["max_pairs_per_prompt"] = config.max_pairs_per_prompt or None
  return rm.RewardModelConfig(**fields)


# ----------------------------------------------------------------------------
# Data: judged candidate responses.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JudgedSplit:
  """The judged candidates of one split.

  Attributes:
    samples: one per candidate whose rubric score is defined.
    num_scenarios: scenarios taken.
    num_unscored: candidates dropped (undefined score: judge failures).
    judge_id, prompt_version: the grader that produced the scores.
  """
  samples: tuple[rm.JudgedSample, ...]
  num_scenarios: int
  num_unscored: int
  judge_id: str
  prompt_version: str


def take_scenarios(scenarios: Sequence[scenarios_lib.Scenario],
                   labels: Sequence[str], max_samples: int, seed: int
                   ) -> list[tuple[scenarios_lib.Scenario,
                                   procedural.Candidate]]:
  """(scenario, candidate) pairs of whole scenarios, at most `max_samples`.

  Scenarios are visited in a permutation seeded by `seed` (file order when
  uncapped); one is taken when all its kept candidates still fit. `labels`
  () keeps every label; scenarios without candidates are skipped.
  """
  keep = set(labels) if labels else None
  order = (np.random.default_rng(seed).permutation(len(scenarios))
           if max_samples else range(len(scenarios)))
  out: list[tuple[scenarios_lib.Scenario, procedural.Candidate]] = []
  for i in order:
    cands = [c for c in procedural.candidates_of(scenarios[i])
             if keep is None or c.label in keep]
    if max_samples and len(out) + len(cands) > max_samples:
      continue
    out += [(scenarios[i], c) for c in cands]
  return out


def judge_split(judge: judges_lib.Judge,
                scenarios: Sequence[scenarios_lib.Scenario],
                labels: Sequence[str], max_samples: int, seed: int,
                negative_only: rubric.NegativeOnly = "avoidance"
                ) -> JudgedSplit:
  """Grades the candidates of `take_scenarios` in one judge batch."""
  chosen = take_scenarios(scenarios, labels, max_samples, seed)
  if not chosen:
    return JudgedSplit((), 0, 0, judge.judge_id, judge.prompt_version)
  examples = [s for s, _ in chosen]
  responses = [c.text for _, c in chosen]
  grades = rubric.grade_responses(judge, examples, responses, negative_only)
  scores = [g.score for g in grades.scores]
  samples = rm.judged_samples(examples, responses, scores)
  return JudgedSplit(tuple(samples), len({s.id for s in examples}),
                     len(chosen) - len(samples), grades.batch.judge_id,
                     grades.batch.prompt_version)


def make_judge(config: ml_collections.ConfigDict) -> judges_lib.Judge:
  try:
    return judges_lib.make_judge(config.judge)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.judge: {e}") from None


def load_data(config: ml_collections.ConfigDict, judge: judges_lib.Judge
              ) -> tuple[JudgedSplit, JudgedSplit]:
  """(train, held-out) judged candidates of `config.data_dir`.

  Raises:
    ValueError: a split yields no scored sample (naming the file).
  """
  out = []
  for split, cap in (("train", config.max_train_samples),
                     ("heldout", config.max_heldout_samples)):
    path = layout.scenarios_path(config.data_dir, split)
    judged = judge_split(judge, scenarios_lib.load_scenarios(path),
                         tuple(config.candidate_labels), cap,
                         config.data_seed, config.negative_only)
    if not judged.samples:
      raise ValueError(f"{path}: no scored candidate responses (scenarios "
                       "need metadata['candidates'] and the judge a score)")
    out.append(judged)
  return out[0], out[1]


def data_hashes(data_dir: io_lib.PathLike) -> dict[str, str]:
  """sha256 of the scenario files read, by path relative to the data dir."""
  return {layout.scenarios_relpath(s): io_lib.sha256_file(
      layout.scenarios_path(data_dir, s)) for s in layout.SPLITS}


def check_resume_data(workdir: pathlib.Path, hashes: dict[str, str],
                      resuming: bool) -> None:
  """Records `hashes` for a new run; on resume, checks they are unchanged.

  Raises:
    ValueError: resuming with a scenario file whose sha256 differs from the
      one recorded when the run started (names the file and both hashes).
  """
  path = workdir / DATA_HASHES_FILE
  if resuming and path.is_file():
    saved = io_lib.read_json(path)
    for rel in sorted(set(saved) | set(hashes)):
      if saved.get(rel) != hashes.get(rel):
        raise ValueError(
            f"{path}: config.data_dir file {rel} has sha256 "
            f"{hashes.get(rel)} but the run in {workdir} started with "
            f"{saved.get(rel)}; resume with the same data or use a new "
            "config.workdir")
    return
  if resuming:
    logging.warning("%s missing: cannot check that the resumed run reads the "
                    "same data; recording the current hashes", path)
  io_lib.atomic_write_json(path, hashes)


# ----------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------


def load_base(config: ml_collections.ConfigDict
              ) -> tuple[model_judge.ChatModel, Any]:
  """(config / vocabulary / template of the reward model, init decoder).

  From `init_checkpoint`: its model config, chat template and tokenizer
  (written under WORKDIR/tokenizer), and its params['decoder'] (params only;
  the optimizer state is not read). Without one: the preset, the tokenizer
  file and the named template, and None (random init).
  """
  workdir = pathlib.Path(config.workdir)
  if config.init_checkpoint:
    _saved_config(config.init_checkpoint)
    loaded = model_judge.load_chat_model(config.init_checkpoint,
                                         asset_dir=workdir / "tokenizer")
    if "decoder" not in loaded.params:
      _fail("init_checkpoint", config.init_checkpoint,
            "its params have no 'decoder'")
    base = dataclasses.replace(loaded, params=None, head="reward")
    decoder = loaded.params["decoder"]
  else:
    path = config.tokenizer or str(layout.tokenizer_path(config.data_dir))
    vocab = vocab_lib.load_vocabulary(path)
    base = model_judge.ChatModel(model_config(config), None, vocab,
                                 chat.get_template(config.chat_template),
                                 head="reward")
    decoder = None
  if base.vocab.vocab_size > base.cfg.vocab_size:
    _fail("tokenizer", base.vocab.to_dict().get("path"), f"has "
          f"{base.vocab.vocab_size} ids, more than the model's "
          f"vocab_size={base.cfg.vocab_size}")
  base.template.check_vocabulary(base.vocab)
  return base, decoder


def make_trainer(config: ml_collections.ConfigDict,
                 samples: Sequence[rm.JudgedSample],
                 mesh: jax.sharding.Mesh | None = None
                 ) -> rm.RewardModelTrainer:
  """The trainer at step 0: `load_base`'s backbone and a zero reward head."""
  base, decoder = load_base(config)
  return rm.RewardModelTrainer(base, samples, reward_model_config(config),
                               init_decoder=decoder, mesh=mesh)


def make_mesh(config: ml_collections.ConfigDict,
              mesh_cfg: mesh_lib.MeshConfig) -> jax.sharding.Mesh | None:
  """None on one device, else the configured mesh."""
  devices = jax.devices()[:config.num_devices or None]
  return None if len(devices) == 1 else mesh_lib.make_mesh(mesh_cfg, devices)


# ----------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------


def _finite(x: Any) -> Any:
  """NaN / inf floats -> None, recursively (JSON has no NaN)."""
  if isinstance(x, dict):
    return {k: _finite(v) for k, v in x.items()}
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


def _latest_step(ckpt_dir: pathlib.Path) -> int | None:
  if not ckpt_dir.is_dir():
    return None
  with checkpoints.CheckpointManager(ckpt_dir, read_only=True) as manager:
    return manager.latest_step()


def _finished_summary(config, workdir: pathlib.Path) -> dict[str, Any] | None:
  """The summary of a run finished at config.num_steps, else None."""
  path = workdir / SUMMARY_FILE
  if not path.is_file():
    return None
  summary = io_lib.read_json(path)
  if (isinstance(summary, dict) and summary.get("step") == config.num_steps
      and _latest_step(workdir / "checkpoints") == config.num_steps):
    return summary
  return None


def _read_history(path: pathlib.Path, upto: int) -> list[dict[str, float]]:
  if not path.is_file():
    return []
  return [row for _, row in io_lib.iter_jsonl(path)
          if isinstance(row, dict) and row.get("step", math.inf) <= upto]


def train(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs (or resumes) the job; returns the summary (see the module doc)."""
  start = time.monotonic()
  mesh_cfg = validate_config(config)
  workdir = pathlib.Path(config.workdir)
  if (done := _finished_summary(config, workdir)) is not None:
    logging.info("reward model already trained to step %d: %s",
                 config.num_steps, workdir / SUMMARY_FILE)
    return done
  (workdir / SUMMARY_FILE).unlink(missing_ok=True)  # Stale until rewritten.
  ckpt_dir = workdir / "checkpoints"
  latest = _latest_step(ckpt_dir)
  hashes = data_hashes(config.data_dir)
  check_resume_data(workdir, hashes, resuming=latest is not None)
  judge = make_judge(config)
  train_data, heldout = load_data(config, judge)
  mesh = make_mesh(config, mesh_cfg)
  trainer = make_trainer(config, train_data.samples, mesh)
  if latest is not None:
    if latest > config.num_steps:
      _fail("num_steps", config.num_steps, f"is below the step {latest} "
            f"already saved in {ckpt_dir}")
    trainer.restore(ckpt_dir, latest)
    logging.info("resumed from %s step %d", ckpt_dir, latest)
  resumed_from = int(trainer.state.step)
  metrics_path = workdir / METRICS_FILE
  history = _read_history(metrics_path, resumed_from)
  # One scoring program: every held-out row padded to max_length.
  scorer_options = {"batch_size": config.eval_batch_size,
                    "max_length": config.max_length,
                    "buckets": (config.max_length,)}
  step = resumed_from
  while step < config.num_steps:
    n = min(config.checkpoint_every - step % config.checkpoint_every,
            config.num_steps - step)
    history += [{**m, "step": int(m["step"])} for m in trainer.train(
        num_steps=n, log_every=config.log_every)]
    step = int(trainer.state.step)
    logging.info("step %d: %s", step, history[-1])
    trainer.save(ckpt_dir, heldout.samples
                 if step == config.num_steps else None, **scorer_options)
    io_lib.atomic_write_jsonl(metrics_path, map(_finite, history))
  if not rm.agreement_path(ckpt_dir, step).is_file():  # Crashed before it.
    scorer = rm.RewardModelScorer(trainer.chat_model(), mesh=mesh,
                                  **scorer_options)
    rm.write_agreement(ckpt_dir, step, {
        "step": step, **rm.evaluate_agreement(scorer, heldout.samples)})
  agreement = rm.read_agreement(ckpt_dir, step)
  last = history[-1] if history and history[-1]["step"] == step else {}
  summary = _finite({
      "format": SUMMARY_FORMAT,
      "step": step,
      "objective": config.objective,
      "judge_id": train_data.judge_id,
      "judge_prompt_version": train_data.prompt_version,
      "samples": {"train": len(train_data.samples),
                  "heldout": len(heldout.samples)},
      "pairs": {"train": int(len(trainer.pairs)),
                "heldout": agreement["n_pairs"]},
      "scenarios": {"train": train_data.num_scenarios,
                    "heldout": heldout.num_scenarios},
      "unscored": {"train": train_data.num_unscored,
                   "heldout": heldout.num_unscored},
      "final_loss": last.get("loss"),
      "final_metrics": last,
      "heldout": {k: agreement[k] for k in ("spearman", "pairwise_accuracy",
                                            "n_samples", "n_pairs")},
      "agreement_file": str(rm.agreement_path("checkpoints", step)),
      "init_checkpoint": (str(pathlib.Path(config.init_checkpoint).absolute())
                          if config.init_checkpoint else ""),
      "model": trainer.cfg.to_dict(),
      "data_dir": str(pathlib.Path(config.data_dir).absolute()),
      "data_hashes": hashes,
      "resumed_from_step": resumed_from,
      "seconds": round(time.monotonic() - start, 2),
      "config": config.to_dict(),
  })
  io_lib.atomic_write_json(workdir / SUMMARY_FILE, summary)
  summary = io_lib.read_json(workdir / SUMMARY_FILE)  # JSON types.
  logging.info("reward model: held-out spearman %s, pairwise accuracy %s "
               "(%s samples, %s pairs); summary %s", agreement["spearman"],
               agreement["pairwise_accuracy"], agreement["n_samples"],
               agreement["n_pairs"], workdir / SUMMARY_FILE)
  return summary


def main(argv: Sequence[str]) -> None:
  del argv
  train(_CONFIG.value)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "Reward-model config (configs/reward_model/).")
  app.run(main)
