"""The persistence study of one or two checkpoints.

  python -m beneficial_rl.persistence --config=configs/persistence/smoke.py \\
      --checkpoints=runs/trait_rl/checkpoints,runs/baseline/checkpoints \\
      [--names=trait_rl,baseline] [--attacks=clean,persona:deceptive,...] \\
      [--suite=embedded_health] [--benchmarks=a,b] [--max_items=N] \\
      [--no_finetune | --no_prompt] --out_dir=outputs/persistence

For each checkpoint (model A first, B second):

  1. prompt attacks: every suite benchmark under every attack, scored by the
     eval runner into OUT/<model>/prompt/ (resumable per item), then
     degradation = clean - attacked per (benchmark, attack);
  2. harmful finetuning: the `FinetuneSpec` grid on the same misaligned data
     for every model, curves in OUT/<model>/finetune/<run>/curve.json;

then, with two checkpoints, selective persistence of A vs B under every
harmful persona against the helpful control. Results (written atomically):

  OUT/<model>/metrics.json           {'<benchmark>@<attack>': Degradation,
                                      '<benchmark>@finetune': CurveSummary,
                                      '<benchmark>@<persona>@vs_<B>':
                                      SelectivePersistence (model A only)}
  OUT/<model>/finetune_curves.json   {benchmark: {'steps', 'scores'}}
  OUT/<model>/finetune_summary.json  `finetune.summarize` (grid, seeds)
  OUT/finetune_data.jsonl            the misaligned examples used
  OUT/summary.json                   everything above, per model

A rerun skips finished parts: a model's prompt part when its runner summary
is complete for the same benchmarks, a finetune run when its curve is.
Exit status: 0 on success, 1 when a benchmark failed, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import pathlib
import re
import sys
from typing import Any, Mapping, Sequence

import ml_collections

from beneficial_rl.eval import runner
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks.spec import Benchmark
from beneficial_rl.persistence import finetune
from beneficial_rl.persistence import metrics
from beneficial_rl.persistence import misaligned_data
from beneficial_rl.persistence import prompting
from beneficial_rl.utils import io as io_lib

log = logging.getLogger("beneficial_rl.persistence")
SUMMARY_FILE = "summary.json"
DATA_FILE = "finetune_data.jsonl"


# ------------------------------------------------------------------ flags --

def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m beneficial_rl.persistence",
      description="Prompt attacks, harmful finetuning and selective "
      "persistence of one or two checkpoints.")
  p.add_argument("--config", required=True,
                 help="configs/persistence/<name>.py (get_config())")
  p.add_argument("--checkpoints", required=True,
                 help="comma-separated checkpoint roots: A[,B]")
  p.add_argument("--names", default=None,
                 help="comma-separated model names (default: run dir names)")
  p.add_argument("--out_dir", required=True)
  p.add_argument("--attacks", default=None, help="overrides config.attacks")
  p.add_argument("--suite", default=None, help="overrides config.suite")
  p.add_argument("--benchmarks", default=None,
                 help="overrides config.benchmarks")
  p.add_argument("--max_items", type=int, default=None,
                 help="overrides config.max_items")
  p.add_argument("--no_finetune", action="store_true",
                 help="skip harmful finetuning")
  p.add_argument("--no_prompt", action="store_true",
                 help="skip the prompt attacks (harmful finetuning only)")
  return p


def load_config(path: str) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location("_persistence_config", path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"cannot load a config from {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _split(text: str) -> list[str]:
  return [t.strip() for t in text.split(",") if t.strip()]


def model_names(checkpoints: Sequence[str], names: str | None) -> list[str]:
  """Given names, else each run directory's name ('checkpoints' skipped)."""
  if names:
    out = _split(names)
    if len(out) != len(checkpoints):
      raise ValueError(f"--names has {len(out)} names for "
                       f"{len(checkpoints)} checkpoints")
  else:
    out = []
    for c in checkpoints:
      path = pathlib.Path(c).absolute()
      out.append(path.parent.name if path.name == "checkpoints"
                 else path.name)
  out = [re.sub(r"[^A-Za-z0-9._-]+", "_", n) for n in out]
  if len(set(out)) != len(out):
    raise ValueError(f"model names {out} repeat; give --names")
  return out


