"""Shared RL config of every variant; a variant file changes a few fields.

  python -m beneficial_rl.train --config=configs/rl/beneficial.py
  python -m beneficial_rl.train --config=configs/rl/beneficial.py:smoke \
      --config.seed=1 --workdir=/tmp/rl_smoke

The optional config argument after ':' is a comma list of presets;
'smoke' swaps in the tiny model, the smoke data dir and a few steps. Every
field is checked by `beneficial_rl.rl.run_config.validate` before any compute.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

# TransformerConfig fields a run may override on top of `model.preset`.
_MODEL_OVERRIDES = {
    "vocab_size": int, "num_layers": int, "embed_dim": int, "num_heads": int,
    "num_kv_heads": int, "head_dim": int, "mlp_dim": int, "max_seq_len": int,
    "dtype": str, "param_dtype": str,
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The beneficial variant's defaults; `arg` may be 'smoke'."""
  config = ml_collections.ConfigDict()
  config.variant = "beneficial"
  config.seed = 0
  config.workdir = ""  # --workdir wins when given.

  config.data = ml_collections.ConfigDict()
  config.data.data_dir = "outputs/data/embedded"
  # Key of `tasks.RegisteredNames.mixtures`: beneficial | baseline |
  # health_only | no_health_science.
  config.data.mixture = "beneficial"
  config.data.scenario_rate = 0.05  # Scenario share of the mixtures.
  config.data.split = "train"
  config.data.max_prompt_len = 256  # P: prompts are left-truncated/padded.
  config.data.chat_template = "default"

  config.model = ml_collections.ConfigDict()
  config.model.preset = "small"
  config.model.overrides = ml_collections.ConfigDict(
      {k: config_dict.placeholder(t) for k, t in _MODEL_OVERRIDES.items()})
  # Run directory of the SFT prior (params-only restore); '' = random init.
  config.model.init_checkpoint = ""
  config.model.init_step = -1  # -1: the latest step of init_checkpoint.

  config.rollout = ml_collections.ConfigDict()
  config.rollout.batch_size = 64  # Completions per RL step (prompts x G).
  config.rollout.group_size = 8   # G samples per prompt.
  config.rollout.max_new_tokens = 128
  config.rollout.temperature = 1.0
  config.rollout.top_k = 0        # 0: off.
  config.rollout.top_p = 1.0      # 1.0: off.

  # Data source ('scenario' | 'standard') -> reward name or {'name', ...}
  # (beneficial_rl.grading.rewards). A rubric judge can replace the pattern
  # judge, e.g. {'name': 'rubric_judge', 'judge': {...}}.
  config.rewards = ml_collections.ConfigDict()
  config.rewards.scenario = "rubric_pattern"
  config.rewards.standard = "standard_exact"

  config.algorithm = ml_collections.ConfigDict()
  config.algorithm.name = "grpo"  # grpo | ppo (value head + GAE).
  config.algorithm.advantage_estimator = "grpo"  # grpo | dr_grpo | rloo.
  config.algorithm.policy_loss = "ppo"  # ppo | reinforce.
  config.algorithm.clip_eps_low = 0.2
  config.algorithm.clip_eps_high = 0.28
  config.algorithm.dual_clip_c = 0.0  # 0: off; else > 1.
  config.algorithm.aggregation = "token_mean"
  config.algorithm.kl_coef = 0.02
  config.algorithm.kl_estimator = "k3"
  config.algorithm.kl_penalty = "loss"  # loss | reward (ppo only).
  config.algorithm.entropy_coef = 0.0
  # 'sampler': the sampler's log-probs are the PPO "old" log-probs.
  # 'recompute': the trainer recomputes them next to the reference pass and
  # truncated importance weights (tis_cap) correct the sampler mismatch.
  config.algorithm.old_logprobs = "sampler"
  config.algorithm.tis_cap = 2.0
  config.algorithm.num_epochs = 1       # K passes over each rollout batch.
  config.algorithm.num_minibatches = 1  # Optimizer updates per epoch.
  # PPO only.
  config.algorithm.vf_coef = 0.5
  config.algorithm.value_clip = 0.2
  config.algorithm.gamma = 1.0
  config.algorithm.gae_lambda = 0.95
  config.algorithm.whiten_advantages = True

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 1e-5
  config.optimizer.schedule = "constant"
  config.optimizer.warmup_steps = 0
  config.optimizer.total_steps = -1  # -1: num_steps x updates per step.
  config.optimizer.end_lr_fraction = 0.0
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.weight_decay = 0.0
  config.optimizer.max_grad_norm = 1.0
  # Stop after this many optimizer updates in a row with NaN/inf gradients
  # (each one is skipped).
  config.optimizer.max_consecutive_nonfinite = 5

  config.train = ml_collections.ConfigDict()
  config.train.num_steps = 1000         # RL steps (rollout + update).
  config.train.grad_accum_steps = 1
  config.train.remat = "none"           # none | nothing | dots.
  # Run each prompt once per group of samples in the reference and update
  # passes (`rollout.policy_forward(prefix_group=)`); same loss, fewer FLOPs.
  config.train.share_prompt_forward = True
  # Stop at this many FLOPs (0: off), or at the FLOPs of another run:
  # a run_summary.json or the workdir holding it (baseline matching).
  config.train.compute_budget = 0.0
  config.train.compute_budget_from = ""
  config.train.checkpoint_every = 50
  config.train.keep_checkpoints = 3
  # Checkpoint steps kept beside the newest ones (e.g. evaluated later).
  config.train.keep_steps = ()
  config.train.async_checkpoints = True
  config.train.log_every = 1
  config.train.progress_every_secs = 60.0

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = 1
  config.mesh.fsdp = -1
  config.mesh.tensor = 1
  config.mesh.num_devices = 0  # 0: all devices; n: the first n.

  # Proxy-vs-gold reward-hacking monitor: source -> gold reward name or
  # config; '' leaves that source unmonitored (all '' = monitor off).
  config.monitor = ml_collections.ConfigDict()
  config.monitor.gold_rewards = ml_collections.ConfigDict(
      {"scenario": "", "standard": ""})
  config.monitor.sample_size = 16
  config.monitor.ema_decay = 0.9
  config.monitor.gap_threshold = 0.2
  config.monitor.rank_threshold = 0.2
  config.monitor.patience = 3

  config.profile = ml_collections.ConfigDict()
  config.profile.enabled = False
  config.profile.first_step = 5
  config.profile.num_steps = 2

  for preset in filter(None, (arg or "").split(",")):
    if preset not in PRESETS:
      raise ValueError(f"unknown config argument {preset!r}; known: "
                       f"{sorted(PRESETS)}")
    PRESETS[preset](config)
  return config


