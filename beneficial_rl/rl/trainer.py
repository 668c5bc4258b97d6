"""The RL trainer: prompts -> rollouts -> rewards -> reference -> updates.

  trainer = Trainer(config, workdir)   # validates the config; no compute yet
  summary = trainer.train()            # resumes from workdir/checkpoints

One RL step (`Trainer.run_step`):
  1. B prompts from the variant's SeqIO mixture (batch i is a function of the
     seed and i, so a resumed run sees the same prompts);
  2. G completions per prompt from the sampler, decoded to text;
  3. rewards per data source (RewardRouter: rubric judge, programmatic check,
     helpfulness grader); NaN (unscorable) rows are masked out; on a sample,
     the proxy reward is compared with a gold reward (hacking monitor);
  4. reference log-probs from the frozen initial policy in one jitted pass
     (plus the current policy's log-probs / values when PPO or
     old_logprobs='recompute' need them);
  5. advantages (group estimator on the host, or GAE on device for PPO);
  6. K epochs x M minibatches of `step.make_train_step` updates.
FLOPs of every phase (`rl.flops`) are added to `TrainState.flops`; the run
stops at `train.num_steps` or at the compute budget, whichever comes first.
Checkpoints (Orbax) hold the state, the run config, the tokenizer and the
data position; NaN/inf gradients are skipped by the optimizer and the run
stops after `optimizer.max_consecutive_nonfinite` of them in a row.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import pathlib
import time
from typing import Any, Iterator

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding

from beneficial_rl import checkpoints as ckpt_lib
from beneficial_rl.data import chat
from beneficial_rl.data import layout
from beneficial_rl.data import tasks
from beneficial_rl.data import vocab as vocab_lib
from beneficial_rl.grading import model_judge
from beneficial_rl.grading import monitor as monitor_lib
from beneficial_rl.grading import rewards as rewards_lib
from beneficial_rl.models import sampler as sampler_lib
from beneficial_rl.models import transformer as transformer_lib
from beneficial_rl.parallel import mesh as mesh_lib
from beneficial_rl.parallel import partitioning
from beneficial_rl.parallel import sharded_jit as sharded_jit_lib
from beneficial_rl.rl import flops as flops_lib
from beneficial_rl.rl import optimizer as optimizer_lib
from beneficial_rl.rl import rl_loss
from beneficial_rl.rl import rollout as rollout_lib
from beneficial_rl.rl import run_config
from beneficial_rl.rl import step as step_lib
from beneficial_rl.rl.metrics import compute_metrics
from beneficial_rl.rl.metrics import MeanMetric
from beneficial_rl.rl.metrics import merge_metrics
from beneficial_rl.train_state import abstract_train_state
from beneficial_rl.train_state import TrainState
from beneficial_rl.utils import io as io_lib
from beneficial_rl.utils.instrumentation import CompileCounter
from beneficial_rl.utils.instrumentation import PhaseTimer

PyTree = Any
NonFiniteUpdatesError = optimizer_lib.NonFiniteUpdatesError
BATCH_AXES = ("data", "fsdp")
# Random init runs op by op on one device below this size (no compilation);
# larger models are initialised directly into their shards.
EAGER_INIT_MAX_PARAMS = 100_000_000


class Trainer:
  """Builds everything an RL run needs from a validated config."""

  def __init__(self, config: ml_collections.ConfigDict,
               workdir: str | pathlib.Path | None = None):
    self.config = config
    self.plan = run_config.validate(config, jax.device_count())
    workdir = workdir or config.workdir
    if not workdir:
      raise run_config.ConfigError("workdir", "no workdir (flag --workdir or "
                                   "config.workdir)")
    self.workdir = pathlib.Path(workdir)
    self.seed, self.group_size = config.seed, config.rollout.group_size
    self.width = config.data.max_prompt_len
    self.model_cfg = self.plan.model
    self.loss_cfg = rl_loss.LossConfig.from_config(config)
    self.template = chat.get_template(config.data.chat_template)
    self.tokenizer_path = self._check_init_checkpoint()
    self.vocab = vocab_lib.load_vocabulary(self.tokenizer_path)
    if self.vocab.vocab_size > self.model_cfg.vocab_size:
      raise run_config.ConfigError(
          "model.overrides.vocab_size",
          f"the model has {self.model_cfg.vocab_size} ids but the tokenizer "
          f"{self.vocab.vocab_size}")
    r = config.rollout
    self.sampling = sampler_lib.SamplingConfig(
        max_new_tokens=r.max_new_tokens, temperature=r.temperature,
        top_k=r.top_k or None, top_p=r.top_p if r.top_p < 1 else None,
        eos_ids=self.template.stop_ids(self.vocab), n=self.group_size,
        pad_id=self.vocab.pad_id)
    self.rewards = rewards_lib.RewardRouter(run_config.reward_configs(config))
    gold = run_config.gold_reward_configs(config)
    self.gold = rewards_lib.RewardRouter(gold) if gold else None
    self.monitor = monitor_lib.RewardHackingMonitor(
        run_config.monitor_config(config))

    devices = jax.devices()[:self.plan.num_devices]
    self.mesh = mesh_lib.make_mesh(self.plan.mesh, devices)
    # PPO's critic is a value head on the policy's decoder: the trainable
    # params are the union of the policy's and the value model's.
    heads = ("policy", "value") if self.loss_cfg.with_value else ("policy",)
    models = [transformer_lib.Transformer(self.model_cfg, head=h)
              for h in heads]
    self.policy_shardings = partitioning.param_shardings(models[0], self.mesh)
    self.param_shardings, self.abstract_params = {}, {}
    for model in models:
      self.param_shardings.update(partitioning.param_shardings(model,
                                                               self.mesh))
      self.abstract_params.update(
          partitioning.abstract_unboxed_params(model))
    self.tx = optimizer_lib.make_optimizer(self.plan.optimizer)
    self.state_shardings = step_lib.train_state_shardings(
        self.abstract_params, self.tx, self.param_shardings, self.mesh)
    self.batch_sharding = NamedSharding(
        self.mesh, partitioning.batch_spec(2))
    self.sampler = sampler_lib.Sampler(self.model_cfg,
                                       prompt_buckets=(self.width,),
                                       mesh=self.mesh, batch_axes=BATCH_AXES)
    self.trace_counts: collections.Counter[str] = collections.Counter()
    self.train_step = step_lib.make_train_step(
        self._counted("update", rl_loss.make_loss_fn(
            self.model_cfg, self.loss_cfg,
            prefix_group=self.plan.update_prefix_group)),
        grad_accum_steps=config.train.grad_accum_steps, mesh=self.mesh,
        state_shardings=self.state_shardings, donate=True)
    self.reference_fn = self._make_reference_fn()
    self.flops_used = 0.0
    self.flops_by_phase: dict[str, float] = collections.defaultdict(float)
    self.last_step_flops = 0.0
    self.history: list[dict[str, Any]] = []

  # ------------------------------------------------------------ building --

  def _counted(self, name: str, fn):
    """`fn` that counts its traces (each trace is a compilation)."""
    def wrapped(*args, **kwargs):
      self.trace_counts[name] += 1
      return fn(*args, **kwargs)
    return wrapped

  def _make_reference_fn(self):
    """Jitted reference phase over the whole batch, in M x k chunks."""
    fn = rl_loss.make_reference_fn(
        self.model_cfg, self.loss_cfg, self.sampling.max_new_tokens,
        prefix_group=self.plan.reference_prefix_group)
    chunks = (self.config.algorithm.num_minibatches
              * self.config.train.grad_accum_steps)
    spec = self.batch_sharding

    def chunked(ref_params, params, batch):
      micro = step_lib.split_microbatches(batch, chunks)
      def one(mb):
        mb = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(
            x, spec), mb)
        return fn(ref_params, params, mb)
      out = jax.lax.map(one, micro)  # [chunks, N / chunks, T] per output.
      return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1).reshape(
          (-1,) + x.shape[2:]), out)

    frozen = self.policy_shardings if self.loss_cfg.needs_reference else None
    return sharded_jit_lib.sharded_jit(
        self._counted("reference", chunked), self.mesh,
        in_shardings=(frozen, self.param_shardings, spec),
        out_shardings=spec)

  def _init_step(self) -> int | None:
    step = self.config.model.init_step
    return None if step < 0 else step

  def _check_init_checkpoint(self) -> pathlib.Path:
    """Checks the init checkpoint's model and template; returns the tokenizer.

    The policy keeps the tokenizer it was trained with: the init
    checkpoint's, written to WORKDIR/tokenizer/, when it saved one, else the
    data dir's.
    """
    path = self.config.model.init_checkpoint
    if not path:
      return layout.tokenizer_path(self.config.data.data_dir)
    with ckpt_lib.CheckpointManager(path, read_only=True) as manager:
      saved = manager.restore_config(self._init_step())
      asset = manager.restore_tokenizer(self._init_step())
    # Fields that do not shape the parameters may differ from the prior's.
    free = ("max_seq_len", "remat", "dtype")
    shaping = lambda d: {k: v for k, v in d.items() if k not in free}
    if "model" in saved:
      saved = dict(saved, model=shaping(saved["model"]))
    for key, want, field in (
        ("model", shaping(self.model_cfg.to_dict()), "model.init_checkpoint"),
        ("chat_template", self.template.to_dict(), "data.chat_template")):
      if key in saved and saved[key] != want:
        raise run_config.ConfigError(
            field, f"the init checkpoint {path} has {key} {saved[key]}, but "
            f"this config has {want}")
    if asset is None:
      return layout.tokenizer_path(self.config.data.data_dir)
    return asset.write_to(self.workdir / "tokenizer")

  def _init_policy(self) -> PyTree:
    """The initial policy: the init checkpoint's params, or a random init."""
    c = self.config.model
    if not c.init_checkpoint:
      model = transformer_lib.Transformer(self.model_cfg)
      key = jax.random.fold_in(jax.random.key(self.seed), 0)
      if (self.model_cfg.num_params() > EAGER_INIT_MAX_PARAMS
          or jax.process_count() > 1):
        return sharded_jit_lib.init_sharded_params(model, key, self.mesh)
      # Small models: op-by-op init reuses the per-shape compiled random
      # ops of earlier runs in the process instead of compiling a program.
      return jax.device_put(transformer_lib.init_params(model, key),
                            self.policy_shardings)
    with ckpt_lib.CheckpointManager(c.init_checkpoint,
                                    read_only=True) as manager:
      target = ckpt_lib.with_shardings(
          {k: self.abstract_params[k] for k in self.policy_shardings},
          self.policy_shardings)
      return manager.restore_params(target=target, step=self._init_step())

  def initial_state(self) -> tuple[TrainState, PyTree]:
    """A fresh step-0 state and the frozen reference params (None w/o KL)."""
    policy = self._init_policy()
    ref = (jax.tree.map(jnp.copy, policy) if self.loss_cfg.needs_reference
           else None)
    params = dict(policy)
    for k, a in self.abstract_params.items():  # The critic head starts at 0.
      if k not in params:
        params[k] = jax.device_put(jnp.zeros(a.shape, a.dtype),
                                   self.param_shardings[k])
    state = TrainState.create(params, self.tx, self._state_rng())
    return jax.device_put(state, self.state_shardings), ref

  def _state_rng(self) -> jax.Array:
    return jax.random.fold_in(jax.random.key(self.seed), 1)

  def restore_or_init(self) -> tuple[TrainState, PyTree, int]:
    """(state, reference params or None, first RL step to run).

    Resumes from the latest checkpoint in WORKDIR/checkpoints if there is
    one; the reference is re-created from the init checkpoint / seed.
    """
    self.checkpoints = ckpt_lib.CheckpointManager(
        self.workdir / "checkpoints",
        keep_last=self.config.train.keep_checkpoints,
        keep_steps=tuple(self.config.train.keep_steps),
        async_save=self.config.train.async_checkpoints)
    if self.checkpoints.latest_step() is None:
      return *self.initial_state(), 0
    target = ckpt_lib.with_shardings(
        abstract_train_state(self.abstract_params, self.tx, self._state_rng()),
        self.state_shardings)
    restored = self.checkpoints.restore(target)
    self._restore_position(restored.data_position or {})
    logging.info("resumed from %s step %d", self.checkpoints.directory,
                 restored.step)
    ref = self._init_policy() if self.loss_cfg.needs_reference else None
    return restored.state, ref, restored.step

  # ---------------------------------------------------------------- loop --

  def train(self) -> dict[str, Any]:
    """Runs (or resumes) the run to its end; returns the run summary."""
    self.workdir.mkdir(parents=True, exist_ok=True)
    state, ref, start = self.restore_or_init()
    prompts = self.prompt_stream(start)
    writer = metric_writers.create_default_writer(
        self.workdir, just_logging=jax.process_index() > 0)
    hooks = self._hooks(writer)
    stop, step, t0 = "num_steps", start, time.time()
    try:
      for step in range(start, self.config.train.num_steps):
        if self._budget_reached():
          stop = "compute_budget"
          break
        with CompileCounter() as compiles:
          state, metrics = self.run_step(state, ref, step, next(prompts))
        metrics["jax/compiles"] = compiles.count
        self._log(writer, step + 1, metrics)
        for hook in hooks:
          hook(step + 1)
        if (step + 1) % self.config.train.checkpoint_every == 0:
          self._save(step + 1, state)
      else:
        step = self.config.train.num_steps
    except NonFiniteUpdatesError as e:
      self._write_summary("nonfinite", step, time.time() - t0, str(e))
      raise
    finally:
      writer.close()
    if self.checkpoints.latest_step() != step:
      self._save(step, state)
    self.checkpoints.wait()
    self.final_state = state
    return self._write_summary(stop, step, time.time() - t0)

  def run_step(self, state: TrainState, ref: PyTree, step: int,
               prompts: rollout_lib.PromptBatch
               ) -> tuple[TrainState, dict[str, float]]:
    """One RL step (module docstring); returns the new state and metrics."""
    timer = PhaseTimer()
    rows = prompts.repeat(self.group_size)
    with timer("rollout"):
      key = jax.random.fold_in(jax.random.fold_in(
          jax.random.key(self.seed), 2), step)
      rollout = rollout_lib.sample(self.sampler, state.params, prompts, key,
                                   self.sampling)
      responses = rollout_lib.decode_responses(self.template, self.vocab,
                                               rollout)
    with timer("reward"):
      rewards, metrics = self.score(rows, responses, step)
    with timer("reference"):
      batch, ref_metrics = self.prepare_batch(state, ref, rollout, rewards)
    with timer("update"):
      state, update_metrics = self.update(state, batch, step)
    phase = rl_loss.rl_step_flops(self.model_cfg, self.loss_cfg,
                                  prompts.lengths, rollout,
                                  self.config.algorithm.num_epochs)
    state = flops_lib.add_flops(state, phase.total)
    self.flops_used += phase.total
    self.last_step_flops = phase.total
    for k, v in phase.to_dict().items():
      self.flops_by_phase[k] += v
    metrics.update(compute_metrics(merge_metrics(ref_metrics,
                                                 update_metrics)))
    metrics.update(rollout_lib.rollout_metrics(rows, rollout, timer.seconds))
    metrics.update({f"{k}_step": v for k, v in phase.to_dict().items()})
    metrics["flops/used"] = self.flops_used
    metrics["jax/traces"] = (sum(self.trace_counts.values())
                             + self.sampler.num_traces)
    metrics["train/learning_rate"] = optimizer_lib.learning_rate(
        self.plan.optimizer, int(state.step))
    return state, metrics

  # -------------------------------------------------------------- phases --

  def prompt_stream(self, start: int) -> rollout_lib.PromptStream:
    """Prompt batches of the variant's mixture from RL step `start` on."""
    names = tasks.register_tasks(
        self.config.data.data_dir, self.vocab,
        scenario_rate=self.config.data.scenario_rate,
        max_prompt_tokens=self.width, template=self.template)
    self.mixture = names.mixtures[self.config.data.mixture]
    self.examples = tasks.ExampleIndex.from_data_dir(
        self.config.data.data_dir)
    return rollout_lib.mixture_stream(
        self.mixture, split=self.config.data.split, seed=self.seed,
        width=self.width, batch_size=self.plan.num_prompts, start=start)

  def score(self, rows: rollout_lib.PromptBatch, responses: list[str],
            step: int) -> tuple[np.ndarray, dict[str, float]]:
    """float32[N] rewards (NaN = unscorable) and reward / monitor metrics.

    Multi-host: process 0 grades (judge calls are made once) and broadcasts.
    """
    examples = self.examples.lookup(rows.ids)
    leader = jax.process_index() == 0
    rewards = (self.rewards(rows.sources, examples, responses) if leader
               else np.zeros(len(responses), np.float32))
    if jax.process_count() > 1:
      rewards = np.asarray(multihost_utils.broadcast_one_to_all(rewards))
    rubric = isinstance(self.rewards.rewards.get("scenario"),
                        rewards_lib.RubricReward)
    metrics = rollout_lib.reward_metrics(rewards, rows, rubric)
    if self.gold is not None and leader:
      pick = rollout_lib.monitor_rows(rows, set(self.gold.rewards),
                                      self.config.monitor.sample_size,
                                      self.seed, step)
      gold = self.gold([rows.sources[i] for i in pick],
                       [examples[i] for i in pick],
                       [responses[i] for i in pick])
      keep = np.isfinite(gold) & np.isfinite(rewards[pick])
      if keep.any():
        metrics.update(self.monitor.update(rewards[pick][keep], gold[keep]))
    return rewards, {k: v for k, v in metrics.items() if not math.isnan(v)}

  def prepare_batch(self, state: TrainState, ref: PyTree,
                    rollout: rollout_lib.Rollout, rewards: np.ndarray
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Host train batch: sequences, advantages, reference outputs."""
    batch = rollout_lib.sequence_batch(rollout)
    if max(self.plan.reference_prefix_group,
           self.plan.update_prefix_group) > 1:
      rollout_lib.check_prompt_groups(rollout, self.group_size)
    metrics = {}
    if self.loss_cfg.algorithm == "grpo":
      adv, valid = rl_loss.group_advantages(
          rewards, self.group_size,
          self.config.algorithm.advantage_estimator)
      batch["advantages"] = adv
    else:
      valid = np.isfinite(rewards)
    batch["completion_mask"] = batch["completion_mask"] & valid[:, None]
    out = {}
    if self.loss_cfg.needs_reference or self.loss_cfg.needs_current:
      inputs = {k: batch[k] for k in ("tokens", "token_mask",
                                      "completion_mask", "sampler_logp")}
      out = self.reference_fn(ref, state.params, self._put(inputs))
    if self.loss_cfg.algorithm == "ppo":
      a = self.config.algorithm
      old_logp = out.get("old_logp", batch["sampler_logp"])
      adv, returns, metrics = rl_loss.ppo_advantages(
          self.loss_cfg, jnp.asarray(np.where(valid, rewards, 0.0)),
          jnp.asarray(batch["completion_mask"]), out["old_values"],
          old_logp, out.get("ref_logp"), a.gamma, a.gae_lambda,
          a.whiten_advantages)
      out.update(advantages=adv, returns=returns)
    batch.update(rollout_lib.to_host(out))
    batch.setdefault("old_logp", batch["sampler_logp"])
    del batch["sampler_logp"]  # TIS weights, if any, are computed above.
    if self.loss_cfg.kl_penalty == "reward":
      batch.pop("ref_logp", None)  # Already in the rewards.
    return batch, metrics

  def update(self, state: TrainState, batch: dict[str, np.ndarray],
             step: int) -> tuple[TrainState, dict[str, Any]]:
    """K epochs x M minibatches of optimizer updates on one rollout batch."""
    a = self.config.algorithm
    rng = np.random.default_rng([self.seed, step])
    size = self.plan.minibatch_rows
    metrics: dict[str, Any] = {}
    limit = self.plan.optimizer.max_consecutive_nonfinite
    for _ in range(a.num_epochs):
      order = (rng.permutation(self.plan.rows) if self.plan.updates_per_step
               > 1 else np.arange(self.plan.rows))
      for m in range(a.num_minibatches):
        idx = order[m * size:(m + 1) * size]
        state, new = self.train_step(
            state, self._put({k: v[idx] for k, v in batch.items()}), None)
        metrics = merge_metrics(metrics, new)
        bad = optimizer_lib.check_finite_updates(state.opt_state, limit,
                                                 int(state.step))
        metrics["train/nonfinite_consecutive"] = MeanMetric.from_values(
            float(bad))
        if bad:
          logging.warning("RL step %d: non-finite gradients, update skipped "
                          "(%d in a row; stopping at %d)", step, bad, limit)
    return state, metrics

  # ------------------------------------------------------------- helpers --

  def _put(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Host arrays [N, ...] -> global arrays split over the batch axes."""
    def put(x):
      sharding = NamedSharding(self.mesh, partitioning.batch_spec(x.ndim))
      return jax.make_array_from_callback(x.shape, sharding,
                                          lambda idx: x[idx])
    return {k: put(np.asarray(v)) for k, v in batch.items()}

  def _budget_reached(self) -> bool:
    """Stop when one more step would land farther from the budget."""
    budget = self.plan.compute_budget
    return bool(budget) and (self.flops_used + self.last_step_flops / 2
                             >= budget)

  def _position(self, step: int) -> dict[str, Any]:
    return {"step": step, "seed": self.seed, "mixture": self.config.data
            .mixture, "prompts_per_step": self.plan.num_prompts,
            "flops_used": self.flops_used, "last_step_flops":
            self.last_step_flops, "flops_by_phase": dict(self.flops_by_phase),
            "monitor": rollout_lib.monitor_state_to_json(self.monitor.state)}

  def _restore_position(self, pos: dict[str, Any]) -> None:
    """Run counters from a checkpoint's data position (and a config check)."""
    for key, field, want in (
        ("seed", "seed", self.seed),
        ("mixture", "data.mixture", self.config.data.mixture),
        ("prompts_per_step", "rollout.batch_size", self.plan.num_prompts)):
      if key in pos and pos[key] != want:
        raise run_config.ConfigError(
            field, f"the checkpoint in {self.workdir} was written with {key}="
            f"{pos[key]!r}, this config has {want!r}; use a new workdir")
    self.flops_used = float(pos.get("flops_used", 0.0))
    self.last_step_flops = float(pos.get("last_step_flops", 0.0))
    self.flops_by_phase.update(pos.get("flops_by_phase", {}))
    if "monitor" in pos:
      self.monitor.state = rollout_lib.monitor_state_from_json(
          pos["monitor"])
    path = self.workdir / "metrics.jsonl"
    if path.is_file():  # Drop rows of steps the resumed run will redo.
      self.history = [row for _, row in io_lib.iter_jsonl(path)
                      if row["step"] <= pos.get("step", 0)]

  def _save(self, step: int, state: TrainState) -> None:
    """Checkpoint + metrics.jsonl (rewritten here, so it always matches a
    checkpoint; TensorBoard gets every step)."""
    if jax.process_index() == 0:
      io_lib.atomic_write_jsonl(self.workdir / "metrics.jsonl", self.history)
    config = model_judge.chat_model_config(
        self.model_cfg, self.vocab, self.template, "policy",
        variant=self.config.variant, run=self.config.to_dict())
    self.checkpoints.save(
        step, state, config=config,
        tokenizer=ckpt_lib.TokenizerAsset.from_file(self.tokenizer_path),
        data_position=self._position(step))

  def _hooks(self, writer) -> list[Any]:
    hooks = [periodic_actions.ReportProgress(
        num_train_steps=self.config.train.num_steps, writer=writer,
        every_secs=self.config.train.progress_every_secs)]
    p = self.config.profile
    if p.enabled and jax.process_index() == 0:
      hooks.append(periodic_actions.Profile(
          logdir=self.workdir, num_profile_steps=p.num_steps,
          profile_duration_ms=None, first_profile=p.first_step,
          every_steps=None, every_secs=None))
    return hooks

  def _log(self, writer, step: int, metrics: dict[str, float]) -> None:
    if step % self.config.train.log_every and step != self.config.train \
        .num_steps:
      return
    scalars = {k: float(v) for k, v in metrics.items()}
    writer.write_scalars(step, scalars)
    self.history.append({"step": step, **scalars})

  def _write_summary(self, stop: str, step: int, seconds: float,
                     message: str = "") -> dict[str, Any]:
    budget = self.plan.compute_budget
    summary = {
        "variant": self.config.variant, "seed": self.seed,
        "mixture": self.config.data.mixture, "stop_reason": stop,
        "message": message, "steps_completed": step,
        "num_steps": self.config.train.num_steps,
        "compute_budget": budget, "flops_used": self.flops_used,
        "budget_relative_gap": ((self.flops_used - budget) / budget
                                if budget else None),
        "flops_by_phase": dict(self.flops_by_phase),
        "wall_seconds": seconds, "checkpoints": str(
            self.checkpoints.directory),
        "latest_checkpoint": self.checkpoints.latest_step(),
        "compiles": dict(self.trace_counts, sampler=self.sampler.num_traces),
        "final_metrics": self.history[-1] if self.history else {},
    }
    if budget and abs(summary["budget_relative_gap"]) > 0.01:
      logging.warning("FLOPs used %.4g differ from the budget %.4g by more "
                      "than 1%%: lower the FLOPs per step (rollout.batch_size"
                      ") or raise train.num_steps", self.flops_used, budget)
    if jax.process_index() == 0:
      io_lib.atomic_write_json(
          self.workdir / run_config.SUMMARY_FILE,
          json.loads(json.dumps(summary, default=float)))
    return summary

