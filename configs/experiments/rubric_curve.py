"""Rubric-score learning curves: beneficial, compute-matched baseline and a
scenario-heavy diagnostic run.

  python -m beneficial_rl.experiment --config=configs/experiments/rubric_curve.py

The embedded experiment's data and prior, 300 RL steps per run (checkpoints
every 50), every checkpoint evaluated on the held-out trait split (the SFT
prior is step 0); figures under EXP/figures (learning_curves.png). The
beneficial run (5% scenarios) sees about 60 scenario prompts in 300 steps;
the diagnostic `scenario_heavy` variant (50%) shows what the same trainer
and rubric reward do with ten times as many. To reuse the prior of an embedded
experiment, copy its data/, sft_prior/ and stages/{data,sft_prior}.json into
this experiment directory first: finished stages are skipped.
"""

from __future__ import annotations

import importlib.util
import pathlib

import ml_collections


def _embedded_config() -> ml_collections.ConfigDict:
  path = pathlib.Path(__file__).with_name("embedded.py")
  spec = importlib.util.spec_from_file_location("_embedded_experiment", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config() -> ml_collections.ConfigDict:
  config = _embedded_config()
  config.experiment_dir = "outputs/experiments/rubric_curve"
  config.rl_config_arg = ":embedded,long"
  config.variants = ("beneficial", "baseline", "scenario_heavy")
  config.periodic_eval_runs = ("beneficial", "baseline", "scenario_heavy")
  config.eval_suite = "heldout_traits"
  config.eval_max_items = 0  # Every held-out item (364).
  config.periodic_eval_steps = (50, 100, 150, 200, 250)
  config.persistence_config = ""
  config.reward_model_config = ""  # The curves do not use it.
  return config
