"""The experiment orchestrator: stage plan, markers, resume, failures."""
import json
import sys

from ml_collections import config_dict
import pytest

from beneficial_rl import experiment


def _config(tmp_path, **kw):
  c = config_dict.ConfigDict(dict(
      experiment_dir=str(tmp_path / "exp"), data_config="d.py",
      sft_config="s.py", rl_config_arg=":smoke",
      variants=("baseline", "health_only", "beneficial"), seeds=(0, 1),
      eval_config="e.py", eval_suite="", eval_max_items=0,
      persistence_config="p.py"))
  c.update(kw)
  return c


def test_plan_orders_beneficial_before_its_compute_matched_baseline(tmp_path):
  stages = experiment.plan(_config(tmp_path))
  names = [s.name for s in stages]
  assert names[:2] == ["data", "sft_prior"]
  assert names.index("rl/beneficial_s0") < names.index("rl/baseline_s0")
  assert names.index("rl/beneficial_s1") < names.index("rl/baseline_s1")
  base = next(s for s in stages if s.name == "rl/baseline_s1")
  assert any(a.endswith("rl/beneficial_s1") and "compute_budget_from" in a
             for a in base.argv)
  health = next(s for s in stages if s.name == "rl/health_only_s0")
  assert not any("compute_budget_from" in a for a in health.argv)
  assert "eval/sft_prior" in names and "eval/baseline_s1" in names
  assert "compare/health_only_s1_vs_baseline_s1" in names
  assert names[-3:] == ["persistence", "persistence_finetune", "figures"]
  # Persona steering: beneficial vs its baseline; harmful finetuning:
  # beneficial vs the prior it started from.
  steer = next(s for s in stages if s.name == "persistence")
  assert "--no_finetune" in steer.argv and "--names=beneficial,baseline" in (
      steer.argv)
  ft = next(s for s in stages if s.name == "persistence_finetune")
  assert "--no_prompt" in ft.argv and "--names=beneficial,prior" in ft.argv
  assert any(a.startswith("--checkpoints=") and a.endswith(
      "sft_prior/checkpoints") for a in ft.argv)
  # Every stage runs a module of this package with this interpreter.
  assert all(s.argv[:2] == (sys.executable, "-m") and
             s.argv[2].startswith("beneficial_rl.") for s in stages)


def test_plan_trains_the_reward_model_after_the_prior(tmp_path):
  stages = experiment.plan(_config(tmp_path, reward_model_config="r.py:x"))
  names = [s.name for s in stages]
  assert names[:3] == ["data", "sft_prior", "reward_model"]
  first_rl = min(i for i, n in enumerate(names) if n.startswith("rl/"))
  assert names.index("reward_model") < first_rl
  exp = tmp_path / "exp"
  assert stages[2].argv[2:] == (
      "beneficial_rl.grading.train_reward_model", "--config=r.py:x",
      f"--config.workdir={exp / 'reward_model'}",
      f"--config.data_dir={exp / 'data'}",
      f"--config.init_checkpoint={exp / 'sft_prior' / 'checkpoints'}")
  # '' (and configs without the field) skip the stage.
  for config in (_config(tmp_path, reward_model_config=""),
                 _config(tmp_path)):
    assert "reward_model" not in [s.name for s in experiment.plan(config)]


def test_plan_evaluates_intermediate_checkpoints_of_selected_runs(tmp_path):
  stages = experiment.plan(_config(
      tmp_path, periodic_eval_runs=("beneficial",),
      periodic_eval_steps=(20, 40), periodic_eval_suite="heldout_traits"))
  periodic = {s.name: s for s in stages if "-step" in s.name}
  assert sorted(periodic) == [f"eval/beneficial_s{seed}-step{step}"
                              for seed in (0, 1) for step in (20, 40)]
  # The evaluated steps survive the trainer's keep-last-N retention.
  rl = {s.name: s.argv for s in stages if s.name.startswith("rl/")}
  assert "--config.train.keep_steps=(20,40,)" in rl["rl/beneficial_s1"]
  assert not [a for a in rl["rl/baseline_s1"] if "keep_steps" in a]
  argv = periodic["eval/beneficial_s1-step40"].argv
  assert "--step=40" in argv and "--suite=heldout_traits" in argv
  assert "--benchmarks=" in argv  # not the eval config's own subset
  assert any(a.startswith("--out_dir=") and a.endswith(
      "eval/beneficial_s1-step40") for a in argv)
  # After the RL run they read, before the comparisons.
  names = [s.name for s in stages]
  assert names.index("rl/beneficial_s1") < names.index(
      "eval/beneficial_s1-step20") < names.index(
          "compare/beneficial_s1_vs_baseline_s1")


