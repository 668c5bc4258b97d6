"""Evaluates a checkpoint or a served model on a benchmark suite.

  python -m beneficial_rl.eval --checkpoint_dir=runs/rl/checkpoints \\
      --suite=embedded [--step=2000] [--out_dir=outputs/eval/rl-2000] \\
      [--judge=pattern|model|http ...] [--scale_judge=auto|heuristic|http|model]
      [--max_items=N] [--mesh=fsdp=-1]
  python -m beneficial_rl.eval --policy_url=http://127.0.0.1:8000/v1 \\
      --policy_model=NAME --api_key_env=MY_KEY_VAR --suite=public \\
      [--data_dir=../shared/benchmarks]

A local checkpoint is restored params-only (sharded onto --mesh when given);
its saved config gives the `TransformerConfig` and chat template and its
tokenizer asset the vocabulary. Results go to --out_dir (see
`beneficial_rl.eval.runner` for the layout); a rerun with the same flags
resumes. `--config=configs/eval/<name>.py` supplies defaults for any flag
(its keys are flag names); flags given on the command line win.

The 0-100 judge of the emergent-misalignment benchmarks follows --judge
(pattern -> the offline heuristic, http -> the same endpoint and model,
model -> the same checkpoint) unless --scale_judge names another kind, which
then reads the same --judge_* flags.

Exit status: 0 when every benchmark was scored or skipped for missing data,
1 when one failed, 2 on bad flags.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import pathlib
import re
import sys
from typing import Any, Sequence

from beneficial_rl.eval import runner
from beneficial_rl.eval.benchmarks import registry
from beneficial_rl.eval.benchmarks import scoring
from beneficial_rl.grading import judges as judges_lib

log = logging.getLogger("beneficial_rl.eval")
SCALE_JUDGES = ("auto", "heuristic", "http", "model")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m beneficial_rl.eval",
      description="Evaluate a checkpoint or a served model on a suite.")
  p.add_argument("--config", default=None,
                 help="ml_collections config file whose keys set flag "
                 "defaults, e.g. configs/eval/embedded.py")
  g = p.add_argument_group("policy (exactly one of --checkpoint_dir and "
                           "--policy_url)")
  g.add_argument("--checkpoint_dir", default=None,
                 help="run checkpoint root written by beneficial_rl."
                 "checkpoints")
  g.add_argument("--step", type=int, default=None,
                 help="checkpoint step (default: latest)")
  g.add_argument("--policy_url", default=None,
                 help="OpenAI-compatible endpoint root, e.g. "
                 "http://127.0.0.1:8000/v1")
  g.add_argument("--policy_model", default=None,
                 help="model name sent to --policy_url")
  g.add_argument("--api_key_env", default=None,
                 help="environment variable holding the endpoint's API key")
  g.add_argument("--policy_concurrency", type=int, default=8,
                 help="requests in flight to --policy_url")
  g.add_argument("--policy_timeout_s", type=float, default=120.0)
  g.add_argument("--policy_batch_size", type=int, default=8,
                 help="rows per device call of a local policy")
  g.add_argument("--temperature", type=float, default=0.0,
                 help="0 decodes greedily")
  g.add_argument("--mesh", default=None,
                 help="device mesh of a local policy, e.g. "
                 "'data=1,fsdp=-1,tensor=1' (default: one device)")
  g = p.add_argument_group("benchmarks")
  g.add_argument("--suite", default="embedded",
                 help="suite name (python -m beneficial_rl.eval.list)")
  g.add_argument("--benchmarks", default=None,
                 help="comma-separated subset of the suite")
  g.add_argument("--data_dir", default=None,
                 help="root of the public benchmark files (default: "
                 "$BENEFICIAL_RL_BENCHMARK_DIR, else ../shared/benchmarks)")
  g.add_argument("--max_items", type=int, default=None,
                 help="score only the first N items of each benchmark")
  g.add_argument("--max_new_tokens", type=int,
                 default=scoring.DEFAULT_MAX_NEW_TOKENS)
  g.add_argument("--chunk_size", type=int, default=scoring.DEFAULT_BATCH_SIZE,
                 help="items per policy call and per resumable chunk")
  g.add_argument("--mc_fallback", choices=("generated_choice", "skip"),
                 default="generated_choice",
                 help="mc_logprob benchmarks on a policy without choice "
                 "log-probs (a served model)")
  g.add_argument("--retry_unscored", action="store_true",
                 help="rescore stored items whose score is undefined")
  g.add_argument("--seed", type=int, default=0)
  g.add_argument("--out_dir", default=None,
                 help="output directory (default: outputs/eval/<policy>/"
                 "<suite>)")
  g = p.add_argument_group("rubric judge")
  g.add_argument("--judge", choices=("pattern", "model", "http"),
                 default="pattern")
  g.add_argument("--judge_checkpoint", default=None,
                 help="--judge=model: grader checkpoint root")
  g.add_argument("--judge_step", type=int, default=None)
  g.add_argument("--judge_url", default=None,
                 help="--judge=http: endpoint root")
  g.add_argument("--judge_model", default=None)
  g.add_argument("--judge_api_key_env", default=None)
  g.add_argument("--judge_cache_dir", default=None)
  g.add_argument("--judge_kwargs", default=None,
                 help="JSON object of further judge options")
  g.add_argument("--scale_judge", choices=SCALE_JUDGES, default="auto",
                 help="0-100 judge of judge_scale benchmarks (emergent "
                 "misalignment): 'auto' follows --judge; the others use the "
                 "--judge_* endpoint or checkpoint flags")
  return p


def load_config_defaults(path: str) -> dict[str, Any]:
  """`get_config()` of a config file, as a dict of flag defaults."""
  spec = importlib.util.spec_from_file_location("_eval_config", path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"cannot load a config from {path}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.config:
    defaults = load_config_defaults(args.config)
    known = {a.dest for a in parser._actions}  # pylint: disable=protected-access
    if unknown := sorted(set(defaults) - known):
      parser.error(f"{args.config}: unknown key {unknown[0]!r}; keys are "
                   "flag names")
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
  if (args.checkpoint_dir is None) == (args.policy_url is None):
    parser.error("give exactly one of --checkpoint_dir and --policy_url")
  if args.policy_url and not args.policy_model:
    parser.error("--policy_url needs --policy_model")
  if args.judge == "model" and not args.judge_checkpoint:
    parser.error("--judge=model needs --judge_checkpoint")
  if args.judge == "http" and not (args.judge_url and args.judge_model):
    parser.error("--judge=http needs --judge_url and --judge_model")
  if args.scale_judge == "model" and not args.judge_checkpoint:
    parser.error("--scale_judge=model needs --judge_checkpoint")
  if args.scale_judge == "http" and not (args.judge_url and args.judge_model):
    parser.error("--scale_judge=http needs --judge_url and --judge_model")
  return args


def select_benchmarks(suite: str, subset: str | None, data_dir: str | None
                      ) -> list[Any]:
  """The suite's benchmarks (optionally a subset), public ones registered."""
  if data_dir:
    registry.set_data_dir(data_dir)
  pool = registry.suite_benchmarks(suite)
  if not pool:
    raise ValueError(f"suite {suite!r} has no benchmarks")
  if subset:
    wanted = [n.strip() for n in subset.split(",") if n.strip()]
    by_name = {b.name: b for b in pool}
    missing = [n for n in wanted if n not in by_name]
    if missing:
      raise ValueError(f"benchmarks {missing} are not in suite {suite!r}")
    pool = [by_name[n] for n in wanted]
  return pool


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def default_out_dir(args: argparse.Namespace, step: int | None) -> pathlib.Path:
  """outputs/eval/<run>-step<step>/<suite> or outputs/eval/http-<model>/..."""
  if args.checkpoint_dir:
    path = pathlib.Path(args.checkpoint_dir).absolute()
    name = path.parent.name if path.name == "checkpoints" else path.name
    policy = f"{_slug(name)}-step{step}"
  else:
    policy = f"http-{_slug(args.policy_model)}"
  return pathlib.Path("outputs") / "eval" / policy / _slug(args.suite)


