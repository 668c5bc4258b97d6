"""The fixed cross-framework workload: sampler tokens/s and one GRPO step.

  python -m beneficial_rl.bench peer-workload [--runs=10] [--out=peer.json]

The workload is the same as the one other frameworks (Tunix, TRL, HF
`generate`) were timed on, and is recorded in the output:
  * model: `models.get_preset('peer_workload')` (Llama architecture, vocab
    4096, hidden 256, 4 layers, 4 heads, 2 KV heads, MLP 704, RoPE theta
    1e4, untied, float32), random init with seed 0;
  * sampling: 32 prompts of 64 random tokens, 64 new tokens each,
    temperature 1.0, no EOS (every row runs all 64 steps);
  * GRPO step: 8 prompts x group 4 = 32 completions of 64 new tokens, a
    constant-time reward (fraction of even token ids), k3 KL 0.04 to a frozen
    reference, one AdamW step (lr 1e-5), one inner epoch, loss aggregated per
    token then per sequence ('sequence_mean').
It uses the library's own machinery only: `Sampler`, `rl_loss.make_loss_fn`,
`rl_loss.make_reference_fn`, `step.make_train_step`.

Reported: median / min / max over `--runs` timed runs after warm-up, the
GRPO step split into generation, reference + reward, update; XLA compiles
after warm-up (must be 0); and a check that decoding does no host round-trip
per token (each sampling call is one device program, run under a
device-to-host transfer guard).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from beneficial_rl.utils import instrumentation

# Rows of the sampler and of the train batch split over these mesh axes, as
# in the RL trainer.
BATCH_AXES = ("data", "fsdp")

# Opt-in (--region_analysis): without it XLA:CPU copy insertion copies each
# layer's KV cache inside the decode loop when a matmul reads it before the
# in-place update. The flag removes those copies, but measured no faster end
# to end here (docs/performance.md). Must be set before the backend starts.
CPU_XLA_FLAGS = ("--xla_cpu_copy_insertion_use_region_analysis=true",)


@dataclasses.dataclass(frozen=True)
class Workload:
  """Sizes of the workload (the defaults are the fixed peer workload)."""
  preset: str = "peer_workload"
  seed: int = 0
  sample_prompts: int = 32
  prompt_len: int = 64
  new_tokens: int = 64
  grpo_prompts: int = 8
  group_size: int = 4
  kl_coef: float = 0.04
  learning_rate: float = 1e-5
  temperature: float = 1.0


def add_xla_flags(flags: tuple[str, ...] = CPU_XLA_FLAGS) -> None:
  """Appends `flags` to XLA_FLAGS (no effect once the backend started)."""
  current = os.environ.get("XLA_FLAGS", "")
  missing = [f for f in flags if f.split("=")[0] not in current]
  os.environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()


def set_host_devices(count: int) -> None:
  """Splits the host CPU into `count` XLA devices (`jax_num_cpu_devices`).

  Raises:
    RuntimeError: the backend has already started with another count.
  """
  jax.config.update("jax_num_cpu_devices", count)


def make_bench_mesh(flag: str, host_devices: int) -> Mesh | None:
  """The mesh of `--mesh` / `--host_devices` (None: plain single device).

  Raises:
    ValueError: the flag does not parse, or the backend has fewer devices
      than asked for (`set_host_devices` called after the backend started).
  """
  from beneficial_rl.parallel import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  if not flag and host_devices == 1:
    return None
  cfg = mesh_lib.MeshConfig.parse(flag or "data=-1,fsdp=1,tensor=1")
  count = (host_devices if -1 in cfg.sizes
           else mesh_lib.num_devices_needed(cfg))
  if jax.device_count() < count:
    raise ValueError(f"the mesh needs {count} device(s) but the backend has "
                     f"{jax.device_count()}; --host_devices must take effect "
                     "before the backend starts")
  return mesh_lib.make_mesh(cfg, jax.devices()[:count])


def summary(seconds: list[float]) -> dict[str, float]:
  """Median / min / max of a list of timings."""
  return {"median": statistics.median(seconds), "min": min(seconds),
          "max": max(seconds)}


def constant_time_reward(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """float32[N]: fraction of even token ids among each row's real tokens."""
  even = ((tokens % 2) == 0) & mask
  return (even.sum(1) / np.maximum(mask.sum(1), 1)).astype(np.float32)


