"""Supervised finetuning (SFT) on chat examples.

Used to train the small embedded prior on the standard tasks' reference
answers and, with other data, for harmful finetuning. One call,
`train(config)`, runs a whole job described by an `ml_collections` config
(`default_config`; see configs/sft/):

  examples (messages) -> ChatTemplate.encode -> bucketed padded batches
  -> sharded train step (rl/step.py) with masked next-token cross entropy
  -> clu metric writer + ReportProgress, periodic eval loss
  -> Orbax checkpoints (state, config, tokenizer, data position) and resume.

The loss is the token mean of -log p(target) over assistant tokens of the
whole batch, independent of gradient accumulation (`batching.pad_batch`
weights every target token by k / targets in the batch).

Resuming: if `<workdir>/checkpoints` holds a step, the state and the data
position are restored and training continues; the result is bitwise equal to
an uninterrupted run (same compiled step, same batches, same keys). With LoRA
the checkpoint holds the adapters; the base comes from `init_checkpoint` (or
the seeded initialisation).

Config errors (batch size not divisible by accumulation or by the data
parallel ways, a mesh that does not fit the devices, unknown fields, a
tokenizer larger than the model vocabulary) raise before anything is
compiled, naming the config field.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any, Sequence

from clu import metric_writers
from clu import periodic_actions
import jax
import jax.numpy as jnp
import ml_collections

from beneficial_rl import checkpoints
from beneficial_rl import models
from beneficial_rl.data import chat
from beneficial_rl.data import scenarios
from beneficial_rl.data import standard_tasks
from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.parallel import mesh as mesh_lib
from beneficial_rl.parallel import partitioning
from beneficial_rl.parallel import remat as remat_lib
from beneficial_rl.parallel import sharded_jit as sharded_jit_lib
from beneficial_rl.rl import batching
from beneficial_rl.rl import flops as flops_lib
from beneficial_rl.rl import lora as lora_lib
from beneficial_rl.rl import optimizer as opt_lib
from beneficial_rl.rl import step as step_lib
from beneficial_rl.rl.metrics import MeanMetric
from beneficial_rl.train_state import abstract_train_state
from beneficial_rl.train_state import TrainState
from beneficial_rl.utils import io

Messages = Sequence[chat.MessageLike]


def default_config() -> ml_collections.ConfigDict:
  """All SFT fields with defaults; configs/sft/*.py start from this."""
  c = ml_collections.ConfigDict()
  c.workdir = ""  # Checkpoints under <workdir>/checkpoints, metrics beside.
  c.seed = 0
  c.model = ml_collections.ConfigDict(dict(preset="tiny", overrides={}))
  c.init_checkpoint = ""  # Run directory whose params start training.
  c.tokenizer = ""  # .model / tokenizer.json; '' trains the default one.
  c.chat_template = "default"
  c.max_length = 256
  c.buckets = (64, 128, 256)
  c.data = ml_collections.ConfigDict(dict(
      source="standard_tasks",  # or 'jsonl': rows {"messages": [...]}.
      path="", eval_path="",  # jsonl files; no eval_path: last num_eval rows.
      num_train=2000, num_eval=200, seed=0))
  c.batch_size = 32
  c.eval_batch_size = 32
  c.grad_accum_steps = 1
  c.num_steps = 1000
  c.optimizer = ml_collections.ConfigDict(opt_lib.OptimizerConfig(
      learning_rate=1e-3, warmup_steps=50, total_steps=1000,
      weight_decay=0.01).to_dict())
  c.lora = ml_collections.ConfigDict(dict(
      enabled=False, **lora_lib.LoraConfig().to_dict()))
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.num_devices = 0  # Use the first n devices; 0 means all.
  c.rules = ml_collections.ConfigDict()  # Logical axis rule overrides.
  c.remat = "none"  # 'none', 'nothing' or 'dots' (see parallel/remat.py).
  c.param_compute_dtype = ""  # e.g. 'bfloat16': cast params inside the step.
  c.checkpoint_every = 200
  c.keep_checkpoints = 3
  c.eval_every = 200
  c.log_every = 20
  return c


def _fail(field: str, value: Any, why: str):
  raise ValueError(f"config.{field}={value!r}: {why}")


def validate_config(config: ml_collections.ConfigDict,
                    num_devices: int | None = None) -> mesh_lib.MeshConfig:
  """Checks field values and their combinations; returns the mesh config.

  Raises:
    ValueError: naming the offending config field.
  """
  unknown = sorted(set(config.keys()) - set(default_config().keys()))
  if unknown:
    raise ValueError(f"config: unknown fields {unknown}")
  for field in ("batch_size", "eval_batch_size", "grad_accum_steps",
                "num_steps", "checkpoint_every", "eval_every", "log_every",
                "keep_checkpoints", "max_length"):
    value = config[field]
    if not isinstance(value, int) or value < 1:
      _fail(field, value, "must be an int >= 1")
  if config.batch_size % config.grad_accum_steps:
    _fail("batch_size", config.batch_size, "is not divisible by "
          f"config.grad_accum_steps={config.grad_accum_steps}")
  buckets = batching.check_buckets(config.buckets)
  if config.max_length > buckets[-1]:
    _fail("max_length", config.max_length, f"exceeds the largest bucket "
          f"{buckets[-1]} (config.buckets)")
  if config.remat not in ("none", *remat_lib.POLICIES):
    _fail("remat", config.remat, f"expected 'none' or one of "
          f"{sorted(remat_lib.POLICIES)}")
  available = jax.device_count() if num_devices is None else num_devices
  if not 0 <= config.num_devices <= available:
    _fail("num_devices", config.num_devices, f"must be in [0, {available}]")
  devices = config.num_devices or available
  mesh_cfg, data, fsdp = mesh_lib.resolve_config_mesh(config.mesh.to_dict(),
                                                      devices)
  ways = data * fsdp
  micro = config.batch_size // config.grad_accum_steps
  if micro % ways:
    _fail("batch_size", config.batch_size, f"gives microbatches of {micro} "
          f"rows, not divisible by the {ways} data-parallel ways of "
          f"config.mesh (data={data} x fsdp={fsdp})")
  if config.eval_batch_size % ways:
    _fail("eval_batch_size", config.eval_batch_size, f"not divisible by the "
          f"{ways} data-parallel ways of config.mesh")
  try:
    opt_lib.OptimizerConfig.from_dict(config.optimizer.to_dict())
    lora_fields = config.lora.to_dict()
    lora_fields.pop("enabled", None)
    lora_lib.LoraConfig.from_dict(lora_fields)
    partitioning.make_rules(config.rules.to_dict())
  except ValueError as e:
    raise ValueError(f"config: {e}") from None
  if config.tokenizer and not pathlib.Path(config.tokenizer).exists():
    _fail("tokenizer", config.tokenizer, "no such file or directory")
  if config.chat_template not in chat.TEMPLATES:
    _fail("chat_template", config.chat_template,
          f"expected one of {sorted(chat.TEMPLATES)}")
  if not config.init_checkpoint and (config.model.preset
                                     not in models.preset_names()):
    _fail("model.preset", config.model.preset,
          f"expected one of {models.preset_names()}")
  if config.param_compute_dtype:
    try:
      jnp.dtype(config.param_compute_dtype)
    except TypeError:
      _fail("param_compute_dtype", config.param_compute_dtype,
            "not a dtype name")
  if config.data.source not in ("standard_tasks", "jsonl"):
    _fail("data.source", config.data.source, "expected 'standard_tasks' or "
          "'jsonl'")
  if config.data.source == "jsonl" and not config.data.path:
    _fail("data.path", config.data.path, "required for data.source='jsonl'")
  return mesh_cfg


def _read_chat_jsonl(path: str) -> list[tuple[chat.MessageLike, ...]]:
  """Rows {"messages": [{role, content}, ...]} of a JSONL file.

  Raises:
    io.DataError: naming the file, line and field of a bad row.
  """
  out = []
  for line, row in io.iter_jsonl(path):
    if not isinstance(row, dict) or "messages" not in row:
      raise io.DataError(path, line, "messages", "missing")
    try:
      out.append(chat.normalize_messages(row["messages"]))
    except (ValueError, TypeError) as e:
      raise io.DataError(path, line, "messages", str(e)) from None
  return out


def load_examples(data: ml_collections.ConfigDict
                  ) -> tuple[list[Messages], list[Messages]]:
  """(train, eval) conversations described by `config.data`.

  'standard_tasks': user prompt + reference answer of the first
  num_train + num_eval tasks of the *train* split (the held-out split stays
  unseen); the last num_eval are the eval set. 'jsonl': rows of `path`, eval
  from `eval_path` or the last num_eval rows.
  """
  if data.source == "standard_tasks":
    tasks = standard_tasks.generate_tasks(data.num_train + data.num_eval,
                                          "train", data.seed)
    rows = [t.messages + (scenarios.Message("assistant", t.answer),)
            for t in tasks]
    return rows[:data.num_train], rows[data.num_train:]
  rows = _read_chat_jsonl(data.path)
  if data.eval_path:
    return rows, _read_chat_jsonl(data.eval_path)
  cut = max(len(rows) - data.num_eval, 0)
  return rows[:cut], rows[cut:]


def sft_loss(model: models.Transformer, remat: str = "none"
             ) -> step_lib.LossFn:
  """Masked next-token cross entropy over a `batching` batch.

  loss = sum_{b,t} token_weight[b] * ce[b, t] * loss_mask[b, t + 1], so the
  accumulated loss is the token mean over the whole batch. Metrics: 'sft/ce'
  and 'sft/accuracy' (token means over targets).
  """
  def loss_fn(params, batch, rng, frozen):
    del rng, frozen
    tokens = batch["tokens"]
    if remat == "none":
      logits, _ = model.apply({"params": params}, tokens, batch["positions"],
                              token_mask=batch["token_mask"])
    else:
      with remat_lib.remat_blocks(remat):
        logits, _ = model.apply({"params": params}, tokens,
                                batch["positions"],
                                token_mask=batch["token_mask"])
    logits, targets = logits[:, :-1], tokens[:, 1:]
    mask = batch["loss_mask"][:, 1:]
    ce = -models.token_logprobs(logits, targets)
    weight = batch["token_weight"][:, None] * mask
    loss = jnp.sum(ce * weight)
    correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
    return loss, {"sft/ce": MeanMetric.from_values(ce, mask),
                  "sft/accuracy": MeanMetric.from_values(correct, mask)}
  return loss_fn


@dataclasses.dataclass(frozen=True)
class SFTResult:
  """What `train` returns.

  Attributes:
    state: final TrainState (params: full model, or LoRA adapters).
    model_config: the model's shape.
    start_step: step the run started (or resumed) from.
    train_metrics: last logged training metrics.
    eval_losses: step -> held-out token-mean cross entropy (step 0: before
      training, when the run did not resume).
    params: full model params (the merged model with LoRA).
  """
  state: TrainState
  model_config: models.TransformerConfig
  start_step: int
  train_metrics: dict[str, float]
  eval_losses: dict[int, float]
  params: Any


def _load_vocab(config, workdir: pathlib.Path):
  """(vocabulary, tokenizer file) from config.tokenizer or a trained default."""
  path = config.tokenizer
  if not path:
    path = workdir / "tokenizer" / "spm.model"
    if not path.exists():
      vocab_lib.train_sentencepiece(path)
  path = pathlib.Path(path)
  vocab = vocab_lib.load_vocabulary(path)
  file = path if path.is_file() else path / "tokenizer.json"
  return vocab, file


def _model_config(config) -> models.TransformerConfig:
  overrides = dict(config.model.overrides.to_dict())
  if config.init_checkpoint:
    saved = checkpoints.load_config(config.init_checkpoint)
    if "model" not in saved:
      raise ValueError(f"config.init_checkpoint={config.init_checkpoint!r}: "
                       "its config has no 'model' field")
    if saved.get("sft", {}).get("lora", {}).get("enabled"):
      raise ValueError(f"config.init_checkpoint={config.init_checkpoint!r}: "
                       "holds LoRA adapters, not full params; merge them "
                       "(lora.merge) and save a full checkpoint first")
    return models.TransformerConfig.from_dict(saved["model"]).replace(
        **overrides)
  return models.get_preset(config.model.preset, **overrides)


def train(config: ml_collections.ConfigDict,
          train_examples: Sequence[Messages] | None = None,
          eval_examples: Sequence[Messages] | None = None, *,
          stop_after_steps: int | None = None) -> SFTResult:
  """Runs (or resumes) an SFT job; see the module docstring.

  Args:
    config: fields of `default_config()`.
    train_examples / eval_examples: conversations; None loads them from
      `config.data` (`load_examples`).
    stop_after_steps: stop once the state reaches this step without the final
      checkpoint (simulates preemption in tests).
  """
  mesh_cfg = validate_config(config)
  if not config.workdir:
    _fail("workdir", config.workdir, "must name a directory")
  workdir = pathlib.Path(config.workdir)
  if train_examples is None:
    train_examples, eval_examples = load_examples(config.data)
  vocab, tokenizer_file = _load_vocab(config, workdir)
  model_cfg = _model_config(config)
  if vocab.vocab_size > model_cfg.vocab_size:
    _fail("tokenizer", str(tokenizer_file), f"has {vocab.vocab_size} ids, "
          f"more than the model's vocab_size={model_cfg.vocab_size}")
  template = chat.get_template(config.chat_template)
  template.check_vocabulary(vocab)
  opt_cfg = opt_lib.OptimizerConfig.from_dict(config.optimizer.to_dict())
  use_lora = bool(config.lora.enabled)
  lora_cfg = lora_lib.LoraConfig.from_dict(
      {k: v for k, v in config.lora.to_dict().items() if k != "enabled"})

  devices = jax.devices()[:config.num_devices or None]
  mesh = mesh_lib.make_mesh(mesh_cfg, devices)
  rules = partitioning.make_rules(config.rules.to_dict())
  model = models.Transformer(model_cfg)
  p_sh = partitioning.param_shardings(model, mesh, rules)
  init_key, lora_key, run_key = jax.random.split(jax.random.key(config.seed),
                                                 3)
  if config.init_checkpoint:
    target = checkpoints.with_shardings(
        partitioning.abstract_unboxed_params(model), p_sh)
    params = checkpoints.load_params(config.init_checkpoint, target=target)
  else:
    params = sharded_jit_lib.init_sharded_params(model, init_key, mesh, rules)

  tx = opt_lib.make_optimizer(opt_cfg)
  loss_fn = sft_loss(model, config.remat)
  if use_lora:
    trainable = lora_lib.init_lora(params, lora_cfg, lora_key)
    t_sh = lora_lib.lora_shardings(trainable, p_sh)
    trainable = jax.device_put(trainable, t_sh)
    frozen, f_sh = {"base": params}, {"base": p_sh}
    loss_fn = lora_lib.lora_loss(loss_fn, lora_cfg)
  else:
    trainable, t_sh, frozen, f_sh = params, p_sh, None, None
  s_sh = step_lib.train_state_shardings(trainable, tx, t_sh, mesh)

  ckpt_dir = workdir / "checkpoints"
  manager = checkpoints.CheckpointManager(
      ckpt_dir, keep_last=config.keep_checkpoints)
  encoded = batching.encode_examples(train_examples, vocab, template,
                                     config.max_length)
  batcher = batching.SFTBatcher(encoded, config.batch_size,
                                tuple(config.buckets), seed=config.seed,
                                grad_accum_steps=config.grad_accum_steps)
  if manager.latest_step() is not None:
    target = checkpoints.with_shardings(
        abstract_train_state(trainable, tx, run_key), s_sh)
    restored = manager.restore(target)
    state = restored.state
    if restored.data_position is not None:
      batcher.restore(restored.data_position)
    logging.info("resumed from %s step %d", ckpt_dir, restored.step)
  else:
    create = jax.jit(lambda p, k: TrainState.create(p, tx, k),
                     out_shardings=s_sh)
    state = create(trainable, run_key)
  start_step = int(state.step)

  backward = 1.0 if use_lora else 2.0
  train_step = step_lib.make_train_step(
      loss_fn, grad_accum_steps=config.grad_accum_steps, mesh=mesh,
      state_shardings=s_sh, frozen_shardings=f_sh, rules=rules,
      flops_fn=lambda b: flops_lib.sft_batch_flops(model_cfg, b["token_mask"],
                                                   backward),
      param_compute_dtype=config.param_compute_dtype or None)
  evaluate = _make_eval(loss_fn, mesh, rules, t_sh, f_sh)
  encoded_eval = batching.encode_examples(eval_examples or [], vocab,
                                         template, config.max_length)
  eval_sets = [_put(b, mesh, rules) for b in batching.eval_batches(
      encoded_eval, config.eval_batch_size, tuple(config.buckets))]

  run_config = {"sft": config.to_dict(), "model": model_cfg.to_dict(),
                "chat_template": template.to_dict()}
  tokenizer = (checkpoints.TokenizerAsset.from_file(tokenizer_file)
               if tokenizer_file.is_file() else None)
  writer = metric_writers.create_default_writer(
      os.fspath(workdir / "metrics"), just_logging=jax.process_index() > 0,
      asynchronous=False)
  report = periodic_actions.ReportProgress(num_train_steps=config.num_steps,
                                           writer=writer)
  schedule = jax.jit(opt_lib.make_schedule(opt_cfg))  # One compile.
  pending: dict[str, tuple[float, float]] = {}
  last_metrics: dict[str, float] = {}
  eval_losses: dict[int, float] = {}
  end = config.num_steps if stop_after_steps is None else min(
      stop_after_steps, config.num_steps)
  try:
    if eval_sets and start_step == 0:  # Baseline before any update.
      eval_losses[0] = _run_eval(evaluate, state.params, eval_sets, frozen)
      writer.write_scalars(0, {"eval/ce": eval_losses[0]})
    for step in range(start_step + 1, end + 1):
      batch = _put(batcher.next_batch(), mesh, rules)
      state, metrics = train_step(state, batch, frozen)
      pending = _host_merge(pending, metrics)
      opt_lib.check_finite_updates(state.opt_state,
                                   opt_cfg.max_consecutive_nonfinite, step)
      report(step)
      if step % config.log_every == 0 or step == config.num_steps:
        last_metrics = _host_means(pending)
        last_metrics["train/learning_rate"] = float(schedule(step - 1))
        last_metrics["train/flops"] = float(state.flops)
        writer.write_scalars(step, last_metrics)
        pending = {}
      if eval_sets and (step % config.eval_every == 0
                        or step == config.num_steps):
        eval_losses[step] = _run_eval(evaluate, state.params, eval_sets,
                                      frozen)
        writer.write_scalars(step, {"eval/ce": eval_losses[step]})
      if step % config.checkpoint_every == 0 or step == config.num_steps:
        manager.save(step, state, config=run_config, tokenizer=tokenizer,
                     data_position=batcher.position())
    manager.wait()
  finally:
    manager.close()
    writer.close()
  full = (lora_lib.merge(params, state.params, lora_cfg) if use_lora
          else state.params)
  return SFTResult(state=state, model_config=model_cfg, start_step=start_step,
                   train_metrics=last_metrics, eval_losses=eval_losses,
                   params=full)


def _make_eval(loss_fn, mesh, rules, t_sh, f_sh):
  """Jitted `(trainable, batch, frozen) -> metrics`, no gradients."""
  def evaluate(params, batch, frozen):
    return loss_fn(params, batch, jax.random.key(0), frozen)[1]
  batch_sh = {k: jax.sharding.NamedSharding(
      mesh, partitioning.batch_spec(ndim, rules)) for k, ndim in (
          ("tokens", 2), ("token_mask", 2), ("loss_mask", 2),
          ("positions", 2), ("token_weight", 1))}
  return sharded_jit_lib.sharded_jit(
      evaluate, mesh, rules, in_shardings=(t_sh, batch_sh, f_sh),
      out_shardings=jax.sharding.NamedSharding(mesh,
                                               jax.sharding.PartitionSpec()))


def _put(batch: batching.Batch, mesh, rules) -> dict[str, jax.Array]:
  """Host batch (the same on every process) -> global arrays split over the
  batch axes; each process copies only its addressable slices."""
  def put(x):
    sharding = jax.sharding.NamedSharding(
        mesh, partitioning.batch_spec(x.ndim, rules))
    return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])
  return {k: put(v) for k, v in batch.items()}


def _run_eval(evaluate, params, eval_sets, frozen) -> float:
  total: dict[str, tuple[float, float]] = {}
  for batch in eval_sets:
    total = _host_merge(total, evaluate(params, batch, frozen))
  return _host_means(total)["sft/ce"]


def _host_merge(acc: dict[str, tuple[float, float]],
                metrics: dict[str, MeanMetric]
                ) -> dict[str, tuple[float, float]]:
  """Adds device `MeanMetric`s into host (total, count) sums (float64)."""
  for name, m in jax.device_get(metrics).items():
    total, count = acc.get(name, (0.0, 0.0))
    acc[name] = (total + float(m.total), count + float(m.count))
  return acc


def _host_means(acc: dict[str, tuple[float, float]]) -> dict[str, float]:
  return {name: (t / c if c else float("nan")) for name, (t, c) in
          acc.items()}


def main(argv: Sequence[str]) -> None:
  """`python -m beneficial_rl.rl.sft --config=configs/sft/prior.py
  [--config.workdir=DIR] [--config.num_steps=N ...]`."""
  del argv
  result = train(_CONFIG.value)
  logging.info("SFT done at step %d; last metrics %s; eval %s",
               int(result.state.step), result.train_metrics,
               result.eval_losses)


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  _CONFIG = config_flags.DEFINE_config_file("config", None,
                                            "SFT config file (configs/sft/).")
  app.run(main)