def test_plan_without_baseline_has_no_comparisons(tmp_path):
  names = [s.name for s in experiment.plan(
      _config(tmp_path, variants=("beneficial",), seeds=(0,),
              persistence_config=""))]
  assert not [n for n in names if n.startswith("compare/")]
  assert not [n for n in names if n.startswith("persistence")]


def test_run_writes_markers_and_skips_finished_stages(tmp_path, monkeypatch):
  counter = tmp_path / "count.txt"
  code = ("import pathlib; p = pathlib.Path(%r); "
          "p.write_text(p.read_text() + 'x' if p.exists() else 'x')" % str(
              counter))
  stages = [experiment.Stage("a", (sys.executable, "-c", code)),
            experiment.Stage("b/c", (sys.executable, "-c", code))]
  monkeypatch.setattr(experiment, "plan", lambda config: stages)
  cfg = _config(tmp_path)
  assert set(experiment.run(cfg)) == {"a", "b/c"}
  assert counter.read_text() == "xx"
  assert experiment.run(cfg) == {}  # Both finished: nothing reruns.
  assert counter.read_text() == "xx"
  times = json.loads((tmp_path / "exp" / "stage_times.json").read_text())
  assert set(times) == {"a", "b__c"}


def test_failed_stage_stops_with_its_log_and_leaves_no_marker(tmp_path,
                                                              monkeypatch):
  stages = [experiment.Stage("bad", (sys.executable, "-c",
                                     "print('boom'); raise SystemExit(3)"))]
  monkeypatch.setattr(experiment, "plan", lambda config: stages)
  with pytest.raises(RuntimeError, match=r"stage 'bad' failed with exit "
                     r"status 3; log: .*bad\.log\n(.*\n)*boom"):
    experiment.run(_config(tmp_path))
  assert not (tmp_path / "exp" / "stages" / "bad.json").exists()


@pytest.mark.parametrize("name", ["embedded", "smoke", "rubric_curve"])
def test_experiment_configs_plan(name):
  import importlib.util
  import pathlib
  path = pathlib.Path(__file__).parents[1] / "configs" / "experiments" / (
      f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"_exp_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  names = [s.name for s in experiment.plan(config)]
  rm_stage = ["reward_model"] if config.reward_model_config else []
  assert names[:4] == ["data", "sft_prior", *rm_stage, "rl/beneficial_s0",
                       "rl/baseline_s0"][:4]
  assert bool(rm_stage) == (name != "rubric_curve")
  assert names[-1] == "figures"
  for step in config.periodic_eval_steps:
    assert f"eval/beneficial_s0-step{step}" in names
  if name == "rubric_curve":
    rl = next(s for s in experiment.plan(config)
              if s.name == "rl/beneficial_s0")
    assert any(a.endswith(":embedded,long") for a in rl.argv)
    assert not [n for n in names if n.startswith("persistence")]


def test_stages_share_an_xla_cache_unless_set_or_off(tmp_path, monkeypatch):
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  cfg = _config(tmp_path)
  env = experiment.stage_env(cfg)
  assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "exp" /
                                                 "xla_cache")
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
  assert experiment.stage_env(cfg)["JAX_COMPILATION_CACHE_DIR"] == (
      "/elsewhere")
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
  cfg.compilation_cache = False
  assert "JAX_COMPILATION_CACHE_DIR" not in experiment.stage_env(cfg)


def test_stages_run_with_the_cache_env(tmp_path, monkeypatch):
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  out = tmp_path / "env.txt"
  code = ("import os, pathlib; pathlib.Path(%r).write_text("
          "os.environ.get('JAX_COMPILATION_CACHE_DIR', ''))" % str(out))
  monkeypatch.setattr(experiment, "plan", lambda config: [
      experiment.Stage("a", (sys.executable, "-c", code))])
  experiment.run(_config(tmp_path))
  assert out.read_text() == str(tmp_path / "exp" / "xla_cache")