def _value(text: str) -> Any:
  try:
    return int(text)
  except ValueError:
    return text


def parse_attack(text: str) -> prompting.Attack:
  """'clean', 'persona:<name>[:mode=replace]', '<name>:key=value:...'."""
  name, *rest = text.split(":")
  kwargs: dict[str, Any] = {}
  for i, part in enumerate(rest):
    if "=" in part:
      key, value = part.split("=", 1)
      kwargs[key] = _value(value)
    elif i == 0 and name == "persona":
      kwargs["persona"] = part
    else:
      raise ValueError(f"attack {text!r}: expected key=value, got {part!r}")
  return prompting.make_attack(name, **kwargs)


def _select(suite: str, subset: str) -> list[Benchmark]:
  pool = registry.suite_benchmarks(suite)
  if not subset:
    return pool
  by_name = {b.name: b for b in pool}
  wanted = _split(subset)
  if missing := [n for n in wanted if n not in by_name]:
    raise ValueError(f"benchmarks {missing} are not in suite {suite!r}")
  return [by_name[n] for n in wanted]


# --------------------------------------------------------- prompt attacks --

def attacked_benchmarks(benchmarks: Sequence[Benchmark],
                        attacks: Sequence[prompting.Attack]
                        ) -> list[Benchmark]:
  """Every (benchmark, attack) pair that can be scored, benchmark-major."""
  out = []
  for b in benchmarks:
    for a in attacks:
      try:
        out.append(prompting.attack_benchmark(b, a))
      except ValueError as e:  # A prefill on an mc_logprob benchmark.
        log.info("skipping %s@%s: %s", b.name, a.name, e)
  return out


def _prompt_done(out_dir: pathlib.Path, names: Sequence[str]) -> bool:
  path = out_dir / runner.SUMMARY_FILE
  if not path.exists():
    return False
  s = io_lib.read_json(path)
  return bool(s.get("complete")) and s["run"].get("benchmarks") == list(
      names) and not s.get("failed")


