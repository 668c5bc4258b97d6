"""The smoke experiment end to end: every stage, figures and report.

This is the CI run of the README's main job in its few-minute form
(configs/experiments/smoke.py); the embedded config runs the same stages with
more data and steps.
"""
import json
import pathlib

from ml_collections import config_flags  # pylint: disable=unused-import
import pytest

from beneficial_rl import experiment

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_experiment_runs_every_stage_and_resumes(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)  # Config paths are relative to the repo root.
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "smoke_cfg", REPO / "configs" / "experiments" / "smoke.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.experiment_dir = str(tmp_path / "exp")

  timings = experiment.run(config)
  names = [s.name for s in experiment.plan(config)]
  assert list(timings) == names
  exp = tmp_path / "exp"
  beneficial = json.loads((exp / "rl" / "beneficial_s0" /
                           "run_summary.json").read_text())
  baseline = json.loads((exp / "rl" / "baseline_s0" /
                         "run_summary.json").read_text())
  # The baseline is compute-matched to the beneficial run: it stops within
  # half a step of the budget (within 1% once a step is < 2% of the run; the
  # smoke runs have only 4 steps).
  assert baseline["compute_budget"] == pytest.approx(beneficial["flops_used"])
  step = baseline["final_metrics"]["flops/total_step"]
  assert abs(baseline["flops_used"] - baseline["compute_budget"]) <= (
      0.5 * step + 1)
  for run in ("sft_prior", "beneficial_s0", "baseline_s0"):
    summary = json.loads((exp / "eval" / run / "summary.json").read_text())
    assert summary["benchmarks"], run
  assert (exp / "compare" / "beneficial_s0_vs_baseline_s0.json").exists()
  assert (exp / "persistence" / "beneficial" / "metrics.json").exists()
  assert (exp / "persistence_finetune" / "prior" / "finetune_curves.json"
          ).exists()
  report = (exp / "figures" / "report.md").read_text()
  assert "beneficial_s0_vs_baseline_s0" in report
  assert list((exp / "figures").glob("*.png"))
  # A rerun finds every stage finished and runs nothing.
  assert experiment.run(config) == {}
