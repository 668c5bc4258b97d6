"""Model FLOPs per training phase, from the model shape and token counts.

Convention (model FLOPs, as in MFU accounting): a multiply-add is 2 FLOPs;
only matrix multiplications are counted (norms, RoPE, softmax, activations
and the embedding lookup are ignored); attention is causal, so a token at
position p (0-based, counting cached context) attends over p + 1 keys. The
implementation computes dense masked attention, so the hardware does more
work than this on prefill/training and on decode (whole cache); these numbers
are what the model needs, comparable across implementations. Likewise the
reference and train passes count every row's full sequence, also when the
rows of a group run their shared prompt once (`rollout.policy_forward(
prefix_group=)`), so compute budgets do not depend on that setting.

With L layers, width D, N query heads, K kv heads, head dim H, MLP width F and
vocabulary V, the matmul weights one token passes through are

  P_mm = L * (D*H*(N + 2K) + N*H*D + 3*D*F) + D*V

(q, k, v, o projections, gated MLP, output head; tied or not, the head is a
D x V matmul). For T new tokens of one sequence after C cached tokens:

  forward(T, C) = 2 * P_mm * T + 4 * L * N * H * (T*C + T*(T+1)/2)

(the attention term is QK^T plus PV, 2*N*H FLOPs each per key). Then

  rollout prefill of a P-token prompt   = forward(P, 0)
  rollout decode of G tokens after it   = forward(G, P)  (one token per step
                                          over the growing cache; the sum over
                                          steps equals this closed form)
  reference / old-policy forward        = forward(P + G, 0)
  train forward                         = forward(P + G, 0)
  train backward                        = 2 * train forward (activation and
                                          weight gradients); with LoRA the
                                          frozen weights need no weight
                                          gradient: ~1x (`backward_factor`).

All functions accept Python numbers, numpy or jax arrays of per-sequence
lengths (summed over sequences): host input is summed in float64, jax
arrays (e.g. inside a jitted step, from the batch's token masks) in float32.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from beneficial_rl.models.config import TransformerConfig
from beneficial_rl.train_state import TrainState

ArrayLike = Any


def matmul_params(cfg: TransformerConfig) -> int:
  """P_mm: weights in matmuls that one token passes through (see above)."""
  d, h = cfg.embed_dim, cfg.head_dim
  attn = d * h * (cfg.num_heads + 2 * cfg.num_kv_heads) + cfg.num_heads * h * d
  mlp = 3 * d * cfg.mlp_dim
  return cfg.num_layers * (attn + mlp) + d * cfg.vocab_size


def attention_flops_per_key(cfg: TransformerConfig) -> int:
  """4 * L * N * H: FLOPs of one query attending to one key, all layers."""
  return 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim


def forward_flops(cfg: TransformerConfig, new_tokens: ArrayLike,
                  context: ArrayLike = 0) -> ArrayLike:
  """FLOPs of a forward pass over `new_tokens` after `context` cached ones.

  Args:
    cfg: the model shape.
    new_tokens: T per sequence: an int or an array [B] (summed).
    context: C per sequence, same shape rules.

  Returns:
    Total FLOPs (a float, or a float32 scalar for array input).
  """
  t = _float(new_tokens)
  c = _float(context)
  per_seq = (2.0 * matmul_params(cfg) * t
             + attention_flops_per_key(cfg) * (t * c + t * (t + 1) / 2))
  return _sum(per_seq)


def prefill_flops(cfg: TransformerConfig, prompt_len: ArrayLike) -> ArrayLike:
  """Rollout prefill of prompts of `prompt_len` tokens."""
  return forward_flops(cfg, prompt_len, 0)


def decode_flops(cfg: TransformerConfig, prompt_len: ArrayLike,
                 gen_len: ArrayLike) -> ArrayLike:
  """Sampling `gen_len` tokens one at a time after a `prompt_len` prompt."""
  return forward_flops(cfg, gen_len, prompt_len)


def train_flops(cfg: TransformerConfig, seq_len: ArrayLike,
                backward_factor: float = 2.0) -> ArrayLike:
  """Forward + backward over full sequences: (1 + backward_factor) * fwd."""
  return (1.0 + backward_factor) * forward_flops(cfg, seq_len, 0)


@dataclasses.dataclass(frozen=True)
class PhaseFlops:
  """FLOPs of one RL step by phase (floats).

  Attributes:
    rollout_prefill / rollout_decode: sampling the completions.
    reference_forward: reference (and old-policy) log-prob passes.
    train_forward / train_backward: the policy update(s).
  """
  rollout_prefill: float = 0.0
  rollout_decode: float = 0.0
  reference_forward: float = 0.0
  train_forward: float = 0.0
  train_backward: float = 0.0

  @property
  def total(self) -> float:
    return sum(dataclasses.asdict(self).values())

  def to_dict(self) -> dict[str, float]:
    out = {f"flops/{k}": float(v) for k, v in dataclasses.asdict(self).items()}
    out["flops/total"] = float(self.total)
    return out


def rl_step_flops(cfg: TransformerConfig, prompt_len: ArrayLike,
                  gen_len: ArrayLike, *, reference_passes: int = 1,
                  train_passes: int = 1,
                  backward_factor: float = 2.0) -> PhaseFlops:
  """Per-phase FLOPs of one RL step over a batch of sequences.

  Args:
    cfg: policy shape (the reference model has the same shape).
    prompt_len / gen_len: per-sequence lengths ([B] arrays or numbers).
    reference_passes: forward passes without gradient over whole sequences
      (reference model, old-policy log-probs...).
    train_passes: forward+backward passes (PPO epochs x minibatches cover
      the batch `train_passes` times).
    backward_factor: backward cost relative to forward (2; ~1 with LoRA).
  """
  full = _add(prompt_len, gen_len)
  fwd = forward_flops(cfg, full, 0)
  return PhaseFlops(
      rollout_prefill=float(prefill_flops(cfg, prompt_len)),
      rollout_decode=float(decode_flops(cfg, prompt_len, gen_len)),
      reference_forward=float(reference_passes * fwd),
      train_forward=float(train_passes * fwd),
      train_backward=float(train_passes * backward_factor * fwd))


def sft_batch_flops(cfg: TransformerConfig, token_mask: jax.Array,
                    backward_factor: float = 2.0) -> jax.Array:
  """Train FLOPs of a padded SFT batch: real tokens per row from bool[B, T].

  Packed rows are counted as one sequence per row (an upper bound on the
  attention term when several examples share a row).
  """
  lengths = jnp.sum(token_mask.astype(jnp.float32), axis=-1)
  return train_flops(cfg, lengths, backward_factor)


def add_flops(state: TrainState, flops: ArrayLike) -> TrainState:
  """`state` with `flops` added to its cumulative counter (e.g. rollouts)."""
  return state.replace(flops=state.flops + jnp.asarray(flops,
                                                       state.flops.dtype))


def _float(x: ArrayLike) -> ArrayLike:
  """Python numbers -> float; host arrays -> float64; jax arrays -> float32."""
  if isinstance(x, (int, float)):
    return float(x)
  if isinstance(x, jax.Array):
    return jnp.asarray(x, jnp.float32)
  return np.asarray(x, np.float64)


def _sum(x: ArrayLike) -> ArrayLike:
  if isinstance(x, float):
    return x
  return jnp.sum(x) if isinstance(x, jax.Array) else float(np.sum(x))


def _add(a: ArrayLike, b: ArrayLike) -> ArrayLike:
  if isinstance(a, jax.Array) or isinstance(b, jax.Array):
    return jnp.asarray(a) + jnp.asarray(b)
  if isinstance(a, (int, float)) and isinstance(b, (int, float)):
    return a + b
  return np.asarray(a) + np.asarray(b)
