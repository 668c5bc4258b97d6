"""The reward model of the embedded experiment (the main job's stage).

  python -m beneficial_rl.grading.train_reward_model \
      --config=configs/reward_model/embedded.py
  python -m beneficial_rl.grading.train_reward_model \
      --config=configs/reward_model/embedded.py:smoke \
      --config.workdir=/tmp/rm_smoke --config.data_dir=/tmp/smoke_data \
      --config.init_checkpoint=/tmp/sft_smoke/checkpoints

The backbone starts from the SFT prior's checkpoint with a fresh reward head
and learns the pattern judge's rubric scores of the train scenarios'
candidate responses (beneficial, partial and failing); agreement is measured
on the held-out scenarios' candidates. The default paths are those of
configs/experiments/embedded.py, whose `reward_model` stage passes them
explicitly. The optional ':smoke' argument shrinks the run to seconds for
checking the pipeline. Every field is checked by
`beneficial_rl.grading.train_reward_model.validate_config` before any
compute.
"""

from __future__ import annotations

import ml_collections

from beneficial_rl.grading import train_reward_model


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The reward model's config; `arg` may be 'smoke'."""
  config = train_reward_model.default_config()
  exp = "outputs/experiments/embedded"
  config.workdir = f"{exp}/reward_model"
  config.data_dir = f"{exp}/data"
  config.init_checkpoint = f"{exp}/sft_prior/checkpoints"
  config.judge = ml_collections.ConfigDict(dict(name="pattern"))
  config.candidate_labels = ()  # Beneficial, partial and every failure.
  # About a minute on 2 CPU cores: 1,536 train / 512 held-out candidates.
  config.max_train_samples = 1536
  config.max_heldout_samples = 512
  config.objective = "both"
  config.max_length = 128  # The prior's SFT length; the end is kept.
  config.batch_size = 32
  config.num_steps = 80
  config.learning_rate = 1e-3
  config.warmup_steps = 8
  config.end_learning_rate_fraction = 0.1
  config.weight_decay = 0.01
  config.eval_batch_size = 64
  config.checkpoint_every = 40
  config.log_every = 10
  if arg == "smoke":
    config.max_train_samples = 96
    config.max_heldout_samples = 48
    config.batch_size = 8
    config.num_steps = 6
    config.warmup_steps = 2
    config.eval_batch_size = 16
    config.checkpoint_every = 6
    config.log_every = 3
  elif arg:
    raise ValueError(f"configs/reward_model/embedded.py: unknown argument "
                     f"{arg!r}; expected 'smoke' or nothing")
  return config
