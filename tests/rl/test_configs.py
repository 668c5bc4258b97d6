"""Tests of the RL variant configs and their validation."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from beneficial_rl.data import layout
from beneficial_rl.rl import run_config

REPO = pathlib.Path(__file__).resolve().parents[2]
VARIANTS = ("beneficial", "baseline", "health_only", "no_health_science",
            "helpfulness_control", "scenario_heavy")


@pytest.fixture
def data_dir(tmp_path) -> pathlib.Path:
  """A directory with every file validation looks for (contents unread)."""
  for rel in layout.data_relpaths():
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text("")
  return tmp_path


def load(name: str, data_dir: pathlib.Path, arg: str = "smoke", **fields):
  """A variant's config with the data dir and `fields` (a__b = a.b) set."""
  config = run_config.load_config(f"{REPO}/configs/rl/{name}.py:{arg}")
  config.data.data_dir = str(data_dir)
  if name == "baseline":
    config.train.compute_budget = 1e12
  for dotted, value in fields.items():
    *path, name = dotted.split("__")
    node = config
    for part in path:
      node = node[part]
    node[name] = value
  return config


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_validates(variant, data_dir):
  config = load(variant, data_dir)
  plan = run_config.validate(config, 8)
  assert config.variant == variant
  assert plan.num_prompts == 4 and plan.rows == 16
  assert plan.mesh_sizes == (1, 8, 1) and plan.num_devices == 8
  assert plan.optimizer.total_steps == config.train.num_steps
  assert plan.model.num_layers == 4  # The tiny preset of 'smoke'.


@pytest.mark.parametrize("fields, want", [
    ({}, (4, 4)),
    ({"train__grad_accum_steps": 2}, (2, 2)),
    # Two minibatches are drawn from shuffled rows: the update cannot share.
    ({"algorithm__num_minibatches": 2}, (2, 1)),
    ({"algorithm__num_epochs": 2}, (4, 1)),
    ({"rollout__group_size": 2, "rollout__batch_size": 16,
      "train__grad_accum_steps": 2}, (1, 1)),
    ({"train__share_prompt_forward": False}, (1, 1)),
])
def test_prompt_sharing_follows_the_batch_split(fields, want, data_dir):
  """Smoke runs: 4 samples per prompt, 16 rows over 8 devices."""
  plan = run_config.validate(load("beneficial", data_dir, **fields), 8)
  assert (plan.reference_prefix_group, plan.update_prefix_group) == want


def test_variants_differ_where_they_should(data_dir):
  configs = {v: load(v, data_dir, arg="") for v in VARIANTS}
  mixtures = {v: c.data.mixture for v, c in configs.items()}
  assert mixtures == {"beneficial": "beneficial", "baseline": "baseline",
                      "health_only": "health_only",
                      "no_health_science": "no_health_science",
                      "helpfulness_control": "beneficial",
                      "scenario_heavy": "beneficial"}
  rates = {v: c.data.scenario_rate for v, c in configs.items()}
  assert rates.pop("scenario_heavy") == 0.5
  assert set(rates.values()) == {0.05}
  control = configs["helpfulness_control"]
  assert control.rewards.scenario == "helpfulness"
  assert control.monitor.gold_rewards.scenario == "rubric_pattern"
  assert configs["beneficial"].rewards.scenario == "rubric_pattern"
  assert run_config.gold_reward_configs(configs["beneficial"]) == {}
  # Apart from these fields, every variant shares the base config.
  base = configs["beneficial"].to_dict()
  for variant, config in configs.items():
    d = config.to_dict()
    for key in ("variant", "data", "rewards", "monitor", "train"):
      d.pop(key), base.pop(key, None)
    assert d == base, variant


def test_baseline_takes_the_budget_from_a_run_summary(data_dir, tmp_path):
  run = tmp_path / "beneficial_run"
  run.mkdir()
  (run / run_config.SUMMARY_FILE).write_text(json.dumps(
      {"flops_used": 1.5e15}))
  config = load("baseline", data_dir, train__compute_budget=0.0,
                train__compute_budget_from=str(run))
  assert run_config.validate(config, 8).compute_budget == 1.5e15
  config.train.compute_budget_from = ""
  with pytest.raises(run_config.ConfigError,
                     match=r"config.train.compute_budget_from: the baseline "
                     "is compute-matched"):
    run_config.validate(config, 8)
  (run / run_config.SUMMARY_FILE).write_text(json.dumps({"flops_used": -1}))
  config.train.compute_budget_from = str(run)
  with pytest.raises(run_config.ConfigError, match=r"'flops_used' must be a "
                     "positive number"):
    run_config.validate(config, 8)


