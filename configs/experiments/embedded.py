"""The embedded end-to-end experiment (the README's main job).

  python -m beneficial_rl.experiment --config=configs/experiments/embedded.py
"""

from __future__ import annotations

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment_dir = "outputs/experiments/embedded"
  config.data_config = "configs/data/embedded.py"
  config.sft_config = "configs/sft/prior.py"
  # Reward model on the prior's backbone, after sft_prior; "" skips it.
  config.reward_model_config = "configs/reward_model/embedded.py"
  config.rl_config_arg = ":embedded"  # configs/rl/base.py presets.
  config.variants = ("beneficial", "baseline", "health_only",
                     "no_health_science", "helpfulness_control")
  config.seeds = (0,)
  config.eval_config = "configs/eval/embedded.py"
  config.eval_suite = "embedded"  # "" keeps the eval config's suite.
  config.eval_max_items = 32      # 0 keeps the eval config's limit.
  # Intermediate checkpoints evaluated on the held-out trait split (the
  # learning curves); steps must be checkpoint steps of the RL config.
  config.periodic_eval_runs = ("beneficial", "baseline")
  config.periodic_eval_steps = (20, 40)
  config.periodic_eval_suite = "heldout_traits"
  # Stages share a persistent XLA compilation cache under EXP/xla_cache.
  config.compilation_cache = True
  config.persistence_config = "configs/persistence/embedded.py"  # "" skips the stage.
  return config
