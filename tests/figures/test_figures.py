"""Figure functions on the synthetic experiment (conftest.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from matplotlib import patches
from matplotlib import text as text_lib
from scipy import stats as sp_stats

import synthetic_experiment as synth
from beneficial_rl.figures import comparisons
from beneficial_rl.figures import persistence
from beneficial_rl.figures import render
from beneficial_rl.figures import structure
from beneficial_rl.figures import traits
from beneficial_rl.figures.results import NotRun
from beneficial_rl.figures.results import load_experiment
from beneficial_rl.figures.results import load_paper_reference
from beneficial_rl.utils import io as io_lib


@pytest.fixture(scope="module")
def results(experiment):
  return load_experiment(experiment)


@pytest.fixture(scope="module")
def paper():
  return load_paper_reference()


def _bars(ax):
  return [p for p in ax.patches if isinstance(p, patches.Rectangle)]


def _texts(fig):
  return [t.get_text() for t in fig.findobj(text_lib.Text)]


def test_paper_reference_holds_the_published_numbers(paper):
  assert (paper["benchmarks"]["num_improved"],
          paper["benchmarks"]["num_benchmarks"]) == (44, 53)
  assert paper["heldout_traits"] == pytest.approx(
      {"description": paper["heldout_traits"]["description"],
       "before_rl": 0.406, "after_trait_rl": 0.607})
  bad = paper["persona_steering"]["bad_medical"]
  # The published difference is deg(baseline) - deg(trait RL).
  assert (bad["baseline_clean"] - bad["baseline_steered"]) - (
      bad["trait_rl_clean"] - bad["trait_rl_steered"]) == pytest.approx(
          bad["difference"], abs=1e-9)


def test_per_trait_scores_has_one_bar_per_model_and_trait(results, paper):
  fig = traits.per_trait_scores(results, paper)
  ax = fig.axes[0]
  final_runs = [r for r in synth.RUNS if "-step" not in r]
  assert len(_bars(ax)) == len(final_runs) * 7
  heights = sorted(round(b.get_height(), 6) for b in _bars(ax))
  want = sorted(round(float(synth.item_scores(r, f"heldout_trait_{t}")
                            .mean()), 6)
                for r in final_runs for t in synth.TRAITS)
  assert heights == want
  labels = ax.get_legend_handles_labels()[1]
  mean = np.mean([synth.item_scores("beneficial_s0", f"heldout_trait_{t}")
                  .mean() for t in synth.TRAITS])
  assert f"this run: beneficial_s0 (mean {mean:.3f})" in labels
  assert "paper: before rl mean 0.406" in labels
  assert "paper: after trait rl mean 0.607" in labels


def test_benchmark_differences_bars_and_k_of_n(results, paper):
  fig = comparisons.benchmark_differences(results, paper)
  ax = fig.axes[0]
  assert len(_bars(ax)) == len(synth.BENCHMARKS)
  diffs = {b: 100 * (synth.item_scores("beneficial_s0", b).mean() -
                     synth.item_scores("baseline_s0", b).mean())
           for b in synth.BENCHMARKS}
  k = sum(d > 0 for d in diffs.values())
  want = (f"this run: {k}/{len(diffs)} improved, mean "
          f"{np.mean(list(diffs.values())):+.1f} points")
  texts = _texts(fig)
  assert any(want in t for t in texts), texts
  assert any("paper: 44/53 improved, mean +9.1 points" in t for t in texts)
  widths = sorted(round(b.get_width(), 6) for b in _bars(ax))
  assert widths == sorted(round(d, 6) for d in diffs.values())


def test_transfer_panels_and_missing_variant(results, paper):
  fig = comparisons.transfer(results, paper)
  left, right = fig.axes[:2]
  non_health = [b for b, d in synth.BENCHMARKS.items() if d != "health"]
  assert len(_bars(left)) == len(non_health)
  k = sum(synth.item_scores("health_only_s0", b).mean() >
          synth.item_scores("baseline_s0", b).mean() for b in non_health)
  assert any(f"this run: {k}/{len(non_health)} improved" in t
             for t in _texts(fig))
  assert any("paper: 17/19 improved, mean +11.3 points" in t
             for t in _texts(fig))
  # No no_health_science run in the fixture: that panel says "not run".
  assert not _bars(right)
  assert any(t.startswith("not run: no compare/no_health_science")
             for t in _texts(fig))


def test_helpfulness_control_bars(results, paper):
  fig = comparisons.helpfulness_control(results, paper)
  assert len(_bars(fig.axes[0])) == 3  # three compare files vs baseline
  assert any(t.endswith("/11 improved") for t in _texts(fig))


def test_persona_steering_flips_sign_to_the_papers(results, paper):
  fig = persistence.persona_steering(results, paper)
  assert len(_bars(fig.axes[0])) == 1
  # Degradation: a lost 0.1 (clean - harmful) on every item.
  assert _bars(fig.axes[0])[0].get_width() == pytest.approx(0.1)
  labels = [t.get_text() for t in fig.axes[1].get_yticklabels()]
  assert "paper: bad_medical" in labels and "paper: helpful_medical" in labels
  lines = fig.axes[1].lines
  xs = sorted(float(x) for line in lines for x in np.atleast_1d(
      line.get_xdata()) if line.get_marker() == "o")
  # this run: deg_b - deg_a = 0.3 - 0.1 = 0.2 (harmful), 0 (helpful).
  assert xs == pytest.approx(sorted([0.2, 0.0, 0.132, 0.0045]), abs=1e-9)


def test_harmful_finetuning_change_and_paper(results, paper):
  fig = persistence.harmful_finetuning(results, paper)
  heights = sorted(round(b.get_height(), 6) for b in _bars(fig.axes[0]))
  # this run: 0.45 - 0.6; paper HealthBench pre-RL -0.35, trait RL -0.31.
  assert heights == sorted([-0.15, -0.35, -0.31])
  assert len(fig.axes[1].lines) == 1


def test_checkpoint_structure_matches_stats(results, paper):
  fig = structure.checkpoint_structure(results, paper, num_permutations=200)
  b, c, m = structure.score_matrix(results)
  assert m.shape == (len(synth.BENCHMARKS), len(synth.RUNS))
  heatmap, pca = fig.axes[0], fig.axes[1]
  assert len(_bars(pca)) == min(m.shape)
  ratios = [bar.get_height() for bar in _bars(pca)]
  assert sum(ratios) == pytest.approx(1.0)
  # Mean off-diagonal Spearman across checkpoints, computed by scipy.
  rho = sp_stats.spearmanr(m.T).statistic
  mean = (rho.sum() - len(b)) / (len(b) * (len(b) - 1))
  assert f"mean {mean:.3f}, permutation p = " in heatmap.get_title()


def test_refusal_rates(results, paper):
  fig = structure.refusal_rates(results, paper)
  bars = _bars(fig.axes[0])
  final_runs = [r for r in synth.RUNS if "-step" not in r]
  assert len(bars) == len(final_runs) * len(synth.BENCHMARKS)
  # Only the baseline refuses, one item of six per benchmark.
  assert sorted(set(round(b.get_height(), 6) for b in bars)) == [
      0.0, round(1 / 6, 6)]


def test_learning_curves_training_trait_average(results, paper):
  fig = traits.learning_curves(results, paper)
  ax = fig.axes[0]
  assert ax.get_title().startswith("training rubric trait average")
  line = next(l for l in ax.lines if l.get_label() == "beneficial_s0")
  # mean of rubric/truthfulness and rubric/corrigibility per step, then the
  # trailing mean over the (fewer than 10) steps so far.
  raw = [0.35 + 0.05 * s for s in (1, 2, 3, 4)]
  assert line.get_ydata() == pytest.approx(
      [sum(raw[:k]) / k for k in (1, 2, 3, 4)])


def test_trailing_mean_by_hand():
  assert traits.trailing_mean(np.array([1.0, 3.0, 5.0, 7.0]), 2) == (
      pytest.approx([1.0, 2.0, 4.0, 6.0]))
  assert traits.trailing_mean(np.array([2.0]), 5) == pytest.approx([2.0])
  with pytest.raises(ValueError, match="window must be >= 1"):
    traits.trailing_mean(np.array([1.0]), 0)


def test_eval_curves_start_at_the_prior(results):
  curves = traits.eval_curves(results, None)
  steps, scores, stderrs = curves["beneficial_s0"]
  final = results.rl["beneficial_s0"].summary["steps_completed"]
  assert list(steps) == [0, 2, final]
  expect = [traits.trait_average(results.evals[r]) for r in (
      "sft_prior", "beneficial_s0-step2", "beneficial_s0")]
  assert list(scores) == pytest.approx(expect)
  # sqrt(sum of squared per-trait stderrs) / number of traits.
  prior = traits.trait_scores(results.evals["sft_prior"])
  assert stderrs[0] == pytest.approx(
      np.sqrt(sum(se ** 2 for _, se, _ in prior.values())) / len(prior))
  # The baseline has one evaluated checkpoint plus the prior: two points.
  assert list(curves["baseline_s0"][0]) == [
      0, results.rl["baseline_s0"].summary["steps_completed"]]


def test_missing_inputs_raise_not_run(tmp_path, paper):
  (tmp_path / "exp").mkdir()
  empty = load_experiment(tmp_path / "exp")
  for fn in (traits.per_trait_scores, traits.learning_curves,
             comparisons.benchmark_differences, comparisons.transfer,
             comparisons.helpfulness_control, persistence.persona_steering,
             persistence.harmful_finetuning, structure.checkpoint_structure,
             structure.refusal_rates):
    with pytest.raises(NotRun):
      fn(empty, paper)
  assert "eval" in empty.missing and "compare" in empty.missing


def test_malformed_file_names_file_and_field(experiment, tmp_path):
  exp = tmp_path / "exp"
  shutil.copytree(experiment, exp)
  io_lib.atomic_write_json(exp / "eval" / "sft_prior" / "summary.json",
                           {"run": {}})
  with pytest.raises(io_lib.DataError, match=r"summary.json: field "
                     r"'benchmarks'"):
    load_experiment(exp)


def test_figure_bytes_are_deterministic(results, paper):
  fig = comparisons.benchmark_differences(results, paper)
  assert render.figure_bytes(fig, "png") == render.figure_bytes(fig, "png")
  pdf = render.figure_bytes(fig, "pdf")
  assert b"CreationDate" not in pdf
