"""Checks of an RL run config, run before any compute, and what they derive.

`validate(config, num_devices)` reads an `ml_collections.ConfigDict` (see
configs/rl/base.py) and either raises `ConfigError`, whose message starts with
the dotted name of the offending field, or returns a `RunPlan` holding the
typed pieces the trainer builds from (model and optimizer configs, mesh sizes,
rows per update, the compute budget). Nothing here touches a device: the
parameter-sharding check runs on an abstract mesh.

Config files load with `load_config('configs/rl/beneficial.py:smoke')`, the
same way `ml_collections.config_flags` loads them for the `train` binary.
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import json
import math
import os
import pathlib
import types
from typing import Any, Mapping

import ml_collections

from beneficial_rl.data import chat
from beneficial_rl.data import layout
from beneficial_rl.grading import monitor as monitor_lib
from beneficial_rl.grading import rewards as rewards_lib
from beneficial_rl.models import config as model_config_lib
from beneficial_rl.models import transformer
from beneficial_rl.parallel import mesh as mesh_lib
from beneficial_rl.parallel import partitioning
from beneficial_rl.parallel import remat as remat_lib
from beneficial_rl.rl import algorithms
from beneficial_rl.rl import optimizer as optimizer_lib

VARIANTS: dict[str, str] = {
    "beneficial": "standard tasks + 5% scenarios graded by their rubrics",
    "baseline": "standard tasks only, compute-matched to a beneficial run",
    "health_only": "standard tasks + scenarios of the health domain only",
    "no_health_science": "standard tasks + scenarios outside health/science",
    "helpfulness_control": "beneficial prompts, generic helpfulness reward",
    "scenario_heavy": "diagnostic: the beneficial mixture at 50% scenarios "
                      "(how fast the rubric reward is learned)",
}
MIXTURES = ("beneficial", "baseline", "health_only", "no_health_science")
SOURCES = ("scenario", "standard")
ALGORITHMS = ("grpo", "ppo")
SUMMARY_FILE = "run_summary.json"


class ConfigError(ValueError):
  """A bad config value; the message starts with 'config.<field>'."""

  def __init__(self, field: str, message: str):
    super().__init__(f"config.{field}: {message}")
    self.field = field


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """What a valid config resolves to.

  Attributes:
    model: the policy's `TransformerConfig` (preset + overrides).
    optimizer: the `OptimizerConfig` (total_steps resolved).
    mesh: `MeshConfig` of the run.
    mesh_sizes: (data, fsdp, tensor) sizes over `num_devices`.
    num_devices: devices the mesh spans (the first n of `jax.devices()`).
    num_prompts: prompts per RL step (rollout.batch_size / group_size).
    rows: completions per RL step, N.
    minibatch_rows: rows of one optimizer update, N / num_minibatches.
    updates_per_step: optimizer updates per RL step (epochs x minibatches).
    compute_budget: FLOPs at which the run stops, or None.
    reference_prefix_group / update_prefix_group: consecutive rows sharing a
      prompt in each chunk the reference pass / each microbatch the update
      sees (`prefix_group` of `rollout.policy_forward`; 1: no sharing).
  """
  model: model_config_lib.TransformerConfig
  optimizer: optimizer_lib.OptimizerConfig
  mesh: mesh_lib.MeshConfig
  mesh_sizes: tuple[int, int, int]
  num_devices: int
  num_prompts: int
  rows: int
  minibatch_rows: int
  updates_per_step: int
  compute_budget: float | None
  reference_prefix_group: int = 1
  update_prefix_group: int = 1

  @property
  def batch_ways(self) -> int:
    """Devices the batch axis is split over (data x fsdp)."""
    return self.mesh_sizes[0] * self.mesh_sizes[1]


# ------------------------------------------------------------ config files --


def _load_module(path: str | os.PathLike, name: str) -> types.ModuleType:
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no config file {path}")
  loader = importlib.machinery.SourceFileLoader(name, os.fspath(path))
  module = types.ModuleType(loader.name)
  module.__file__ = os.fspath(path)
  loader.exec_module(module)
  return module


def sibling_config(file: str, name: str) -> types.ModuleType:
  """Loads `<name>.py` from the directory of `file` (a variant's base)."""
  path = pathlib.Path(file).with_name(f"{name}.py")
  return _load_module(path, f"beneficial_rl_config_{name}")


def load_config(spec: str) -> ml_collections.ConfigDict:
  """'configs/rl/beneficial.py[:arg]' -> the file's `get_config(arg)`."""
  path, _, arg = spec.partition(":")
  module = _load_module(path, f"beneficial_rl_config_{pathlib.Path(path).stem}")
  return module.get_config(arg or None)


# ------------------------------------------------------------------ pieces --


def model_config(config: ml_collections.ConfigDict
                 ) -> model_config_lib.TransformerConfig:
  """`model.preset` with the non-None `model.overrides` applied."""
  if config.model.preset not in model_config_lib.preset_names():
    raise ConfigError("model.preset", f"unknown preset "
                      f"{config.model.preset!r}; known: "
                      f"{model_config_lib.preset_names()}")
  overrides = {k: v for k, v in config.model.overrides.items()
               if v is not None}
  try:
    return model_config_lib.get_preset(config.model.preset, **overrides)
  except (ValueError, TypeError) as e:
    raise ConfigError("model.overrides", str(e)) from None


def optimizer_config(config: ml_collections.ConfigDict,
                     updates_per_step: int) -> optimizer_lib.OptimizerConfig:
  """`config.optimizer` with total_steps=-1 resolved to all updates."""
  d = config.optimizer.to_dict()
  if d.get("total_steps") == -1:
    d["total_steps"] = max(1, config.train.num_steps * updates_per_step)
  try:
    return optimizer_lib.OptimizerConfig.from_dict(d)
  except ValueError as e:
    msg = str(e)
    field = msg.split("=", 1)[0].removeprefix("OptimizerConfig.")
    field = field if field in d else ""
    raise ConfigError(f"optimizer.{field}" if field else "optimizer",
                      msg) from None


def read_flops_used(path: str | os.PathLike) -> float:
  """`flops_used` of a run summary (a file, or a workdir that holds one)."""
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / SUMMARY_FILE
  if not path.is_file():
    raise ConfigError("train.compute_budget_from",
                      f"no run summary at {path}")
  try:
    summary = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise ConfigError("train.compute_budget_from",
                      f"{path}: bad JSON ({e.msg})") from None
  flops = summary.get("flops_used") if isinstance(summary, dict) else None
  if not isinstance(flops, (int, float)) or not flops > 0:
    raise ConfigError("train.compute_budget_from",
                      f"{path}: field 'flops_used' must be a positive "
                      f"number, got {flops!r}")
  return float(flops)


def compute_budget(config: ml_collections.ConfigDict) -> float | None:
  """The FLOP budget of the run (None: no budget)."""
  budget, source = config.train.compute_budget, config.train.compute_budget_from
  if budget and source:
    raise ConfigError("train.compute_budget", "set either compute_budget or "
                      "compute_budget_from, not both")
  if budget < 0 or not math.isfinite(budget):
    raise ConfigError("train.compute_budget", f"{budget} must be >= 0")
  if source:
    return read_flops_used(source)
  if config.variant == "baseline" and not budget:
    raise ConfigError(
        "train.compute_budget_from", "the baseline is compute-matched: set it "
        "to the beneficial run's workdir (or its run_summary.json), or set "
        "train.compute_budget")
  return float(budget) or None


def _reward_names(config: Any, field: str, allow_empty: bool) -> dict[str, Any]:
  """Source -> reward config, checked against the reward registry."""
  rewards = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  out = {}
  for source, cfg in rewards.items():
    if source not in SOURCES:
      raise ConfigError(f"{field}.{source}", f"unknown data source; expected "
                        f"one of {SOURCES}")
    if allow_empty and cfg in ("", None):
      continue
    name = cfg.get("name") if isinstance(cfg, Mapping) else cfg
    if name not in rewards_lib.reward_names():
      raise ConfigError(f"{field}.{source}", f"unknown reward {name!r}; "
                        f"known: {rewards_lib.reward_names()}")
    out[source] = cfg
  return out


def reward_configs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.rewards` as a plain dict, after the checks of `validate`."""
  return _reward_names(config.rewards, "rewards", allow_empty=False)


def gold_reward_configs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Monitored source -> gold reward config ({} when the monitor is off)."""
  return _reward_names(config.monitor.gold_rewards, "monitor.gold_rewards",
                       allow_empty=True)


def monitor_config(config: ml_collections.ConfigDict
                   ) -> monitor_lib.MonitorConfig:
  m = config.monitor
  try:
    return monitor_lib.MonitorConfig(
        ema_decay=m.ema_decay, gap_threshold=m.gap_threshold,
        rank_threshold=m.rank_threshold, patience=m.patience)
  except ValueError as e:
    raise ConfigError("monitor", str(e)) from None


# ---------------------------------------------------------------- validate --


def _require(ok: bool, field: str, value: Any, why: str) -> None:
  if not ok:
    raise ConfigError(field, f"{value!r} {why}")


def _check_data(config: ml_collections.ConfigDict) -> None:
  d = config.data
  _require(d.mixture in MIXTURES, "data.mixture", d.mixture,
           f"is not one of {MIXTURES}")
  _require(0.0 < d.scenario_rate < 1.0, "data.scenario_rate",
           d.scenario_rate, "must be in (0, 1)")
  _require(d.split in layout.SPLITS, "data.split", d.split,
           f"is not one of {layout.SPLITS}")
  _require(d.max_prompt_len >= 1, "data.max_prompt_len", d.max_prompt_len,
           "must be >= 1")
  _require(d.chat_template in chat.TEMPLATES, "data.chat_template",
           d.chat_template, f"is not one of {sorted(chat.TEMPLATES)}")
  needed = tuple(f(s) for f in (layout.scenarios_relpath,
                                layout.standard_relpath)
                 for s in layout.SPLITS) + (layout.TOKENIZER,)
  missing = layout.missing_files(d.data_dir, needed)
  if missing:
    raise ConfigError("data.data_dir", f"{d.data_dir!r} lacks "
                      f"{', '.join(missing)}; build it with `python -m "
                      "beneficial_rl.data.build --config=configs/data/"
                      "smoke.py --config.data_dir=...`")


