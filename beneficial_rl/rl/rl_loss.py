"""GRPO / PPO losses for `step.make_train_step`, and what feeds them.

Per RL step the trainer builds one batch of N rows (prompt + completion, see
`rollout.sequence_batch`) and fills it in three places:

  host      group advantages from the rewards (`group_advantages`); rows whose
            reward is undefined (NaN: the judge could not score them) are
            dropped from the loss by clearing their completion mask.
  reference `make_reference_fn`: one jitted pass giving the frozen reference
            model's log-probs (KL) and, for PPO or `old_logprobs='recompute'`,
            the current policy's log-probs / values at rollout time.
  device    `ppo_advantages` (PPO only): GAE over per-token rewards (score on
            the last token, minus beta * KL when `kl_penalty='reward'`).

`make_loss_fn` then returns `loss_fn(params, microbatch, rng, frozen)`:

  loss = policy_loss(logp, old_logp, A, mask; clip, TIS weights)
         + kl_coef * KL(policy || reference)      (kl_penalty='loss')
         - entropy_coef * entropy
         + vf_coef * clipped value loss            (PPO)

All per-token arrays are [N, T] over the T completion positions; logp is the
log-prob of the sampled token under softmax(logits / temperature), the same
tempered policy whose log-probs the sampler returns.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from beneficial_rl.models import config as config_lib
from beneficial_rl.rl import algorithms
from beneficial_rl.rl import flops as flops_lib
from beneficial_rl.rl import rollout as rollout_lib
from beneficial_rl.rl.metrics import MeanMetric

Array = jax.Array
PyTree = Any
Batch = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Static settings of the RL loss (hashable; from `config.algorithm`).

  Attributes:
    algorithm: 'grpo' (group advantages per sequence) or 'ppo' (value head,
      GAE advantages per token).
    policy_loss: registered policy loss ('ppo' clipped surrogate,
      'reinforce').
    clip_eps_low / clip_eps_high: PPO clip range [1 - low, 1 + high].
    dual_clip_c: dual-clip bound (> 1) or None.
    aggregation: 'token_mean' | 'sequence_mean' | 'constant_sum'.
    kl_coef: beta of the KL to the reference policy (0: no reference pass).
    kl_estimator: 'k1' | 'k2' | 'k3'.
    kl_penalty: 'loss' (added to the loss) or 'reward' (PPO: subtracted from
      per-token rewards before GAE).
    entropy_coef: weight of the entropy bonus.
    temperature: sampling temperature; logits are divided by it.
    old_logprobs: 'sampler' or 'recompute' (see configs/rl/base.py).
    tis_cap: truncation of the importance weights exp(old - sampler) in
      'recompute' mode; None disables them.
    vf_coef / value_clip: PPO value loss weight and clip range.
    remat: 'none' or a rematerialisation policy for the update's forward.
  """
  algorithm: str = "grpo"
  policy_loss: str = "ppo"
  clip_eps_low: float = 0.2
  clip_eps_high: float = 0.2
  dual_clip_c: float | None = None
  aggregation: str = "token_mean"
  kl_coef: float = 0.0
  kl_estimator: str = "k3"
  kl_penalty: str = "loss"
  entropy_coef: float = 0.0
  temperature: float = 1.0
  old_logprobs: str = "sampler"
  tis_cap: float | None = None
  vf_coef: float = 0.5
  value_clip: float = 0.2
  remat: str = "none"

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "LossConfig":
    a = config.algorithm
    return cls(algorithm=a.name, policy_loss=a.policy_loss,
               clip_eps_low=a.clip_eps_low, clip_eps_high=a.clip_eps_high,
               dual_clip_c=a.dual_clip_c or None, aggregation=a.aggregation,
               kl_coef=a.kl_coef, kl_estimator=a.kl_estimator,
               kl_penalty=a.kl_penalty, entropy_coef=a.entropy_coef,
               temperature=config.rollout.temperature,
               old_logprobs=a.old_logprobs, tis_cap=a.tis_cap or None,
               vf_coef=a.vf_coef, value_clip=a.value_clip,
               remat=config.train.remat)

  @property
  def with_value(self) -> bool:
    return self.algorithm == "ppo"

  @property
  def needs_reference(self) -> bool:
    """Whether the frozen reference model is run (a KL term is used)."""
    return self.kl_coef > 0

  @property
  def needs_current(self) -> bool:
    """Whether the current params are run in the reference phase."""
    return self.with_value or self.old_logprobs == "recompute"

  @property
  def use_tis(self) -> bool:
    return self.old_logprobs == "recompute" and self.tis_cap is not None

  @property
  def reference_passes(self) -> int:
    """Forward passes over the batch in the reference phase."""
    return int(self.needs_reference) + int(self.needs_current)


# -------------------------------------------------------------- advantages --


