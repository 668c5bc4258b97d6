"""A few-minute version of the embedded experiment, run in CI.

  python -m beneficial_rl.experiment --config=configs/experiments/smoke.py
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment_dir = "outputs/experiments/smoke"
  config.data_config = "configs/data/smoke.py"
  config.sft_config = "configs/sft/prior.py:smoke"
  # Reward model on the prior's backbone, after sft_prior; "" skips it.
  config.reward_model_config = "configs/reward_model/embedded.py:smoke"
  config.rl_config_arg = ":smoke"
  config.variants = ("beneficial", "baseline")
  config.seeds = (0,)
  config.eval_config = "configs/eval/smoke.py"  # 5 benchmarks x 4 items.
  config.eval_suite = ""
  config.eval_max_items = 0
  # Intermediate checkpoints evaluated on the held-out trait split (the
  # learning curves); steps must be checkpoint steps of the RL config.
  config.periodic_eval_runs = ("beneficial", "baseline")
  config.periodic_eval_steps = (2,)
  config.periodic_eval_suite = "heldout_traits"
  # Stages share a persistent XLA compilation cache under EXP/xla_cache.
  config.compilation_cache = True
  config.persistence_config = "configs/persistence/smoke.py"  # "" skips the stage.
  return config