def _check_rollout(config: ml_collections.ConfigDict) -> None:
  r = config.rollout
  _require(r.group_size >= 1, "rollout.group_size", r.group_size,
           "must be >= 1")
  _require(r.batch_size >= 1, "rollout.batch_size", r.batch_size,
           "must be >= 1")
  if r.batch_size % r.group_size:
    raise ConfigError("rollout.batch_size", f"{r.batch_size} is not divisible "
                      f"by rollout.group_size={r.group_size}")
  _require(r.max_new_tokens >= 1, "rollout.max_new_tokens", r.max_new_tokens,
           "must be >= 1")
  _require(r.temperature > 0, "rollout.temperature", r.temperature,
           "must be > 0 (the RL objective needs sampled responses)")
  _require(r.top_k >= 0, "rollout.top_k", r.top_k, "must be >= 0 (0 = off)")
  _require(0.0 < r.top_p <= 1.0, "rollout.top_p", r.top_p,
           "must be in (0, 1]")


def _check_algorithm(config: ml_collections.ConfigDict) -> None:
  a, g = config.algorithm, config.rollout.group_size
  _require(a.name in ALGORITHMS, "algorithm.name", a.name,
           f"is not one of {ALGORITHMS}")
  if a.name == "grpo":
    group = [n for n in algorithms.ADVANTAGE_ESTIMATORS.names() if n != "gae"]
    _require(a.advantage_estimator in group,
             "algorithm.advantage_estimator", a.advantage_estimator,
             f"is not a group estimator {group} (PPO uses GAE)")
    if a.advantage_estimator in ("grpo", "rloo") and g < 2:
      raise ConfigError("rollout.group_size", f"{g}: estimator "
                        f"{a.advantage_estimator!r} needs >= 2 samples per "
                        "prompt")
  _require(a.policy_loss in algorithms.POLICY_LOSSES, "algorithm.policy_loss",
           a.policy_loss, f"is not one of {algorithms.POLICY_LOSSES.names()}")
  _require(0.0 <= a.clip_eps_low < 1.0, "algorithm.clip_eps_low",
           a.clip_eps_low, "must be in [0, 1)")
  _require(a.clip_eps_high >= 0.0, "algorithm.clip_eps_high",
           a.clip_eps_high, "must be >= 0")
  _require(a.dual_clip_c == 0 or a.dual_clip_c > 1, "algorithm.dual_clip_c",
           a.dual_clip_c, "must be 0 (off) or > 1")
  _require(a.aggregation in algorithms.AGGREGATIONS, "algorithm.aggregation",
           a.aggregation, f"is not one of {algorithms.AGGREGATIONS}")
  _require(a.kl_coef >= 0, "algorithm.kl_coef", a.kl_coef, "must be >= 0")
  _require(a.kl_estimator in algorithms.KL_ESTIMATORS,
           "algorithm.kl_estimator", a.kl_estimator,
           f"is not one of {algorithms.KL_ESTIMATORS.names()}")
  _require(a.kl_penalty in ("loss", "reward"), "algorithm.kl_penalty",
           a.kl_penalty, "is not 'loss' or 'reward'")
  _require(a.kl_penalty == "loss" or a.name == "ppo", "algorithm.kl_penalty",
           a.kl_penalty, "needs algorithm.name='ppo' (per-token rewards)")
  _require(a.entropy_coef >= 0, "algorithm.entropy_coef", a.entropy_coef,
           "must be >= 0")
  _require(a.old_logprobs in ("sampler", "recompute"),
           "algorithm.old_logprobs", a.old_logprobs,
           "is not 'sampler' or 'recompute'")
  _require(a.tis_cap >= 0, "algorithm.tis_cap", a.tis_cap,
           "must be >= 0 (0 = off)")
  _require(a.num_epochs >= 1, "algorithm.num_epochs", a.num_epochs,
           "must be >= 1")
  _require(a.num_minibatches >= 1, "algorithm.num_minibatches",
           a.num_minibatches, "must be >= 1")
  if a.name == "ppo":
    _require(a.vf_coef >= 0, "algorithm.vf_coef", a.vf_coef, "must be >= 0")
    _require(a.value_clip > 0, "algorithm.value_clip", a.value_clip,
             "must be > 0")
    _require(0 <= a.gamma <= 1, "algorithm.gamma", a.gamma,
             "must be in [0, 1]")
    _require(0 <= a.gae_lambda <= 1, "algorithm.gae_lambda", a.gae_lambda,
             "must be in [0, 1]")