@pytest.mark.parametrize("fields, match", [
    (dict(variant="nope"), r"config.variant: 'nope' is not a known variant"),
    (dict(mesh__fsdp=3),
     r"config.mesh.fsdp: MeshConfig.fsdp=3 does not divide the 8 devices"),
    (dict(mesh__data=2, mesh__fsdp=2, mesh__tensor=1),
     r"config.mesh: .* uses 4 devices but 8 are available"),
    (dict(mesh__num_devices=9), r"config.mesh.num_devices: 9 must be"),
    (dict(mesh__fsdp=1, mesh__tensor=-1),
     r"config.mesh: data=1,fsdp=1,tensor=-1 does not fit the model: "
     r".*num_kv_heads|config.mesh: .*does not fit the model"),
    (dict(rollout__batch_size=18),
     r"config.rollout.batch_size: 18 is not divisible by "
     r"rollout.group_size=4"),
    (dict(rollout__batch_size=12),
     r"config.rollout.batch_size: 12 rows give microbatches of 12 rows, not "
     r"divisible by the 1 x 8"),
    (dict(algorithm__num_minibatches=3),
     r"config.algorithm.num_minibatches: 3 does not divide"),
    (dict(train__grad_accum_steps=32),
     r"config.train.grad_accum_steps: 32 does not divide"),
    (dict(rollout__group_size=1, rollout__batch_size=8),
     r"config.rollout.group_size: 1: estimator 'grpo' needs >= 2"),
    (dict(rewards__scenario="nonsense"),
     r"config.rewards.scenario: unknown reward 'nonsense'"),
    (dict(monitor__gold_rewards__scenario="nonsense"),
     r"config.monitor.gold_rewards.scenario: unknown reward"),
    (dict(data__max_prompt_len=120),
     r"config.data.max_prompt_len: 120 \+ rollout.max_new_tokens=24 exceeds"
     r" the model's max_seq_len=128"),
    (dict(data__mixture="everything"), r"config.data.mixture: 'everything'"),
    (dict(model__preset="huge"), r"config.model.preset: unknown preset"),
    (dict(model__overrides__num_kv_heads=3),
     r"config.model.overrides: .*num_heads=4 is not a multiple"),
    (dict(model__init_checkpoint="/no/such/run"),
     r"config.model.init_checkpoint: no checkpoint directory"),
    (dict(algorithm__name="a3c"), r"config.algorithm.name: 'a3c'"),
    (dict(algorithm__advantage_estimator="gae"),
     r"config.algorithm.advantage_estimator: 'gae' is not a group"),
    (dict(algorithm__kl_penalty="reward"),
     r"config.algorithm.kl_penalty: 'reward' needs algorithm.name='ppo'"),
    (dict(algorithm__dual_clip_c=0.5), r"config.algorithm.dual_clip_c"),
    (dict(rollout__temperature=0.0), r"config.rollout.temperature: 0.0"),
    (dict(optimizer__learning_rate=-1.0),
     r"config.optimizer.learning_rate: OptimizerConfig.learning_rate=-1.0"),
    (dict(optimizer__schedule="cosine", optimizer__total_steps=0),
     r"config.optimizer.total_steps"),
    (dict(train__remat="everything"), r"config.train.remat: 'everything'"),
    (dict(train__compute_budget=-5.0), r"config.train.compute_budget: -5.0"),
    (dict(train__keep_steps=(3,)),
     r"config.train.keep_steps: \(3,\) each step must be a checkpoint step: "
     r"a multiple of train.checkpoint_every=2"),
])
def test_bad_values_name_the_field(fields, match, data_dir):
  config = load("beneficial", data_dir, **fields)
  with pytest.raises(run_config.ConfigError, match=match):
    run_config.validate(config, 8)


def test_missing_data_dir_says_how_to_build_it(tmp_path):
  config = load("beneficial", tmp_path / "nothing")
  with pytest.raises(run_config.ConfigError,
                     match=r"config.data.data_dir: .* lacks scenarios/"
                     r"train.jsonl.*beneficial_rl.data.build"):
    run_config.validate(config, 8)


def test_unknown_config_argument(data_dir):
  with pytest.raises(ValueError, match=r"unknown config argument 'fast'"):
    load("beneficial", data_dir, arg="fast")


def test_binary_rejects_a_bad_config_before_any_compute(data_dir, tmp_path):
  workdir = tmp_path / "run"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "beneficial_rl.train",
       "--config=configs/rl/beneficial.py:smoke",
       f"--config.data.data_dir={data_dir}", "--config.rollout.batch_size=18",
       f"--workdir={workdir}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert ("config error: config.rollout.batch_size: 18 is not divisible by "
          "rollout.group_size=4") in proc.stderr
  assert not workdir.exists()