def group_advantages(rewards: np.ndarray, group_size: int,
                     estimator: str = "grpo") -> tuple[np.ndarray, np.ndarray]:
  """Per-completion advantages of prompt-major rewards, NaN-safe.

  A row with a non-finite reward (an unscorable response) is invalid: it is
  filled with the mean of the valid rewards of its group (so it moves
  neither the group mean nor, for GRPO, the spread much), and its advantage
  is set to 0. A group without any valid reward gets advantage 0.

  Args:
    rewards: float32[N], N = prompts x group_size, NaN for unscorable rows.
    group_size: G.
    estimator: a registered group estimator ('grpo', 'dr_grpo', 'rloo').

  Returns:
    (float32[N] advantages, bool[N] valid rows).
  """
  r = np.asarray(rewards, np.float32).reshape(-1, group_size)
  valid = np.isfinite(r)
  count = valid.sum(axis=1, keepdims=True)
  mean = np.where(valid, r, 0.0).sum(axis=1, keepdims=True) / np.maximum(
      count, 1)
  filled = np.where(valid, r, mean).reshape(-1)
  fn = algorithms.get_advantage_estimator(estimator)
  adv = np.asarray(fn(jnp.asarray(filled), group_size=group_size))
  adv = np.where(valid.reshape(-1), adv, 0.0).astype(np.float32)
  return adv, valid.reshape(-1)


@functools.partial(jax.jit, static_argnames=("cfg", "whiten"))
def ppo_advantages(cfg: LossConfig, scores: Array, mask: Array,
                   old_values: Array, old_logp: Array, ref_logp: Array | None,
                   gamma: float, lam: float, whiten: bool = True
                   ) -> tuple[Array, Array, dict[str, MeanMetric]]:
  """GAE advantages and returns for PPO.

  Args:
    cfg: the loss config (kl_penalty, kl_coef, kl_estimator).
    scores: float32[N] sequence rewards (0 on invalid rows, whose mask is
      empty).
    mask: bool[N, T] completion mask.
    old_values: float32[N, T] value predictions at rollout time.
    old_logp: float32[N, T] policy log-probs at rollout time.
    ref_logp: float32[N, T] reference log-probs, or None without KL.
    gamma, lam: GAE discount and lambda.
    whiten: normalise advantages over the batch's valid tokens.

  Returns:
    (advantages float32[N, T], returns float32[N, T], KL metrics).
  """
  rewards = algorithms.scores_to_token_rewards(scores, mask)
  metrics = {}
  if ref_logp is not None and cfg.kl_penalty == "reward":
    rewards, metrics = algorithms.apply_kl_penalty(
        rewards, old_logp, ref_logp, mask, cfg.kl_coef, cfg.kl_estimator)
  dones = jnp.zeros_like(mask)  # The array end is terminal; nothing earlier.
  adv, returns = algorithms.gae_advantages(rewards, old_values, dones, mask,
                                           gamma, lam)
  if whiten:
    adv = algorithms.masked_whiten(adv, mask)
  return adv, returns, metrics


def rl_step_flops(model_cfg: config_lib.TransformerConfig, cfg: LossConfig,
                  prompt_lengths: np.ndarray, rollout: rollout_lib.Rollout,
                  num_epochs: int) -> flops_lib.PhaseFlops:
  """Model FLOPs of one RL step by phase (`rl.flops` conventions).

  Args:
    model_cfg: the policy's shape (the reference has the same).
    cfg: decides the forward passes of the reference phase.
    prompt_lengths: int[B] real lengths of the B distinct prompts (each is
      prefilled once, then its cache serves the G samples).
    rollout: the N = B * G completions.
    num_epochs: passes of the update over the batch.
  """
  full = rollout.prompt_lengths + rollout.lengths
  fwd = flops_lib.forward_flops(model_cfg, full)
  return flops_lib.PhaseFlops(
      rollout_prefill=flops_lib.prefill_flops(model_cfg, prompt_lengths),
      rollout_decode=flops_lib.decode_flops(
          model_cfg, rollout.prompt_lengths, rollout.lengths),
      reference_forward=cfg.reference_passes * fwd,
      train_forward=num_epochs * fwd, train_backward=2.0 * num_epochs * fwd)


# ---------------------------------------------------------- forward passes --