def build_judge(args: argparse.Namespace, mesh: Any) -> judges_lib.Judge:
  extra = json.loads(args.judge_kwargs) if args.judge_kwargs else {}
  if not isinstance(extra, dict):
    raise ValueError("--judge_kwargs must be a JSON object")
  if args.judge == "model":
    # Importing the module registers the 'model' judge.
    from beneficial_rl.grading import model_judge  # pylint: disable=g-import-not-at-top,unused-import,line-too-long
    return judges_lib.make_judge({"name": "model",
                                  "checkpoint": args.judge_checkpoint,
                                  "step": args.judge_step, **extra},
                                 mesh=mesh)
  if args.judge == "http":
    return judges_lib.make_judge({
        "name": "http", "base_url": args.judge_url,
        "model": args.judge_model, "api_key_env": args.judge_api_key_env,
        "cache_dir": args.judge_cache_dir, **extra})
  return judges_lib.make_judge({"name": "pattern", **extra})


def build_scale_judge(args: argparse.Namespace, judge: judges_lib.Judge,
                      mesh: Any) -> Any:
  """The `ScaleJudge` of judge_scale benchmarks (see the module docstring).

  'auto', or the kind of `judge`, derives it from the built rubric judge
  (`scale_judge.from_rubric_judge`, sharing its endpoint settings or model);
  another kind is built from the --judge_* flags.
  """
  from beneficial_rl.grading import scale_judge as scale_lib  # pylint: disable=g-import-not-at-top
  kind = args.scale_judge
  matching = "heuristic" if args.judge == "pattern" else args.judge
  if kind in ("auto", matching):
    return scale_lib.from_rubric_judge(judge)
  if kind == "heuristic":
    return scale_lib.HeuristicScaleJudge()
  if kind == "http":
    return scale_lib.HTTPScaleJudge(
        args.judge_url, args.judge_model, api_key_env=args.judge_api_key_env,
        cache_dir=args.judge_cache_dir)
  from beneficial_rl.grading import model_judge  # pylint: disable=g-import-not-at-top
  model = model_judge.load_chat_model(args.judge_checkpoint, args.judge_step,
                                      mesh=mesh)
  return scale_lib.ModelScaleJudge(model, mesh=mesh)


