"""The main job: the embedded end-to-end experiment, one command.

  python -m beneficial_rl.experiment --config=configs/experiments/embedded.py
  python -m beneficial_rl.experiment --config=configs/experiments/smoke.py

Stages run in order as separate processes (each a binary of this package, so a
stage can be rerun or debugged on its own with the command in its log):

  data -> sft_prior -> reward_model (a reward model on the prior's backbone,
  trained on judged candidate responses; `reward_model_config = ''` skips
  it) -> rl/<variant>/s<seed> (beneficial first; the baseline is
  compute-matched to it) -> eval/<run> (held-out suite on each final
  checkpoint; the trait split also on the intermediate checkpoints of
  `periodic_eval_runs` at `periodic_eval_steps`) ->
  compare/<variant>_vs_baseline -> persistence (persona steering of the
  beneficial model against the baseline) -> persistence_finetune (harmful
  finetuning of the beneficial model and of the prior it started from, same
  data and compute) -> figures (PNG/PDF and report.md / report.html under
  EXP/figures).

Resumable: a stage that finished writes `stages/<name>.json` (its command and
wall time) atomically; a rerun skips it. A stage that was interrupted reruns,
and the binaries themselves resume from their last checkpoint / finished items.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tqdm

from beneficial_rl.utils import io as io_lib


@dataclasses.dataclass(frozen=True)
class Stage:
  """One step of the experiment: a name and the argv of a package binary."""
  name: str
  argv: tuple[str, ...]

  @property
  def slug(self) -> str:
    return self.name.replace("/", "__")


def plan(config) -> list[Stage]:
  """The ordered stages for an experiment config (pure: no side effects)."""
  exp = pathlib.Path(config.experiment_dir)
  data_dir = exp / "data"
  prior_dir = exp / "sft_prior"
  py = (sys.executable, "-m")
  stages = [
      Stage("data", py + ("beneficial_rl.data.build",
                          f"--config={config.data_config}",
                          f"--config.data_dir={data_dir}")),
      Stage("sft_prior", py + (
          "beneficial_rl.rl.sft", f"--config={config.sft_config}",
          f"--config.workdir={prior_dir}",
          f"--config.tokenizer={data_dir / 'tokenizer' / 'spm.model'}",
          "--config.data.source=jsonl",
          f"--config.data.path={data_dir / 'sft' / 'prior.jsonl'}")),
  ]
  if config.get("reward_model_config", ""):
    stages.append(Stage("reward_model", py + (
        "beneficial_rl.grading.train_reward_model",
        f"--config={config.reward_model_config}",
        f"--config.workdir={exp / 'reward_model'}",
        f"--config.data_dir={data_dir}",
        f"--config.init_checkpoint={prior_dir / 'checkpoints'}")))
  variants = list(config.variants)
  if "baseline" in variants and "beneficial" in variants:
    variants.remove("beneficial")
    variants.insert(0, "beneficial")  # The baseline matches its compute.
  runs = []
  for seed in config.seeds:
    for variant in variants:
      run = f"{variant}_s{seed}"
      workdir = exp / "rl" / run
      argv = py + ("beneficial_rl.train",
                   f"--config=configs/rl/{variant}.py{config.rl_config_arg}",
                   f"--workdir={workdir}", f"--config.seed={seed}",
                   f"--config.data.data_dir={data_dir}",
                   f"--config.model.init_checkpoint={prior_dir / 'checkpoints'}")
      if variant in config.get("periodic_eval_runs", ()):
        steps = ",".join(str(s) for s in config.periodic_eval_steps)
        argv += (f"--config.train.keep_steps=({steps},)",)
      if variant == "baseline" and "beneficial" in variants:
        argv += (("--config.train.compute_budget_from="
                  f"{exp / 'rl' / f'beneficial_s{seed}'}"),)
      stages.append(Stage(f"rl/{run}", argv))
      runs.append(run)
  for run in ["sft_prior"] + runs:
    ckpt = (prior_dir if run == "sft_prior" else exp / "rl" / run)
    argv = py + ("beneficial_rl.eval", f"--config={config.eval_config}",
                 f"--checkpoint_dir={ckpt / 'checkpoints'}",
                 f"--out_dir={exp / 'eval' / run}")
    if config.eval_suite:
      argv += (f"--suite={config.eval_suite}",)
    if config.eval_max_items:
      argv += (f"--max_items={config.eval_max_items}",)
    stages.append(Stage(f"eval/{run}", argv))
  # Intermediate checkpoints of the selected runs, for the learning curves.
  for run in runs:
    if run.rsplit("_s", 1)[0] not in config.get("periodic_eval_runs", ()):
      continue
    for step in config.get("periodic_eval_steps", ()):
      argv = py + ("beneficial_rl.eval", f"--config={config.eval_config}",
                   f"--checkpoint_dir={exp / 'rl' / run / 'checkpoints'}",
                   f"--step={step}",
                   f"--out_dir={exp / 'eval' / f'{run}-step{step}'}",
                   f"--suite={config.periodic_eval_suite}",
                   # The whole periodic suite, whatever the eval config lists.
                   "--benchmarks=")
      if config.eval_max_items:
        argv += (f"--max_items={config.eval_max_items}",)
      stages.append(Stage(f"eval/{run}-step{step}", argv))
  for seed in config.seeds:
    base = f"baseline_s{seed}"
    for variant in variants:
      if variant == "baseline" or base not in runs:
        continue
      run = f"{variant}_s{seed}"
      stages.append(Stage(f"compare/{run}_vs_{base}", py + (
          "beneficial_rl.eval.compare", str(exp / "eval" / base),
          str(exp / "eval" / run),
          f"--out={exp / 'compare' / f'{run}_vs_{base}.json'}")))
  seed = config.seeds[0]
  if config.persistence_config and f"beneficial_s{seed}" in runs:
    # Persona steering: the beneficial model against the compute-matched
    # baseline (the prior without one).
    other = (f"baseline_s{seed}" if f"baseline_s{seed}" in runs
             else "sft_prior")
    ckpts = [exp / "rl" / f"beneficial_s{seed}" / "checkpoints",
             (prior_dir if other == "sft_prior" else exp / "rl" / other)
             / "checkpoints"]
    persistence = py + ("beneficial_rl.persistence",
                        f"--config={config.persistence_config}")
    stages.append(Stage("persistence", persistence + (
        f"--checkpoints={ckpts[0]},{ckpts[1]}",
        f"--names=beneficial,{other.rsplit('_s', 1)[0]}",
        f"--out_dir={exp / 'persistence'}", "--no_finetune")))
    # Harmful finetuning: the beneficial model against the model it started
    # from (pre-RL), with the same data and compute.
    stages.append(Stage("persistence_finetune", persistence + (
        f"--checkpoints={ckpts[0]},{prior_dir / 'checkpoints'}",
        "--names=beneficial,prior",
        f"--out_dir={exp / 'persistence_finetune'}", "--no_prompt")))
  stages.append(Stage("figures", py + ("beneficial_rl.figures",
                                       f"--experiment_dir={exp}")))
  return stages


def stage_env(config) -> dict[str, str]:
  """The stages' environment: ours plus a shared XLA compilation cache.

  Every stage compiles the same few programs for the same model shapes (six
  evaluations of one tiny model, four finetuning runs); JAX's persistent
  cache under EXP/xla_cache lets later stages load them instead. An
  XLA cache dir already set in the environment wins; `compilation_cache =
  False` in the config turns it off.
  """
  env = dict(os.environ)
  if config.get("compilation_cache", True):
    env.setdefault("JAX_COMPILATION_CACHE_DIR",
                   str(pathlib.Path(config.experiment_dir) / "xla_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
  return env


def run_stage(stage: Stage, exp: pathlib.Path,
              env: dict[str, str] | None = None) -> float:
  """Runs one stage, logging to logs/<stage>.log; returns seconds taken."""
  log_path = exp / "logs" / f"{stage.slug}.log"
  log_path.parent.mkdir(parents=True, exist_ok=True)
  start = time.monotonic()
  with open(log_path, "w", encoding="utf-8") as log:
    log.write("$ " + " ".join(stage.argv) + "\n")
    log.flush()
    proc = subprocess.run(stage.argv, stdout=log, stderr=subprocess.STDOUT,
                          check=False, env=env)
  if proc.returncode:
    tail = log_path.read_text(encoding="utf-8").splitlines()[-15:]
    raise RuntimeError(
        f"stage {stage.name!r} failed with exit status {proc.returncode}; "
        f"log: {log_path}\n" + "\n".join(tail))
  return time.monotonic() - start


def run(config) -> dict[str, float]:
  """Runs every unfinished stage; returns {stage: seconds} of this call."""
  exp = pathlib.Path(config.experiment_dir)
  markers = exp / "stages"
  stages = plan(config)
  env = stage_env(config)
  timings = {}
  bar = tqdm.tqdm(stages, desc="experiment", unit="stage")
  for stage in bar:
    bar.set_postfix_str(stage.name)
    marker = markers / f"{stage.slug}.json"
    if marker.exists():
      logging.info("skipping finished stage %s", stage.name)
      continue
    seconds = run_stage(stage, exp, env)
    timings[stage.name] = seconds
    io_lib.atomic_write_json(marker, {"stage": stage.name,
                                      "argv": list(stage.argv),
                                      "seconds": round(seconds, 2)})
  done = {p.stem: json.loads(p.read_text())["seconds"]
          for p in sorted(markers.glob("*.json"))}
  io_lib.atomic_write_json(exp / "stage_times.json", done)
  return timings


_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/experiments/embedded.py", "Experiment config.")
flags.DEFINE_bool("dry_run", False, "Print the stages and exit.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if flags.FLAGS.dry_run:
    for stage in plan(config):
      print(f"{stage.name}: {' '.join(stage.argv)}")
    return
  try:
    timings = run(config)
  except RuntimeError as e:
    sys.exit(str(e))
  for name, seconds in timings.items():
    print(f"{name:40s} {seconds:8.1f} s")
  print(f"experiment dir: {config.experiment_dir}")


def run_main() -> None:
  """Console-script entry point (`beneficial-rl-experiment`)."""
  app.run(main)


if __name__ == "__main__":
  run_main()