def count_dispatches(sampler) -> list[int]:
  """Wraps the sampler's compiled programs; returns the live call counter."""
  calls = [0]

  def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    def counted(*args: Any) -> Any:
      calls[0] += 1
      return fn(*args)
    return counted

  # pylint: disable=protected-access
  sampler._programs = {k: wrap(f) for k, f in sampler._programs.items()}
  return calls


def bench_sampler(w: Workload, params, runs: int, warmup: int,
                  mesh: Mesh | None = None) -> dict[str, Any]:
  """Times `Sampler.__call__` on the sampling workload (32 x 64 -> 64)."""
  from beneficial_rl.models import config as config_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.models import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_preset(w.preset)
  sampler = sampler_lib.Sampler(cfg, mesh=mesh, batch_axes=BATCH_AXES)
  rng = np.random.default_rng(w.seed)
  prompts = rng.integers(0, cfg.vocab_size, (w.sample_prompts, w.prompt_len)
                         ).astype(np.int32)
  sampling = sampler_lib.SamplingConfig(max_new_tokens=w.new_tokens,
                                        temperature=w.temperature)
  key = jax.random.key(w.seed)
  for i in range(warmup):
    jax.block_until_ready(sampler(params, prompts, jax.random.fold_in(key, i),
                                  sampling))
  dispatches = count_dispatches(sampler)
  seconds = []
  with instrumentation.CompileCounter() as compiles, jax.transfer_guard_device_to_host(
      "disallow"):
    for i in range(runs):
      t0 = time.perf_counter()
      out = sampler(params, prompts, jax.random.fold_in(key, warmup + i),
                    sampling)
      jax.block_until_ready(out)
      seconds.append(time.perf_counter() - t0)
  lengths = np.asarray(out.lengths)
  tokens = int(lengths.sum())
  if tokens != w.sample_prompts * w.new_tokens:
    raise RuntimeError(f"sampler produced {tokens} tokens, expected "
                       f"{w.sample_prompts * w.new_tokens}")
  tok_s = [tokens / s for s in seconds]
  return {
      "seconds": summary(seconds),
      "tokens_per_run": tokens,
      "tokens_per_s": {"median": tokens / statistics.median(seconds),
                       "min": min(tok_s), "max": max(tok_s)},
      "compiles_after_warmup": compiles.count,
      "device_programs_per_call": dispatches[0] / runs,
      "host_round_trips_per_token": 0,  # Guard above would have raised.
  }


def build_grpo(w: Workload, params, mesh: Mesh | None = None,
               shared_prompt: bool = True):
  """(sampler, sampling, reference_fn, train_step, state, ref_params).

  With `mesh`, everything is placed and compiled as the RL trainer does it:
  params on `partitioning.param_shardings`, rows over `BATCH_AXES`, the step
  jitted with explicit state shardings and the state donated. With
  `shared_prompt`, the reference and update passes run each prompt once per
  group (`rollout.policy_forward(prefix_group=)`), as the trainer does.
  """
  from beneficial_rl.models import config as config_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.models import sampler as sampler_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.models import transformer as transformer_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.parallel import partitioning  # pylint: disable=g-import-not-at-top
  from beneficial_rl.parallel import sharded_jit  # pylint: disable=g-import-not-at-top
  from beneficial_rl.rl import rl_loss  # pylint: disable=g-import-not-at-top
  from beneficial_rl.rl import step as step_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.train_state import TrainState  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_preset(w.preset)
  loss_cfg = rl_loss.LossConfig(
      algorithm="grpo", policy_loss="ppo", aggregation="sequence_mean",
      kl_coef=w.kl_coef, kl_estimator="k3", temperature=w.temperature)
  sampler = sampler_lib.Sampler(cfg, mesh=mesh, batch_axes=BATCH_AXES)
  sampling = sampler_lib.SamplingConfig(
      max_new_tokens=w.new_tokens, temperature=w.temperature, n=w.group_size)
  group = w.group_size if shared_prompt else 1
  reference = rl_loss.make_reference_fn(cfg, loss_cfg, w.new_tokens,
                                        prefix_group=group)
  loss_fn = rl_loss.make_loss_fn(cfg, loss_cfg, prefix_group=group)
  tx = optax.adamw(w.learning_rate)
  if mesh is None:
    reference_fn = jax.jit(reference)
    train_step = step_lib.make_train_step(loss_fn, donate=True)
    place = lambda tree: jax.tree.map(jnp.copy, tree)
  else:
    param_sh = partitioning.param_shardings(transformer_lib.Transformer(cfg),
                                            mesh)
    rows = jax.sharding.NamedSharding(mesh, partitioning.batch_spec(2))
    reference_fn = sharded_jit.sharded_jit(
        reference, mesh, in_shardings=(param_sh, None, rows),
        out_shardings=rows)
    state_sh = step_lib.train_state_shardings(params, tx, param_sh, mesh)
    train_step = step_lib.make_train_step(loss_fn, mesh=mesh, donate=True,
                                          state_shardings=state_sh)
    place = lambda tree: sharded_jit.shard_pytree(
        jax.tree.map(jnp.copy, tree), param_sh)
  ref_params = place(params)  # Frozen reference.
  state = TrainState.create(place(params), tx, jax.random.key(w.seed))
  if mesh is not None:
    state = jax.device_put(state, state_sh)
  return sampler, sampling, reference_fn, train_step, state, ref_params


