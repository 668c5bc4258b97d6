"""Diagnostic variant: the beneficial mixture with 50% scenarios.

Not one of the study's variants. At 5% scenarios a tiny CPU run sees about
one scenario prompt every five steps, too few for its rubric score to move
within a few hundred steps; this variant shows how fast the same trainer,
reward and judge raise the rubric score when scenarios are half the data
(configs/experiments/rubric_curve.py runs it beside the beneficial run).
"""

from __future__ import annotations

import ml_collections

from beneficial_rl.rl import run_config

base = run_config.sibling_config(__file__, "base")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = base.get_config(arg)
  config.variant = "scenario_heavy"
  config.data.mixture = "beneficial"
  config.data.scenario_rate = 0.5
  return config
