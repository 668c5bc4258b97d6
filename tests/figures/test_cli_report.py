"""`python -m beneficial_rl.figures` end to end, and the report."""

from __future__ import annotations

import shutil

import pytest

from beneficial_rl.figures import report
from beneficial_rl.figures import results as results_lib
from beneficial_rl.figures.__main__ import FIGURES
from beneficial_rl.figures.__main__ import main
from beneficial_rl.utils import io as io_lib

import synthetic_experiment  # tests/figures, via conftest's sys.path

REWARD_MODEL = synthetic_experiment.REWARD_MODEL


def test_cli_writes_every_figure_and_report_reproducibly(experiment, tmp_path,
                                                         capsys):
  out = tmp_path / "out"
  assert main([f"--experiment_dir={experiment}", f"--out={out}"]) == 0
  for name in FIGURES:
    assert (out / f"{name}.png").stat().st_size > 0, name
    assert (out / f"{name}.pdf").read_bytes().startswith(b"%PDF")
  md = (out / "report.md").read_text()
  html = (out / "report.html").read_text()
  assert "![benchmark_differences](benchmark_differences.png)" in md
  assert '<img alt="benchmark_differences" src="benchmark_differences.png">' \
      in html
  assert "## Not run\n\nEverything ran." in md
  # Compute: the baseline's gap 0.4% is within 1%.
  assert "| baseline_s0 | num_steps | 4/4 | 1.004e+12 | 1e+12 | +0.4000% | " \
         "yes |" in md
  assert "| sft/prior.jsonl | " + "ab" * 32 + " | 10 |" in md
  assert "| Trait RL vs baseline over the benchmark suite | " \
         "beneficial_s0_vs_baseline_s0 | 44/53 |" in md
  # The held-out trait average carries its standard error.
  from beneficial_rl.figures import results as results_lib
  from beneficial_rl.figures import traits
  prior = results_lib.load_experiment(experiment).evals["sft_prior"]
  se = traits.trait_average_stderr(prior)
  row = next(l for l in md.splitlines() if l.startswith("| sft_prior | ")
             and l.count("|") == 6)
  assert f"| {se:.4f} |" in row
  first = {p.name: p.read_bytes() for p in out.iterdir()}
  capsys.readouterr()
  assert main([f"--experiment_dir={experiment}", f"--out={out}"]) == 0
  second = {p.name: p.read_bytes() for p in out.iterdir()}
  assert first == second
  assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_missing_inputs_listed_as_not_run(experiment, tmp_path, capsys):
  exp = tmp_path / "exp"
  shutil.copytree(experiment, exp)
  shutil.rmtree(exp / "persistence")
  shutil.rmtree(exp / "compare")
  shutil.rmtree(exp / "reward_model")
  (exp / "data" / "manifest.json").unlink()
  out = tmp_path / "out"
  assert main([f"--experiment_dir={exp}", f"--out={out}"]) == 0
  assert not (out / "persona_steering.png").exists()
  assert not (out / "benchmark_differences.png").exists()
  assert (out / "per_trait_scores.png").exists()
  md = (out / "report.md").read_text()
  not_run = md.split("## Not run")[1]
  for name in ("figure persona_steering", "figure harmful_finetuning",
               "figure benchmark_differences", "figure transfer",
               "figure helpfulness_control", "input persistence",
               "input compare", "input data/manifest.json",
               "input reward_model/reward_model_summary.json"):
    assert f"- {name}: " in not_run, name
  assert "not run: no data/manifest.json." in md
  assert "not run: no reward_model/reward_model_summary.json." in md
  assert "not run: persona_steering" not in capsys.readouterr().out


def test_markdown_to_html_subset():
  md = ("# T\n\nA `x` & **b**\n\n| a | b\\|c |\n|---|---|\n| 1 | <2> |\n\n"
        "- one\n- two\n\n![f](f.png)\n")
  html = report.markdown_to_html(md)
  assert "<h1>T</h1>" in html
  assert "<p>A <code>x</code> &amp; <strong>b</strong></p>" in html
  assert ("<table><thead><tr><th>a</th><th>b|c</th></tr></thead><tbody><tr>"
          "<td>1</td><td>&lt;2&gt;</td></tr></tbody></table>") in html
  assert "<ul><li>one</li><li>two</li></ul>" in html
  assert '<p><img alt="f" src="f.png"></p>' in html


def test_reward_model_section_gives_agreement_with_n(experiment, tmp_path):
  out = tmp_path / "out"
  assert main([f"--experiment_dir={experiment}", f"--out={out}"]) == 0
  md = (out / "report.md").read_text()
  section = md.split("## Reward model\n\n")[1].split("\n## ")[0]
  assert ("trained for 80 steps (objective `both`) on the rubric scores of "
          "judge `pattern`: 1535 train samples (2858 within-prompt pairs), "
          "agreement on 512 held-out samples.") in section
  assert ("| held-out Spearman (reward model vs judge) | 0.8791 | 512 "
          "samples |") in section
  assert ("| held-out within-prompt pairwise accuracy | 0.9408 | 963 "
          "pairs |") in section
  assert "| final training loss | 0.4015 | step 80 |" in section
  # An undefined correlation (null) is shown as '-', not guessed.
  exp = tmp_path / "exp"
  shutil.copytree(experiment, exp)
  summary = {**REWARD_MODEL, "heldout": {**REWARD_MODEL["heldout"],
                                         "spearman": None}}
  io_lib.atomic_write_json(exp / results_lib.REWARD_MODEL_SUMMARY, summary)
  results = results_lib.load_experiment(exp)
  md = report.build_markdown(results, {}, {}, {})
  assert "| held-out Spearman (reward model vs judge) | - | 512 samples |" \
      in md


@pytest.mark.parametrize("change, field", [
    ({"judge_id": None}, "judge_id"),
    ({"heldout": {"spearman": "high"}}, "heldout.spearman"),
    ({"samples": {"train": 3}}, "samples.heldout"),
    ({"step": True}, "step")])
def test_malformed_reward_model_summary_names_file_and_field(
    experiment, tmp_path, change, field):
  exp = tmp_path / "exp"
  shutil.copytree(experiment, exp)
  io_lib.atomic_write_json(exp / results_lib.REWARD_MODEL_SUMMARY,
                           {**REWARD_MODEL, **change})
  with pytest.raises(io_lib.DataError, match=(
      rf"reward_model_summary\.json: field '{field}'")):
    results_lib.load_experiment(exp)