def grpo_step(w: Workload, parts, state, prompts: np.ndarray, key
              ) -> tuple[Any, dict[str, float]]:
  """One GRPO step; returns the new state and its phase seconds."""
  from beneficial_rl.rl import rl_loss  # pylint: disable=g-import-not-at-top
  from beneficial_rl.rl import rollout as rollout_lib  # pylint: disable=g-import-not-at-top
  sampler, sampling, reference_fn, train_step, _, ref_params = parts
  t0 = time.perf_counter()
  out = jax.device_get(sampler(state.params, prompts, key, sampling))
  rollout = rollout_lib.Rollout(
      prompt_tokens=out.prompt_tokens, prompt_lengths=out.prompt_lengths,
      tokens=out.tokens, logprobs=out.logprobs, mask=out.mask,
      lengths=out.lengths, stop_reason=out.stop_reason)
  t1 = time.perf_counter()
  rewards = constant_time_reward(rollout.tokens, rollout.mask)
  batch = rollout_lib.sequence_batch(rollout)
  batch["advantages"], _ = rl_loss.group_advantages(rewards, w.group_size)
  ref = reference_fn(ref_params, None, {k: batch[k] for k in (
      "tokens", "token_mask", "completion_mask", "sampler_logp")})
  batch["ref_logp"] = np.asarray(ref["ref_logp"])
  batch["old_logp"] = batch.pop("sampler_logp")
  t2 = time.perf_counter()
  state, metrics = train_step(state, batch, None)
  jax.block_until_ready((state, metrics))
  t3 = time.perf_counter()
  return state, {"generation": t1 - t0, "reference_reward": t2 - t1,
                 "update": t3 - t2, "total": t3 - t0}


def bench_grpo(w: Workload, params, runs: int, warmup: int,
               mesh: Mesh | None = None, shared_prompt: bool = True
               ) -> dict[str, Any]:
  """Times `runs` GRPO steps after `warmup` steps."""
  from beneficial_rl.models import config as config_lib  # pylint: disable=g-import-not-at-top
  cfg = config_lib.get_preset(w.preset)
  parts = build_grpo(w, params, mesh, shared_prompt)
  state = parts[4]
  rng = np.random.default_rng(w.seed + 1)
  prompts = rng.integers(0, cfg.vocab_size, (w.grpo_prompts, w.prompt_len)
                         ).astype(np.int32)
  key = jax.random.key(w.seed + 1)
  for i in range(warmup):
    state, _ = grpo_step(w, parts, state, prompts, jax.random.fold_in(key, i))
  phases: dict[str, list[float]] = {}
  with instrumentation.CompileCounter() as compiles:
    for i in range(runs):
      state, secs = grpo_step(w, parts, state, prompts,
                              jax.random.fold_in(key, warmup + i))
      for k, v in secs.items():
        phases.setdefault(k, []).append(v)
  return {"seconds": {k: summary(v) for k, v in phases.items()},
          "completions": w.grpo_prompts * w.group_size,
          "optimizer_steps": int(state.step),
          "shared_prompt_forward": shared_prompt,
          "compiles_after_warmup": compiles.count}