def run_prompt_attacks(checkpoint: str, out_dir: pathlib.Path,
                       benchmarks: Sequence[Benchmark],
                       config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Scores the attacked suite into out_dir (skipped when already done)."""
  if _prompt_done(out_dir, [b.name for b in benchmarks]):
    log.info("%s: prompt attacks already scored", out_dir)
    return io_lib.read_json(out_dir / runner.SUMMARY_FILE)
  from beneficial_rl.eval import policies  # pylint: disable=g-import-not-at-top
  policy = policies.LocalPolicy.from_checkpoint(
      checkpoint, asset_dir=out_dir / "tokenizer",
      batch_size=config.policy_batch_size, seed=config.seed)
  settings = runner.RunSettings(
      suite=config.suite, max_new_tokens=config.max_new_tokens,
      chunk_size=config.chunk_size, max_items=config.max_items or None,
      seed=config.seed)
  return runner.run_suite(benchmarks, policy, out_dir, settings, run_info={
      "checkpoint_dir": str(pathlib.Path(checkpoint).absolute()),
      "policy_settings": policy.sampling_settings()})


def item_scores(out_dir: pathlib.Path, name: str) -> dict[str, float]:
  """{item id: oriented score} of a scored benchmark (unscored dropped)."""
  rows = runner.read_item_rows(runner.items_path(out_dir, name), name)
  return {i: float(r["score"]) for i, r in rows.items()
          if r["score"] is not None}


def _common(*runs: Mapping[str, float]) -> list[dict[str, float]]:
  ids = set(runs[0]).intersection(*runs[1:])
  return [{i: r[i] for i in sorted(ids)} for r in runs]


def degradations(model: str, out_dir: pathlib.Path,
                 benchmarks: Sequence[Benchmark],
                 attacks: Sequence[prompting.Attack],
                 config: ml_collections.ConfigDict) -> dict[str, Any]:
  """'<benchmark>@<attack>' -> Degradation dict for every scored pair."""
  out = {}
  for b in benchmarks:
    clean_name = f"{b.name}@clean"
    clean = item_scores(out_dir, clean_name)
    for a in attacks:
      key = f"{b.name}@{a.name}"
      attacked = item_scores(out_dir, key)
      pair = _common(clean, attacked)
      if a.name == "clean" or not pair[0]:
        continue
      out[key] = metrics.degradation(
          *pair, model=model, attack=a.name, confidence=config.confidence,
          num_resamples=config.num_resamples, seed=config.seed).to_dict()
  return out


def selective(models: Sequence[str], dirs: Sequence[pathlib.Path],
              benchmarks: Sequence[Benchmark],
              attacks: Sequence[prompting.Attack],
              config: ml_collections.ConfigDict) -> dict[str, Any]:
  """'<benchmark>@<harmful persona>@vs_<B>' -> SelectivePersistence dict."""
  def kind(a: prompting.Attack) -> str | None:
    return (a.persona.kind if isinstance(a, prompting.PersonaAttack)
            else None)

  helpful = [a.name for a in attacks if kind(a) == "helpful"]
  harmful = [a.name for a in attacks if kind(a) == "harmful"]
  if (len(models) != 2 or not helpful
      or "clean" not in [a.name for a in attacks]):
    return {}
  out = {}
  for b in benchmarks:
    runs = {(m, att): item_scores(d, f"{b.name}@{att}")
            for m, d in zip(models, dirs)
            for att in ["clean", helpful[0], *harmful]}
    for h in harmful:
      keys = [(m, att) for m in models for att in ("clean", h)]
      keys_p = [(m, att) for m in models for att in ("clean", helpful[0])]
      hs, ps = _common(*[runs[k] for k in keys]), _common(
          *[runs[k] for k in keys_p])
      if not hs[0] or not ps[0]:
        continue
      r = metrics.selective_persistence(
          hs[0], hs[1], ps[1], hs[2], hs[3], ps[3], model_a=models[0],
          model_b=models[1], confidence=config.confidence,
          num_resamples=config.num_resamples, seed=config.seed)
      out[f"{b.name}@{h}@vs_{models[1]}"] = r.to_dict()
  return out


# --------------------------------------------------------- finetuning --

def finetune_data(config: ml_collections.ConfigDict,
                  out_dir: pathlib.Path) -> list[dict[str, Any]]:
  """The misaligned list every model gets (written once to OUT)."""
  n = max(config.finetune.num_examples)
  path = out_dir / DATA_FILE
  if path.exists():
    return misaligned_data.load_chat_jsonl(path, n)
  if config.finetune.data:
    examples = misaligned_data.load_chat_jsonl(config.finetune.data, n)
  else:
    examples = misaligned_data.misaligned_examples(
        n, seed=config.finetune.data_seed)
  misaligned_data.write_chat_jsonl(path, examples)
  return examples


def finetune_specs(config: ml_collections.ConfigDict
                   ) -> list[finetune.FinetuneSpec]:
  fields = {k: v for k, v in config.finetune.to_dict().items()
            if k not in ("enabled", "data", "data_seed", "benchmarks",
                         "max_items", "threshold")}
  return finetune.specs_from_config(fields)


def run_finetuning(model: str, checkpoint: str, out_dir: pathlib.Path,
                   examples: Sequence[Mapping[str, Any]],
                   benchmarks: Sequence[Benchmark],
                   specs: Sequence[finetune.FinetuneSpec],
                   config: ml_collections.ConfigDict
                   ) -> list[finetune.FinetuneCurve]:
  settings = finetune.EvalSettings(
      max_items=config.finetune.max_items or None,
      max_new_tokens=config.max_new_tokens,
      batch_size=config.policy_batch_size)
  return [finetune.run_finetune(checkpoint, examples, benchmarks, spec,
                                out_dir / "finetune" / spec.run_id,
                                model_name=model, settings=settings)
          for spec in specs]


# ------------------------------------------------------------------ main --

def main(argv: Sequence[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    config = load_config(args.config)
    for flag in ("attacks", "suite", "benchmarks", "max_items"):
      if getattr(args, flag) is not None:
        config[flag] = getattr(args, flag)
    checkpoints = _split(args.checkpoints)
    if not 1 <= len(checkpoints) <= 2:
      raise ValueError(f"--checkpoints: expected 1 or 2, got "
                       f"{len(checkpoints)}")
    models = model_names(checkpoints, args.names)
    attacks = [parse_attack(a) for a in _split(config.attacks)]
    if "clean" not in [a.name for a in attacks]:
      attacks.insert(0, prompting.make_attack("clean"))
    benchmarks = _select(config.suite, config.benchmarks)
    do_finetune = config.finetune.enabled and not args.no_finetune
    specs = finetune_specs(config) if do_finetune else []
    ft_benchmarks = _select(config.suite, config.finetune.benchmarks)
    if args.no_prompt and not specs:
      raise ValueError("--no_prompt without harmful finetuning (disabled in "
                       "the config or by --no_finetune) leaves nothing to do")
  except (ValueError, KeyError, FileNotFoundError) as e:
    parser.error(str(e))
  out = pathlib.Path(args.out_dir)
  out.mkdir(parents=True, exist_ok=True)
  attacked = attacked_benchmarks(benchmarks, attacks)
  dirs = [out / m / "prompt" for m in models]
  examples = finetune_data(config, out) if specs else []
  threshold = config.finetune.threshold
  threshold = None if threshold is None or threshold < 0 else threshold

  summary: dict[str, Any] = {
      "config": config.to_dict(), "models": dict(zip(models, checkpoints)),
      "attacks": [] if args.no_prompt else [a.name for a in attacks],
      "prompt": {}, "finetune": {},
      "selective": {}, "failed": {}}
  all_curves: list[finetune.FinetuneCurve] = []
  metric_files: dict[str, dict[str, Any]] = {}
  for model, ckpt, d in zip(models, checkpoints, dirs):
    metric_files[model] = {}
    if not args.no_prompt:
      run = run_prompt_attacks(ckpt, d, attacked, config)
      if run["failed"]:
        summary["failed"][model] = run["failed"]
      degs = degradations(model, d, benchmarks, attacks, config)
      summary["prompt"][model] = degs
      metric_files[model].update(degs)
    if specs:
      curves = run_finetuning(model, ckpt, out / model, examples,
                              ft_benchmarks, specs, config)
      all_curves += curves
      ft = finetune.summarize(curves, threshold=threshold,
                              confidence=config.confidence)
      io_lib.atomic_write_json(out / model / "finetune_curves.json",
                               ft["curves"])
      io_lib.atomic_write_json(out / model / "finetune_summary.json", ft)
      summary["finetune"][model] = ft
      metric_files[model].update({f"{b}@finetune": s for b, s in
                                  ft["curve_summaries"].items()})
  if all_curves:
    finetune.check_same_budget(all_curves)
    summary["finetune_data_sha256"] = all_curves[0].data_sha256
  sel = ({} if args.no_prompt
         else selective(models, dirs, benchmarks, attacks, config))
  summary["selective"] = sel
  if sel:
    metric_files[models[0]].update(sel)
  for model, entries in metric_files.items():
    io_lib.atomic_write_json(out / model / "metrics.json", entries)
  summary["complete"] = True
  io_lib.atomic_write_json(out / SUMMARY_FILE, summary)
  print(f"results: {out / SUMMARY_FILE}")
  return 1 if summary["failed"] else 0


if __name__ == "__main__":
  sys.exit(main())
