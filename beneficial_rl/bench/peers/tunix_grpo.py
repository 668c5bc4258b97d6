"""Tunix `GRPOLearner`, one GRPO step of the fixed peer workload (seconds).

  ../peers-venv/bin/python beneficial_rl/bench/peers/tunix_grpo.py \
      [--runs=10] [--warmup=2]

Tunix's GRPO learner driven offline on one CPU device: an `RLCluster` whose
actor, reference and rollout roles share one 1 x 1 ('fsdp', 'tp') mesh (so
the rollout uses the actor's weights and no weight sync runs), the
"vanilla" rollout engine (Tunix's own `Sampler`), and the random-init
`Llama3` of `tunix_model.py` as actor; the reference is a second model built
with the same seed (same weights, frozen). Prompts are 8 texts of 64 random
ids for the toy id tokenizer.

Config: `RolloutConfig(max_tokens_to_generate=64, max_prompt_length=64,
kv_cache_size=128, temperature=1.0, top_p=1.0, top_k=None)`, EOS = pad = id
4096 (never sampled: no early stop); `RLTrainingConfig(actor_optimizer=
optax.adamw(1e-5))`, one mini-batch of the 8 prompts; `GRPOConfig(
num_generations=4, num_iterations=1, beta=0.04, kl_loss_mode="low_var_kl"
(the k3 estimator), loss_agg_mode="sequence-mean-token-mean")`, which is
"per token, then per sequence". The reward is the constant-time one of the
workload, computed from the completion text (fraction of even ids).

One timed run is one global step of `learner.train`, from the moment the
learner asks the data iterator for the step's prompts to the end of the
actor update (parameters ready). Phases come from wrapping the cluster's own
methods, each timed until its result is ready on device: `generation` =
`RLCluster.generate`; `reference_reward` = the rest of the data preparation
(`RLCluster.get_ref_per_token_logps`, reported alone as `reference`, plus
reward and advantages); `update` = `RLCluster.update_actor` (forward +
backward + AdamW step).
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any, Iterator

import peer_common  # Sets the thread variables before jax loads.
import tunix_model

import jax  # pylint: disable=g-import-not-at-top,g-bad-import-order
import numpy as np  # pylint: disable=g-import-not-at-top,g-bad-import-order


class PhaseClock:
  """Step start times and wrapped-phase durations, in call order."""

  def __init__(self):
    self.starts: list[float] = []
    self.update_ends: list[float] = []
    self.phase: dict[str, list[float]] = {"generation": [], "reference": [],
                                          "update": []}

  def batches(self, prompts: list[str], steps: int
              ) -> Iterator[dict[str, Any]]:
    """Yields the same 8 prompts `steps` times, stamping each request.

    The prompts go as one numpy array of strings (one pytree leaf): the
    learner repeats each leaf `num_generations` times with `np.repeat`.
    """
    for _ in range(steps):
      self.starts.append(time.perf_counter())
      yield {"prompts": np.array(prompts)}

  def wrap(self, fn, name: str, block_on=lambda out: out):
    """`fn` timed until `block_on(its output)` is ready on device."""
    def timed(*args, **kwargs):
      t0 = time.perf_counter()
      out = fn(*args, **kwargs)
      jax.block_until_ready(block_on(out))
      t1 = time.perf_counter()
      self.phase[name].append(t1 - t0)
      if name == "update":
        self.update_ends.append(t1)
      return out
    return timed


def even_reward(prompts: list[str], completions: list[str], **unused: Any
                ) -> list[float]:
  """Constant-time reward: fraction of even ids in each completion text."""
  del prompts
  return peer_common.even_fraction([[int(t) for t in c.split()]
                                    for c in completions])


def main() -> None:
  args = peer_common.parse_args(__doc__.splitlines()[0])
  import optax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from tunix.rl import rl_cluster as rl_cluster_lib  # pylint: disable=g-import-not-at-top
  from tunix.rl.grpo import grpo_learner  # pylint: disable=g-import-not-at-top
  from tunix.rl.rollout import base_rollout  # pylint: disable=g-import-not-at-top
  w = peer_common.WORKLOAD
  steps = args.warmup + args.runs
  special = w["vocab_size"]  # Pad / EOS id, outside the vocabulary.
  load_before = peer_common.load_average()
  with peer_common.stdout_to_stderr():
    # Auto axes: jax 0.10's default (Explicit) rejects Tunix's embedding
    # gather on sharded params.
    mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), devices=jax.devices()[:1],
                         axis_types=(jax.sharding.AxisType.Auto,) * 2)
    role = rl_cluster_lib.Role
    actor = tunix_model.build_model(w["seed"])
    reference = tunix_model.build_model(w["seed"])
    cluster = rl_cluster_lib.RLCluster(
        actor=actor, reference=reference,
        tokenizer=tunix_model.IdTokenizer(w["vocab_size"]),
        cluster_config=rl_cluster_lib.ClusterConfig(
            role_to_mesh={role.ACTOR: mesh, role.REFERENCE: mesh,
                          role.ROLLOUT: mesh},
            rollout_engine="vanilla", offload_to_cpu=False,
            training_config=rl_cluster_lib.RLTrainingConfig(
                actor_optimizer=optax.adamw(w["learning_rate"]),
                eval_every_n_steps=10**9, max_steps=steps,
                pbar_description=None),
            rollout_config=base_rollout.RolloutConfig(
                max_tokens_to_generate=w["new_tokens"],
                max_prompt_length=w["prompt_len"],
                kv_cache_size=w["prompt_len"] + w["new_tokens"],
                temperature=w["temperature"], top_p=1.0, top_k=None,
                eos_tokens=[special])))
    learner = grpo_learner.GRPOLearner(
        rl_cluster=cluster, reward_fns=even_reward,
        algo_config=grpo_learner.GRPOConfig(
            num_generations=w["group_size"],
            num_iterations=w["inner_epochs"], beta=w["kl_coef"],
            kl_loss_mode="low_var_kl",
            loss_agg_mode="sequence-mean-token-mean"))
    if learner.should_sync_weights:
      raise RuntimeError("expected the rollout to share the actor's weights")
    clock = PhaseClock()
    lengths: list[int] = []
    generate = clock.wrap(cluster.generate, "generation")

    def generate_and_check(*a, **kw):
      out = generate(*a, **kw)
      lengths.extend(len(t) for t in out.tokens)
      return out

    cluster.generate = generate_and_check
    cluster.get_ref_per_token_logps = clock.wrap(
        cluster.get_ref_per_token_logps, "reference")
    cluster.update_actor = clock.wrap(
        cluster.update_actor, "update",
        block_on=lambda _: nnx.state(cluster.actor_trainer.model))
    prompts = tunix_model.prompt_texts(w["grpo_prompts"], w["seed"] + 1)
    learner.train(clock.batches(prompts, steps))
  if len(clock.update_ends) != steps or len(clock.starts) < steps:
    raise RuntimeError(f"ran {len(clock.update_ends)} updates, expected "
                       f"{steps}")
  if len(lengths) != steps * w["grpo_prompts"] * w["group_size"] or min(
      lengths) != w["new_tokens"]:
    raise RuntimeError(f"expected {steps} x 32 completions of "
                       f"{w['new_tokens']} tokens, got {len(lengths)}")
  k = args.warmup
  total = [e - s for s, e in zip(clock.starts[k:steps],
                                 clock.update_ends[k:])]
  gen = clock.phase["generation"][k:]
  upd = clock.phase["update"][k:]
  phases = {
      "generation": peer_common.summary(gen),
      "reference": peer_common.summary(clock.phase["reference"][k:]),
      "reference_reward": peer_common.summary(
          [t - g - u for t, g, u in zip(total, gen, upd)]),
      "update": peer_common.summary(upd),
      "total": peer_common.summary(total),
  }
  peer_common.emit({
      "framework": "tunix",
      "version": importlib.metadata.version("google-tunix"),
      "jax": jax.__version__, "api": "tunix.rl.grpo.GRPOLearner",
      "metric": "grpo_step_seconds", **peer_common.summary(total),
      "phases": phases, "completions": w["grpo_prompts"] * w["group_size"],
      "runs": args.runs, "warmup": args.warmup, "notes": tunix_model.NOTES,
      "load_before": load_before, "load_after": peer_common.load_average(),
  })


if __name__ == "__main__":
  main()