def smoke(config: ml_collections.ConfigDict) -> None:
  """Tiny model on the smoke data set: a few steps in about a minute on CPU.

  Build the data first: python -m beneficial_rl.data.build
  --config=configs/data/smoke.py
  """
  config.data.data_dir = "outputs/data/smoke"
  config.data.max_prompt_len = 96
  config.model.preset = "tiny"
  config.model.overrides.max_seq_len = 128
  config.rollout.batch_size = 16
  config.rollout.group_size = 4
  config.rollout.max_new_tokens = 24
  config.optimizer.learning_rate = 1e-4
  config.train.num_steps = 4
  config.train.checkpoint_every = 2
  config.train.progress_every_secs = 5.0


def embedded(config: ml_collections.ConfigDict) -> None:
  """The embedded experiment's RL runs: the tiny prior, a few minutes each.

  Starts from the SFT prior of configs/sft/prior.py (the tiny preset) on the
  data of configs/data/embedded.py.
  """
  config.data.data_dir = "outputs/data/embedded"
  config.data.max_prompt_len = 128
  config.model.preset = "tiny"
  config.model.overrides.max_seq_len = 192
  config.rollout.batch_size = 32
  config.rollout.group_size = 8
  config.rollout.max_new_tokens = 48
  config.optimizer.learning_rate = 5e-5
  # 60 steps: one step is < 2% of the run, so the compute-matched baseline
  # stops within 1% of the beneficial run's FLOPs.
  config.train.num_steps = 60
  config.train.checkpoint_every = 20
  config.train.progress_every_secs = 30.0


def long(config: ml_collections.ConfigDict) -> None:
  """300 steps with a checkpoint every 50 (for learning curves); combine
  with 'embedded', e.g. configs/rl/beneficial.py:embedded,long."""
  config.train.num_steps = 300
  config.train.checkpoint_every = 50
  config.train.keep_checkpoints = 7


PRESETS = {"smoke": smoke, "embedded": embedded, "long": long}