def _latest_step(directory: str) -> int:
  from beneficial_rl import checkpoints  # pylint: disable=g-import-not-at-top
  with checkpoints.CheckpointManager(directory, read_only=True) as manager:
    step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no complete checkpoint in {directory}")
  return step


def main(argv: Sequence[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  args = parse_args(argv)
  benchmarks = select_benchmarks(args.suite, args.benchmarks, args.data_dir)
  mesh = None
  if args.mesh:
    from beneficial_rl.parallel import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
    mesh = mesh_lib.make_mesh(mesh_lib.MeshConfig.parse(args.mesh))

  from beneficial_rl.eval import policies  # pylint: disable=g-import-not-at-top
  if args.checkpoint_dir:
    step = args.step if args.step is not None else _latest_step(
        args.checkpoint_dir)
    out_dir = pathlib.Path(args.out_dir or default_out_dir(args, step))
    policy = policies.LocalPolicy.from_checkpoint(
        args.checkpoint_dir, step, mesh=mesh,
        asset_dir=out_dir / "tokenizer", batch_size=args.policy_batch_size,
        temperature=args.temperature, seed=args.seed)
    run_info = {"checkpoint_dir": str(pathlib.Path(
        args.checkpoint_dir).absolute()), "checkpoint_step": step,
                "mesh": args.mesh}
  else:
    out_dir = pathlib.Path(args.out_dir or default_out_dir(args, None))
    policy = policies.HTTPPolicy(
        args.policy_url, args.policy_model, api_key_env=args.api_key_env,
        temperature=args.temperature, timeout_s=args.policy_timeout_s,
        max_concurrency=args.policy_concurrency, seed=args.seed)
    run_info = {"policy_url": args.policy_url,
                "policy_model": args.policy_model}
  run_info["policy_settings"] = policy.sampling_settings()
  run_info["benchmark_data_dir"] = str(registry.data_dir())
  judge = build_judge(args, mesh)
  scale_judge = build_scale_judge(args, judge, mesh)
  settings = runner.RunSettings(
      suite=args.suite, max_new_tokens=args.max_new_tokens,
      chunk_size=args.chunk_size, max_items=args.max_items, seed=args.seed,
      mc_fallback=args.mc_fallback, retry_unscored=args.retry_unscored)
  log.info("evaluating %s on %d benchmarks of suite %r into %s",
           policy.policy_id, len(benchmarks), args.suite, out_dir)
  summary = runner.run_suite(benchmarks, policy, out_dir, settings, judge,
                             run_info, scale_judge)
  print(runner.format_summary(summary))
  print(f"\nresults: {out_dir / runner.SUMMARY_FILE}")
  return 1 if summary["failed"] else 0


if __name__ == "__main__":
  sys.exit(main())