def run(w: Workload, runs: int = 10, warmup: int = 2,
        parts: tuple[str, ...] = ("sampler", "grpo"),
        mesh: Mesh | None = None, shared_prompt: bool = True
        ) -> dict[str, Any]:
  """Runs the workload (on `mesh` when given); returns a JSON-ready dict."""
  from beneficial_rl.bench import sampler as sampler_bench  # pylint: disable=g-import-not-at-top
  from beneficial_rl.models import config as config_lib  # pylint: disable=g-import-not-at-top
  from beneficial_rl.models import transformer as transformer_lib  # pylint: disable=g-import-not-at-top
  machine = sampler_bench.machine_info()
  cfg = config_lib.get_preset(w.preset)
  params = transformer_lib.init_params(transformer_lib.Transformer(cfg),
                                       jax.random.key(w.seed))
  result: dict[str, Any] = {
      "workload": dataclasses.asdict(w), "model": dataclasses.asdict(cfg)
      if dataclasses.is_dataclass(cfg) else str(cfg),
      "num_params": cfg.num_params(), "runs": runs, "warmup": warmup,
      "xla_flags": os.environ.get("XLA_FLAGS", ""), "machine": machine,
      "mesh": None if mesh is None else dict(mesh.shape)}
  if "sampler" in parts:
    result["sampler"] = bench_sampler(w, params, runs, warmup, mesh)
  if "grpo" in parts:
    result["grpo"] = bench_grpo(w, params, runs, warmup, mesh, shared_prompt)
  return result


def format_report(r: dict[str, Any]) -> str:
  w, m = r["workload"], r["machine"]
  lines = [f"peer workload: {w['preset']} ({r['num_params'] / 1e6:.2f}M "
           f"params), {m['cpu_count']} x {m['cpu_model']}, jax {m['jax']}, "
           f"load {m['load_average_1min']:.1f}; {r['runs']} runs after "
           f"{r['warmup']} warm-up"]
  if "sampler" in r:
    s = r["sampler"]
    t = s["tokens_per_s"]
    lines.append(
        f"sampler {w['sample_prompts']} x {w['prompt_len']} -> "
        f"{w['new_tokens']}: median {t['median']:,.0f} tok/s (min "
        f"{t['min']:,.0f}, max {t['max']:,.0f}); "
        f"{s['seconds']['median'] * 1e3:.0f} ms/call; compiles after "
        f"warm-up {s['compiles_after_warmup']}; device programs per call "
        f"{s['device_programs_per_call']:g}; host round-trips per token "
        f"{s['host_round_trips_per_token']}")
  if "grpo" in r:
    g = r["grpo"]
    shared = ("prompt run once per group" if g.get("shared_prompt_forward")
              else "prompt run per completion")
    lines.append(f"GRPO step ({g['completions']} completions, {shared}): "
                 f"compiles after warm-up {g['compiles_after_warmup']}")
    for k, v in g["seconds"].items():
      lines.append(f"  {k:<17} median {v['median']:.3f} s  min "
                   f"{v['min']:.3f}  max {v['max']:.3f}")
  return "\n".join(lines)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m beneficial_rl.bench peer-workload",
      description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--parts", default="sampler,grpo",
                      help="comma-separated subset of sampler,grpo")
  parser.add_argument("--region_analysis", action="store_true",
                      help="add CPU_XLA_FLAGS (copy insertion with region "
                      "analysis) before the backend starts")
  parser.add_argument(
      "--host_devices", type=int, default=1,
      help="split the host CPU into this many XLA devices "
      "(--xla_force_host_platform_device_count) and run data-parallel over "
      "them, one device per core")
  parser.add_argument(
      "--mesh", default="",
      help="mesh axis sizes, e.g. 'data=2,fsdp=1' (default with "
      "--host_devices > 1: all devices on 'data'; with 1 device: no mesh)")
  parser.add_argument(
      "--no_shared_prompt", action="store_true",
      help="run the prompt once per completion in the reference and update "
      "passes instead of once per group (for A/B)")
  parser.add_argument("--out", help="optional JSON output path")
  args = parser.parse_args(argv[1:])
  if args.runs < 1 or args.warmup < 1:
    parser.error("--runs and --warmup must be >= 1")
  if args.host_devices < 1:
    parser.error("--host_devices must be >= 1")
  if args.region_analysis:
    add_xla_flags()
  if args.host_devices > 1:
    set_host_devices(args.host_devices)
  mesh = make_bench_mesh(args.mesh, args.host_devices)
  result = run(Workload(), args.runs, args.warmup,
               tuple(args.parts.split(",")), mesh,
               shared_prompt=not args.no_shared_prompt)
  print(format_report(result))
  if args.out:
    from beneficial_rl.utils import io  # pylint: disable=g-import-not-at-top
    io.atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
