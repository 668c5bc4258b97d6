"""A small synthetic experiment directory in the real result formats.

Eval summaries hold `scoring.BenchmarkSummary.to_dict()` entries and item
rows with `runner.ITEM_FIELDS`; comparisons come from the real
`eval.compare.compare_dirs`; persistence metrics from the real
`persistence.metrics` functions. Per-item scores are known here, so tests
compute expected numbers by hand from `SCORES`.
"""

from __future__ import annotations

import pathlib

import numpy as np

from beneficial_rl.data import taxonomy
from beneficial_rl.eval import compare
from beneficial_rl.eval import runner
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.persistence import metrics as pmetrics
from beneficial_rl.utils import io as io_lib

TRAITS = taxonomy.HELDOUT_TRAIT_IDS
OTHER = {"health_a": "health", "health_b": "health",
         "general_a": "non_health", "general_b": "non_health"}
BENCHMARKS = {**{f"heldout_trait_{t}": "non_health" for t in TRAITS},
              **OTHER}
RUNS = ("sft_prior", "baseline_s0", "beneficial_s0", "health_only_s0",
        "helpfulness_control_s0", "beneficial_s0-step2")
# Mean shift of each run over the baseline items (0 for the baseline).
SHIFT = {"sft_prior": -0.1, "baseline_s0": 0.0, "beneficial_s0": 0.15,
         "health_only_s0": 0.05, "helpfulness_control_s0": -0.02,
         "beneficial_s0-step2": 0.07}
N_ITEMS = 6


def item_scores(run: str, bench: str) -> np.ndarray:
  """float[N_ITEMS] per-item oriented scores in [0, 1] of a run."""
  seed = sum(map(ord, bench)) * 7 + sum(map(ord, run))
  base = np.random.default_rng(sum(map(ord, bench))).uniform(0.2, 0.7,
                                                             N_ITEMS)
  noise = np.random.default_rng(seed).normal(0, 0.05, N_ITEMS)
  return np.clip(base + SHIFT[run] + noise, 0, 1).round(4)


def refused(run: str, bench: str) -> list[bool]:
  return [i < (1 if run == "baseline_s0" else 0) for i in range(N_ITEMS)]


def write_eval(exp: pathlib.Path, run: str) -> None:
  out = exp / "eval" / run
  entries = {}
  for bench, domain in BENCHMARKS.items():
    scores = item_scores(run, bench)
    flags = refused(run, bench)
    rows = [{"benchmark": bench, "id": f"{bench}-{i}",
             "prompt_hash": f"{i:016x}", "response": "r", "raw": float(s),
             "score": float(s), "refused": f, "choice": None,
             "judge_id": "pattern", "details": {}}
            for i, (s, f) in enumerate(zip(scores, flags))]
    io_lib.atomic_write_jsonl(runner.items_path(out, bench), rows)
    summary = scoring.BenchmarkSummary(
        benchmark=bench, category=("heldout_traits" if bench.startswith(
            "heldout_trait_") else "other"), domain=domain, scoring="rubric",
        metric="rubric_score", higher_is_better=True, policy_id=run,
        n=N_ITEMS, n_scored=N_ITEMS, score=float(scores.mean()),
        stderr=float(scores.std(ddof=1) / np.sqrt(N_ITEMS)),
        raw=float(scores.mean()), refusal_rate=sum(flags) / N_ITEMS,
        n_unparsable=0, n_unscored=0, judge_id="pattern").to_dict()
    summary.update(direction="higher", data_pin=None,
                   num_available=N_ITEMS, scoring_fallback=None)
    entries[bench] = summary
  io_lib.atomic_write_json(out / runner.SUMMARY_FILE, {
      "run": {"policy_id": run, "judge_id": "pattern",
              "judge_prompt_version": 1, "checkpoint_step": 4},
      "benchmarks": entries, "skipped": {}, "failed": {}, "complete": True})


