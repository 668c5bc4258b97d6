"""Held-out trait scores per model and learning curves over RL steps.

Inputs: final-checkpoint eval summaries (benchmarks 'heldout_trait_<trait>'),
intermediate eval dirs '<run>-step<N>' and the trainer's metrics.jsonl
('rubric/<trait>' or 'reward/trait/<trait>' per step).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib import figure as figure_lib

from beneficial_rl.figures import render
from beneficial_rl.figures.results import EvalRun
from beneficial_rl.figures.results import ExperimentResults
from beneficial_rl.figures.results import NotRun

TRAIT_PREFIX = "heldout_trait_"
TRAIN_TRAIT_PREFIXES = ("rubric/", "reward/trait/")
Z95 = 1.959963984540054


def model_order(names: Sequence[str]) -> list[str]:
  """sft_prior first, then the baselines, then the rest (alphabetical)."""
  rank = lambda n: (n != "sft_prior", not n.startswith("baseline"), n)
  return sorted(names, key=rank)


def trait_scores(run: EvalRun) -> dict[str, tuple[float, float, int]]:
  """trait -> (score, stderr, n) of the held-out trait benchmarks."""
  out = {}
  for name, e in sorted(run.benchmarks.items()):
    if name.startswith(TRAIT_PREFIX) and e.get("score") is not None:
      se = e.get("stderr")
      out[name[len(TRAIT_PREFIX):]] = (float(e["score"]),
                                       math.nan if se is None else float(se),
                                       int(e.get("n_scored", e.get("n", 0))))
  return out


def trait_average(run: EvalRun) -> float | None:
  """Unweighted mean of the held-out trait scores (None without any)."""
  scores = trait_scores(run)
  return float(np.mean([s for s, _, _ in scores.values()])) if scores else None


def trait_average_stderr(run: EvalRun) -> float | None:
  """Standard error of `trait_average`: sqrt(sum se_i^2) / k over the k
  independent trait benchmarks (NaN if one lacks a stderr)."""
  scores = trait_scores(run)
  if not scores:
    return None
  ses = np.array([se for _, se, _ in scores.values()], np.float64)
  return float(np.sqrt(np.sum(ses ** 2)) / ses.size)


def per_trait_scores(results: ExperimentResults,
                     paper: Mapping[str, Any]) -> figure_lib.Figure:
  """Grouped bars: held-out trait x model, 95% CI (1.96 stderr).

  One bar per (model, trait): len(models) * len(traits) bars. The paper's
  before / after trait-average lines are drawn dashed and labelled "paper".
  """
  evals = results.final_evals()
  per_model = {m: trait_scores(evals[m]) for m in model_order(list(evals))}
  per_model = {m: s for m, s in per_model.items() if s}
  if not per_model:
    raise NotRun("no final eval summary holds heldout_trait_* benchmarks")
  traits = sorted(set().union(*per_model.values()))
  fig, (ax,) = render.new_figure(width=8.0)
  width = 0.8 / len(per_model)
  x = np.arange(len(traits))
  for i, (model, scores) in enumerate(per_model.items()):
    y = np.array([scores.get(t, (math.nan,) * 2)[0] for t in traits])
    se = np.array([scores.get(t, (math.nan,) * 2)[1] for t in traits])
    mean = np.nanmean(y)
    ax.bar(x + (i - (len(per_model) - 1) / 2) * width, y, width,
           yerr=np.nan_to_num(Z95 * se), capsize=2,
           color=render.RUN_COLORS[i % len(render.RUN_COLORS)],
           label=f"this run: {model} (mean {mean:.3f})")
  ref = paper.get("heldout_traits", {})
  for key, style in (("before_rl", ":"), ("after_trait_rl", "--")):
    if key in ref:
      ax.axhline(ref[key], color=render.PAPER_COLOR, linestyle=style,
                 linewidth=1,
                 label=f"paper: {key.replace('_', ' ')} mean {ref[key]:.3f}")
  ax.set_xticks(x, [t.replace("_", " ") for t in traits], rotation=30,
                ha="right")
  ax.set_ylabel("rubric score (95% CI)")
  ax.set_ylim(0, 1)
  ax.set_title("Held-out trait scores per model")
  ax.legend(fontsize=6, loc="upper left")
  fig.tight_layout()
  return fig


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
  """float[T]: mean of the last `window` values up to each position (fewer
  at the start), to read a noisy per-step training metric."""
  if window < 1:
    raise ValueError(f"window must be >= 1, got {window}")
  c = np.cumsum(np.concatenate([[0.0], np.asarray(values, np.float64)]))
  i = np.arange(1, len(values) + 1)
  lo = np.maximum(i - window, 0)
  return (c[i] - c[lo]) / (i - lo)


TRAIN_SMOOTHING = 10  # logged steps averaged in the training panel


def training_trait_average(rows: Sequence[Mapping[str, Any]]
                           ) -> tuple[np.ndarray, np.ndarray]:
  """(int[T] steps, float[T] mean of per-trait rubric metrics) of a run.

  Steps without any trait metric are left out.
  """
  steps, values = [], []
  for row in rows:
    v = [float(val) for k, val in row.items()
         if k.startswith(TRAIN_TRAIT_PREFIXES) and not k.endswith(
             "valid_fraction") and isinstance(val, (int, float))]
    if v:
      steps.append(int(row["step"]))
      values.append(float(np.mean(v)))
  return np.array(steps, int), np.array(values, np.float64)


def _eval_step(e: EvalRun, results: ExperimentResults) -> int | None:
  if e.step is not None:
    return e.step
  step = e.summary.get("run", {}).get("checkpoint_step")
  if step is None and e.run in results.rl and results.rl[e.run].summary:
    step = results.rl[e.run].summary.get("steps_completed")
  return None if step is None else int(step)


PRIOR_RUN = "sft_prior"


def eval_curves(results: ExperimentResults, benchmark: str | None
                ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """run -> (steps, scores, stderrs) over its evaluated checkpoints (>= 2).

  benchmark None means the held-out trait average. Every RL run of the
  experiment starts from the SFT prior, so the prior's evaluation (eval dir
  'sft_prior') is each run's step 0 when present. A missing stderr is NaN.
  """
  def point(e: EvalRun) -> tuple[float, float] | None:
    if benchmark is None:
      y, se = trait_average(e), trait_average_stderr(e)
    else:
      entry = e.benchmarks.get(benchmark, {})
      y, se = entry.get("score"), entry.get("stderr")
    if y is None:
      return None
    return float(y), math.nan if se is None else float(se)

  points: dict[str, dict[int, tuple[float, float]]] = {}
  prior = results.evals.get(PRIOR_RUN)
  for e in results.evals.values():
    if e.run not in results.rl:
      continue
    step = _eval_step(e, results)
    p = point(e)
    if step is not None and p is not None:
      points.setdefault(e.run, {})[step] = p
  if prior is not None and prior.step is None and (p0 := point(prior)):
    for p in points.values():
      p.setdefault(0, p0)
  return {r: (np.array(sorted(p)), np.array([p[s][0] for s in sorted(p)]),
              np.array([p[s][1] for s in sorted(p)]))
          for r, p in sorted(points.items()) if len(p) >= 2}


def learning_curves(results: ExperimentResults, paper: Mapping[str, Any],
                    benchmarks: Sequence[str] = ("heldout_traits_health",)
                    ) -> figure_lib.Figure:
  """Score vs RL step per run: training trait average, held-out trait
  average and each selected benchmark (panels without data are left out);
  evaluated checkpoints carry a +-1 standard error band."""
  del paper  # The paper gives no curve values.
  panels = []
  train = {r: training_trait_average(run.metrics)
           for r, run in sorted(results.rl.items())}
  train = {r: c for r, c in train.items() if c[0].size}
  if train:
    panels.append((f"training rubric trait average (trailing mean of "
                   f"{TRAIN_SMOOTHING})", train))
  for bench in (None, *benchmarks):
    curves = eval_curves(results, bench)
    if curves:
      panels.append((bench or "held-out trait average", curves))
  if not panels:
    raise NotRun("no RL metrics.jsonl with trait metrics and no run "
                 "evaluated at >= 2 checkpoints")
  fig, axes = render.new_figure(ncols=len(panels), width=4.0)
  runs = sorted({r for _, c in panels for r in c})
  for ax, (title, curves) in zip(axes, panels):
    for run, (s, y, *se) in curves.items():
      i = runs.index(run)
      color = render.RUN_COLORS[i % len(render.RUN_COLORS)]
      style = "-" if run.startswith("beneficial") else "--"
      if not se:  # per-step training metric: raw points and a trailing mean
        ax.plot(s, y, ".", markersize=1.5, color=color, alpha=0.35)
        ax.plot(s, trailing_mean(y, TRAIN_SMOOTHING), color=color,
                linestyle=style, label=run)
        continue
      ax.plot(s, y, marker="o", markersize=2, color=color, linestyle=style,
              label=run)
      if se and np.isfinite(se[0]).any():  # +-1 standard error band
        ax.fill_between(s, y - se[0], y + se[0], color=color, alpha=0.15,
                        linewidth=0)
    ax.set_title(title)
    ax.set_xlabel("RL step")
    ax.set_ylabel("score")
    ax.legend(fontsize=6)
  fig.tight_layout()
  return fig