def _check_mesh(config: ml_collections.ConfigDict, available: int,
                model: model_config_lib.TransformerConfig
                ) -> tuple[mesh_lib.MeshConfig, int, tuple[int, int, int]]:
  m = config.mesh
  try:
    mesh = mesh_lib.MeshConfig(data=m.data, fsdp=m.fsdp, tensor=m.tensor)
  except ValueError as e:
    raise ConfigError("mesh", str(e)) from None
  n = m.num_devices or available
  _require(0 < n <= available, "mesh.num_devices", m.num_devices,
           f"must be 0 (all) or in [1, {available}] (devices available)")
  try:
    sizes = mesh.resolve(n)
  except ValueError as e:
    field = next((f for f in mesh_lib.MESH_AXES
                  if f"MeshConfig.{f}=" in str(e)), "")
    raise ConfigError(f"mesh.{field}" if field else "mesh", str(e)) from None
  try:  # Every sharded parameter dimension must divide evenly.
    for head in ("policy", "value"):
      partitioning.describe_params(transformer.Transformer(model, head=head),
                                   dict(zip(mesh_lib.MESH_AXES, sizes)))
  except ValueError as e:
    raise ConfigError("mesh", f"{mesh.as_flag()} does not fit the model: "
                      f"{e}") from None
  return mesh, n, sizes