def write_rl(exp: pathlib.Path, run: str, gap: float) -> None:
  d = exp / "rl" / run
  rows = [{"step": s, "reward/mean": 0.1 * s,
           "rubric/truthfulness": 0.3 + 0.05 * s,
           "rubric/corrigibility": 0.4 + 0.05 * s} for s in (1, 2, 3, 4)]
  io_lib.atomic_write_jsonl(d / "metrics.jsonl", rows)
  io_lib.atomic_write_json(d / "run_summary.json", {
      "variant": run[:-3], "seed": 0, "mixture": run[:-3],
      "stop_reason": "num_steps", "steps_completed": 4, "num_steps": 4,
      "compute_budget": 1e12, "flops_used": 1e12 * (1 + gap),
      "budget_relative_gap": gap})


def write_persistence(exp: pathlib.Path) -> None:
  ids = [f"q{i}" for i in range(8)]
  rng = np.random.default_rng(0)
  clean = {m: dict(zip(ids, rng.uniform(0.3, 0.6, 8))) for m in ("a", "b")}
  harm = {m: {i: v - (0.1 if m == "a" else 0.3) for i, v in clean[m].items()}
          for m in ("a", "b")}
  help_ = {m: {i: v + 0.01 for i, v in clean[m].items()} for m in ("a", "b")}
  key = "heldout_traits_health@persona_inaccurate_medical"
  metrics_a = {
      key: pmetrics.degradation(clean["a"], harm["a"], model="beneficial",
                                attack="persona_inaccurate_medical",
                                num_resamples=200).to_dict(),
      "sel@persona_inaccurate_medical": pmetrics.selective_persistence(
          clean["a"], harm["a"], help_["a"], clean["b"], harm["b"],
          help_["b"], model_a="beneficial", model_b="baseline",
          num_resamples=200).to_dict(),
      "HealthBench@finetune": pmetrics.curve_summary(
          [0, 10, 100], [0.6, 0.5, 0.45], benchmark="HealthBench").to_dict(),
  }
  io_lib.atomic_write_json(exp / "persistence" / "beneficial" /
                           "metrics.json", metrics_a)
  io_lib.atomic_write_json(
      exp / "persistence" / "beneficial" / "finetune_curves.json",
      {"HealthBench": {"steps": [0, 10, 100], "scores": [0.6, 0.5, 0.45]}})


# A reward-model stage's summary (the fields the report reads, plus others).
REWARD_MODEL = {
    "format": 1, "step": 80, "objective": "both", "judge_id": "pattern",
    "judge_prompt_version": "evidence-v1", "final_loss": 0.40149,
    "samples": {"train": 1535, "heldout": 512},
    "pairs": {"train": 2858, "heldout": 963},
    "heldout": {"spearman": 0.87908, "pairwise_accuracy": 0.94081,
                "n_samples": 512.0, "n_pairs": 963.0},
    "data_hashes": {"scenarios/train.jsonl": "cd" * 32}}


def build_experiment(exp: pathlib.Path) -> pathlib.Path:
  for run in RUNS:
    write_eval(exp, run)
  write_rl(exp, "beneficial_s0", 0.0)
  write_rl(exp, "baseline_s0", 0.004)
  (exp / "compare").mkdir(parents=True)
  for cand in ("beneficial_s0", "health_only_s0", "helpfulness_control_s0"):
    io_lib.atomic_write_json(
        exp / "compare" / f"{cand}_vs_baseline_s0.json",
        compare.compare_dirs(exp / "eval" / "baseline_s0",
                             exp / "eval" / cand, num_resamples=200))
  write_persistence(exp)
  io_lib.atomic_write_json(exp / "reward_model" / "reward_model_summary.json",
                           REWARD_MODEL)
  io_lib.atomic_write_json(exp / "stage_times.json", {"data": 1.5})
  io_lib.atomic_write_json(exp / "data" / "manifest.json", {
      "format": 1, "seed": 0, "config": {}, "counts": {"train": 3},
      "files": {"sft/prior.jsonl": {"sha256": "ab" * 32, "bytes": 10}}})
  return exp