def make_reference_fn(model_cfg: config_lib.TransformerConfig,
                      cfg: LossConfig, num_completion: int,
                      prefix_group: int = 1
                      ) -> Callable[[PyTree, PyTree, Batch], dict[str, Array]]:
  """`fn(ref_params, params, batch) -> outputs`, every output float32[N, T].

  Outputs: 'ref_logp' (frozen reference; when kl_coef > 0), 'old_logp' and
  'tis_weights' ('recompute' mode), 'old_values' (PPO). `batch` holds
  'tokens', 'token_mask', 'completion_mask' and 'sampler_logp'. The caller
  jits it (with shardings) and may split the batch into chunks.
  `prefix_group`: see `rollout.policy_forward` (every `prefix_group`
  consecutive rows of a batch given to `fn` must share their prompt).
  """
  def fn(ref_params: PyTree, params: PyTree, batch: Batch
         ) -> dict[str, Array]:
    tokens, token_mask = batch["tokens"], batch["token_mask"]
    targets = tokens[:, -num_completion:]
    mask = batch["completion_mask"]
    out = {}
    if cfg.needs_reference:
      logits, _ = rollout_lib.policy_forward(model_cfg, ref_params, tokens,
                                             token_mask, num_completion,
                                             prefix_group=prefix_group)
      logp = rollout_lib.completion_logprobs(logits, targets, cfg.temperature)
      out["ref_logp"] = jnp.where(mask, logp, 0.0)
    if cfg.needs_current:
      logits, values = rollout_lib.policy_forward(
          model_cfg, params, tokens, token_mask, num_completion,
          with_value=cfg.with_value, prefix_group=prefix_group)
      if cfg.old_logprobs == "recompute":
        logp = rollout_lib.completion_logprobs(logits, targets,
                                               cfg.temperature)
        out["old_logp"] = jnp.where(mask, logp, 0.0)
        if cfg.use_tis:
          out["tis_weights"] = algorithms.truncated_importance_weights(
              out["old_logp"], batch["sampler_logp"], mask, cfg.tis_cap)
      if values is not None:
        out["old_values"] = jnp.where(mask, values, 0.0)
    return out

  return fn


# -------------------------------------------------------------------- loss --


def make_loss_fn(model_cfg: config_lib.TransformerConfig, cfg: LossConfig,
                 prefix_group: int = 1
                 ) -> Callable[..., tuple[Array, dict[str, MeanMetric]]]:
  """The `loss_fn(params, microbatch, rng, frozen)` of `make_train_step`.

  The microbatch holds 'tokens' int32[n, P + T], 'token_mask', and [n, T]
  arrays 'completion_mask', 'old_logp', 'advantages' (float32[n] for GRPO,
  [n, T] for PPO), plus 'ref_logp' (KL in the loss), 'tis_weights' (TIS),
  'old_values' and 'returns' (PPO). `rng` and `frozen` are unused: rollouts
  are sampled outside the update and the reference log-probs are inputs.
  With `prefix_group` = g > 1, every g consecutive rows of a microbatch must
  share their prompt; it is then run once per g rows
  (`rollout.policy_forward`).
  """
  policy_loss = algorithms.get_policy_loss(cfg.policy_loss)
  clip = {}
  if cfg.policy_loss == "ppo":
    clip = dict(clip_eps_low=cfg.clip_eps_low,
                clip_eps_high=cfg.clip_eps_high, dual_clip_c=cfg.dual_clip_c)

  def loss_fn(params: PyTree, mb: Batch, rng: Array, frozen: Any
              ) -> tuple[Array, dict[str, MeanMetric]]:
    del rng, frozen
    mask = mb["completion_mask"]
    num_completion = mask.shape[1]
    logits, values = rollout_lib.policy_forward(
        model_cfg, params, mb["tokens"], mb["token_mask"], num_completion,
        with_value=cfg.with_value, remat=cfg.remat,
        prefix_group=prefix_group)
    logits = logits / cfg.temperature
    targets = mb["tokens"][:, -num_completion:]
    logp = algorithms.token_log_probs(logits, targets)
    loss, metrics = policy_loss(
        logp, mb["old_logp"], mb["advantages"], mask,
        importance_weights=mb.get("tis_weights"),
        aggregation=cfg.aggregation, **clip)
    metrics = dict(metrics)
    metrics["policy/loss"] = MeanMetric.from_values(loss)
    if "ref_logp" in mb and cfg.kl_penalty == "loss":
      kl, kl_metrics = algorithms.kl_loss(logp, mb["ref_logp"], mask,
                                          cfg.kl_estimator, cfg.aggregation)
      loss = loss + cfg.kl_coef * kl
      metrics.update(kl_metrics)
    entropy, entropy_metrics = algorithms.entropy_bonus(logits, mask,
                                                        cfg.aggregation)
    metrics.update(entropy_metrics)
    if cfg.entropy_coef:
      loss = loss - cfg.entropy_coef * entropy
    if cfg.with_value:
      value_loss, value_metrics = algorithms.clipped_value_loss(
          values, mb["old_values"], mb["returns"], mask, cfg.value_clip,
          cfg.aggregation)
      loss = loss + cfg.vf_coef * value_loss
      metrics.update(value_metrics)
      metrics["value/loss"] = MeanMetric.from_values(value_loss)
    return loss, metrics

  return loss_fn