def validate(config: ml_collections.ConfigDict,
             num_devices: int) -> RunPlan:
  """Checks every field; returns the resolved `RunPlan`.

  Args:
    config: an RL config (configs/rl/*.py).
    num_devices: devices available (`jax.device_count()`).

  Raises:
    ConfigError: naming the first bad field.
  """
  _require(config.variant in VARIANTS, "variant", config.variant,
           f"is not a known variant; known: {sorted(VARIANTS)}")
  _require(isinstance(config.seed, int) and config.seed >= 0, "seed",
           config.seed, "must be an int >= 0")
  _check_data(config)
  model = model_config(config)
  _check_rollout(config)
  r, a, t = config.rollout, config.algorithm, config.train
  longest = config.data.max_prompt_len + r.max_new_tokens
  _require(longest <= model.max_seq_len, "data.max_prompt_len",
           config.data.max_prompt_len,
           f"+ rollout.max_new_tokens={r.max_new_tokens} exceeds the model's "
           f"max_seq_len={model.max_seq_len}")
  if config.model.init_checkpoint and not pathlib.Path(
      config.model.init_checkpoint).is_dir():
    raise ConfigError("model.init_checkpoint", f"no checkpoint directory "
                      f"{config.model.init_checkpoint!r}")
  _check_algorithm(config)
  rewards = reward_configs(config)
  needed = ("standard",) if config.data.mixture == "baseline" else SOURCES
  for source in needed:
    _require(source in rewards, f"rewards.{source}", None,
             f"is needed: mixture {config.data.mixture!r} yields "
             f"{source!r} prompts")
  gold_reward_configs(config)
  monitor_config(config)
  _require(config.monitor.sample_size >= 1, "monitor.sample_size",
           config.monitor.sample_size, "must be >= 1")

  _require(t.num_steps >= 1, "train.num_steps", t.num_steps, "must be >= 1")
  _require(t.grad_accum_steps >= 1, "train.grad_accum_steps",
           t.grad_accum_steps, "must be >= 1")
  _require(t.remat in ("none", *remat_lib.POLICIES), "train.remat", t.remat,
           f"is not one of {('none', *remat_lib.POLICIES)}")
  for field in ("checkpoint_every", "keep_checkpoints", "log_every"):
    _require(t[field] >= 1, f"train.{field}", t[field], "must be >= 1")
  for step in t.get("keep_steps", ()):
    _require(isinstance(step, int) and not isinstance(step, bool)
             and 1 <= step <= t.num_steps and step % t.checkpoint_every == 0,
             "train.keep_steps", tuple(t.keep_steps),
             f"each step must be a checkpoint step: a multiple of "
             f"train.checkpoint_every={t.checkpoint_every} in [1, "
             f"train.num_steps={t.num_steps}]")
  budget = compute_budget(config)
  mesh, n, sizes = _check_mesh(config, num_devices, model)

  rows = r.batch_size
  if rows % a.num_minibatches:
    raise ConfigError("algorithm.num_minibatches", f"{a.num_minibatches} "
                      f"does not divide rollout.batch_size={rows}")
  minibatch = rows // a.num_minibatches
  if minibatch % t.grad_accum_steps:
    raise ConfigError("train.grad_accum_steps", f"{t.grad_accum_steps} does "
                      f"not divide the {minibatch} rows of a minibatch")
  micro = minibatch // t.grad_accum_steps
  if micro % (sizes[0] * sizes[1]):
    raise ConfigError("rollout.batch_size", f"{rows} rows give microbatches "
                      f"of {micro} rows, not divisible by the {sizes[0]} x "
                      f"{sizes[1]} (mesh data x fsdp) batch shards")
  updates = a.num_epochs * a.num_minibatches
  optimizer = optimizer_config(config, updates)
  p = config.profile
  _require(p.first_step >= 0 and p.num_steps >= 1, "profile", p.to_dict(),
           "needs first_step >= 0 and num_steps >= 1")
  ref_group = update_group = 1
  if t.get("share_prompt_forward", True):
    ref_group = prefix_group(r.group_size,
                             a.num_minibatches * t.grad_accum_steps)
    # Minibatches of several updates are drawn from shuffled rows.
    if updates == 1:
      update_group = prefix_group(r.group_size, t.grad_accum_steps)
  return RunPlan(model=model, optimizer=optimizer, mesh=mesh,
                 mesh_sizes=sizes, num_devices=n,
                 num_prompts=rows // r.group_size, rows=rows,
                 minibatch_rows=minibatch, updates_per_step=updates,
                 compute_budget=budget, reference_prefix_group=ref_group,
                 update_prefix_group=update_group)


def prefix_group(group_size: int, chunks: int) -> int:
  """Rows sharing a prompt in each of `chunks` strided chunks of a batch.

  Rows are prompt-major (row = i * group_size + j) and chunk c holds rows
  r = c (mod chunks) (`step.split_microbatches`), so when `chunks` divides
  `group_size` each chunk holds runs of group_size / chunks consecutive rows
  of one prompt; otherwise the runs are not aligned and 1 is returned.
  """
  return group_size // chunks if group_size % chunks == 0 else 1
