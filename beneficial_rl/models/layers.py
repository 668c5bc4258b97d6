"""Transformer building blocks: RMSNorm, RoPE, grouped-query attention, MLP.

Every parameter is created with logical axis names (see
`beneficial_rl.parallel.partitioning` for the rules mapping them to a mesh).
Activations are annotated with `nn.with_logical_constraint`, a no-op outside a
mesh. Shapes: B batch, T new tokens, S cache slots, D embed, N query heads,
K kv heads, G = N // K, H head dim, F mlp dim.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from beneficial_rl.models import config as config_lib
from beneficial_rl.models import dense as dense_lib
from beneficial_rl.models import kv_cache as kv_cache_lib

Array = jax.Array
_NEG_INF = -2.3819763e38  # Most negative bf16-representable value.


def _param(module: nn.Module, name: str, shape: tuple[int, ...],
           axes: tuple[str | None, ...], init, dtype) -> Array:
  return module.param(name, nn.with_logical_partitioning(init, axes), shape,
                      dtype)


def _fan_in_init(fan_in: int):
  return nn.initializers.normal(stddev=1.0 / math.sqrt(fan_in))


class RMSNorm(nn.Module):
  """RMS normalisation; the scale is applied as (offset + weight)."""
  eps: float = 1e-6
  offset: float = 0.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = nn.initializers.zeros if self.offset else nn.initializers.ones
    scale = _param(self, "scale", (x.shape[-1],), ("norm",), init,
                   self.param_dtype)
    x32 = x.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + self.eps)
    return (x32 * (self.offset + scale.astype(jnp.float32))).astype(self.dtype)


def rope_inverse_frequencies(cfg: config_lib.TransformerConfig) -> Array:
  """float32[H/2] inverse wavelengths, with optional scaling."""
  half = cfg.head_dim // 2
  inv = 1.0 / (cfg.rope_theta ** (jnp.arange(half, dtype=jnp.float32) / half))
  s = cfg.rope_scaling
  if s is None:
    return inv
  if s.kind == "linear":
    return inv / s.factor
  # Llama 3.1: keep high frequencies, divide low ones by `factor`, and
  # interpolate smoothly in between.
  low_wavelen = s.original_max_position / s.low_freq_factor
  high_wavelen = s.original_max_position / s.high_freq_factor
  wavelen = 2 * math.pi / inv
  smooth = (s.original_max_position / wavelen - s.low_freq_factor) / (
      s.high_freq_factor - s.low_freq_factor)
  mid = (1 - smooth) * inv / s.factor + smooth * inv
  return jnp.where(wavelen < high_wavelen, inv,
                   jnp.where(wavelen > low_wavelen, inv / s.factor, mid))


def apply_rope(x: Array, positions: Array, inv_freq: Array) -> Array:
  """Rotates halves of the last axis (the HF 'rotate_half' layout).

  Args:
    x: [B, T, heads, H].
    positions: int32[B, T].
    inv_freq: float32[H/2].
  """
  angles = positions[..., None].astype(jnp.float32) * inv_freq  # [B, T, H/2]
  sin = jnp.sin(angles)[:, :, None, :]
  cos = jnp.cos(angles)[:, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x.dtype)


def _grouped_attention(cfg: config_lib.TransformerConfig, q: Array,
                       k: Array, v: Array, mask: Array) -> Array:
  """Attention as two batched matmuls over (b, k), with or without a cache.

  With keys stored [B, K, H, S] and values [B, K, S, H], both matmuls have
  (b, k) as leading batch dims and contract in the layout a matmul kernel
  reads directly (q @ K: [G, H] x [H, S]; p @ V: [G, S] x [S, H]), so a
  decode step reads the cache in place instead of transposing it
  (docs/performance.md).

  Args:
    cfg: supplies attn_softcap and the compute dtype.
    q: [B, T, K, G, H] queries, already scaled.
    k: [B, K, H, S] keys.
    v: [B, K, S, H] values.
    mask: bool[B, T, S] slots each query may attend to.

  Returns:
    [B, T, K, G, H] attention outputs.
  """
  b, t, kv, g, h = q.shape
  q = jnp.swapaxes(q, 1, 2).reshape(b, kv, t * g, h)  # Free when T = 1.
  scores = jnp.einsum("bkqh,bkhs->bkqs", q, k).astype(jnp.float32)
  if cfg.attn_softcap is not None:
    scores = cfg.attn_softcap * jnp.tanh(scores / cfg.attn_softcap)
  scores = scores.reshape(b, kv, t, g, -1)
  scores = jnp.where(mask[:, None, :, None, :], scores, _NEG_INF)
  probs = jax.nn.softmax(scores, axis=-1).astype(cfg.compute_dtype)
  out = jnp.einsum("bkqs,bksh->bkqh", probs.reshape(b, kv, t * g, -1), v)
  return jnp.swapaxes(out.reshape(b, kv, t, g, h), 1, 2)


class Attention(nn.Module):
  """Grouped-query self-attention with an optional KV cache."""
  cfg: config_lib.TransformerConfig

  def _proj(self, name: str, x: Array, heads: int, head_axis: str) -> Array:
    cfg = self.cfg
    w = _param(self, name, (cfg.embed_dim, heads, cfg.head_dim),
               ("embed", head_axis, "head_dim"), _fan_in_init(cfg.embed_dim),
               cfg.weight_dtype)
    # [D, N, H] as [D, N*H]: one plain matmul.
    w = w.astype(cfg.compute_dtype).reshape(cfg.embed_dim, -1)
    y = dense_lib.dense(x, w).reshape(*x.shape[:-1], heads, cfg.head_dim)
    if cfg.qkv_bias:
      b = _param(self, name + "_bias", (heads, cfg.head_dim),
                 (head_axis, "head_dim"), nn.initializers.zeros,
                 cfg.weight_dtype)
      y = y + b.astype(cfg.compute_dtype)
    return y

  @nn.compact
  def __call__(self, x: Array, positions: Array, mask: Array,
               layer_cache: kv_cache_lib.LayerCache | None = None,
               end_index: Array | None = None,
               num_queries: int | None = None,
               ) -> tuple[Array, kv_cache_lib.LayerCache | None]:
    """Args: x [B,T,D]; positions int32[B,T]; mask bool[B,T,S] (S = T without
    cache, else the cache length); layer_cache and its write slot end_index;
    num_queries: attend from the last Q positions only (keys and values still
    cover all T), returning [B,Q,D]; None: all T."""
    cfg = self.cfg
    inv_freq = rope_inverse_frequencies(cfg)
    x_q, q_positions = x, positions
    if num_queries is not None:
      x_q, q_positions = x[:, -num_queries:], positions[:, -num_queries:]
      mask = mask[:, -num_queries:]
    q = apply_rope(self._proj("q", x_q, cfg.num_heads, "heads"), q_positions,
                   inv_freq)
    k = apply_rope(self._proj("k", x, cfg.num_kv_heads, "kv"), positions,
                   inv_freq)
    v = self._proj("v", x, cfg.num_kv_heads, "kv")
    q = nn.with_logical_constraint(q, ("batch", "length", "heads", "head_dim"))

    b, t, _, h = q.shape
    g = cfg.num_heads // cfg.num_kv_heads
    scale = cfg.query_scale if cfg.query_scale is not None else h ** -0.5
    q = (q * scale).reshape(b, t, cfg.num_kv_heads, g, h)
    # Keys [B, K, H, S], values [B, K, S, H] (see `kv_cache.LayerCache`).
    k = jnp.transpose(k, (0, 2, 3, 1))
    v = jnp.swapaxes(v, 1, 2)
    new_cache = None
    if layer_cache is not None:  # Write the T new slots at end_index.
      dt = layer_cache.k.dtype
      k = jax.lax.dynamic_update_slice(layer_cache.k, k.astype(dt),
                                       (0, 0, 0, end_index))
      v = jax.lax.dynamic_update_slice(layer_cache.v, v.astype(dt),
                                       (0, 0, end_index, 0))
      new_cache = kv_cache_lib.LayerCache(k=k, v=v)
    out = _grouped_attention(cfg, q, k.astype(cfg.compute_dtype),
                            v.astype(cfg.compute_dtype), mask)
    out = out.reshape(b, t, cfg.num_heads, h)
    w_o = _param(self, "o", (cfg.num_heads, h, cfg.embed_dim),
                 ("heads", "head_dim", "embed"),
                 _fan_in_init(cfg.num_heads * h), cfg.weight_dtype)
    # One [B*T, N*H] x [N*H, D] matmul (reshapes are free in row-major
    # layout); the einsum made XLA transpose w_o on every decode step.
    y = dense_lib.dense(out.reshape(b, t, cfg.num_heads * h), w_o.astype(
        cfg.compute_dtype).reshape(cfg.num_heads * h, cfg.embed_dim))
    return y, new_cache


class GatedMLP(nn.Module):
  """SwiGLU (or GeGLU): down(act(gate(x)) * up(x))."""
  cfg: config_lib.TransformerConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.cfg
    d, f = cfg.embed_dim, cfg.mlp_dim
    dt = cfg.compute_dtype
    gate = _param(self, "gate", (d, f), ("embed", "mlp"), _fan_in_init(d),
                  cfg.weight_dtype)
    up = _param(self, "up", (d, f), ("embed", "mlp"), _fan_in_init(d),
                cfg.weight_dtype)
    down = _param(self, "down", (f, d), ("mlp", "embed"), _fan_in_init(f),
                  cfg.weight_dtype)
    act = (jax.nn.silu if cfg.activation == "silu" else
           lambda z: jax.nn.gelu(z, approximate=True))
    hidden = (act(dense_lib.dense(x, gate.astype(dt)))
              * dense_lib.dense(x, up.astype(dt)))
    hidden = nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))
    return dense_lib.dense(hidden, down.astype(dt))


class Block(nn.Module):
  """Pre-norm transformer block."""
  cfg: config_lib.TransformerConfig

  @nn.compact
  def __call__(self, x, positions, mask, layer_cache=None, end_index=None,
               num_queries=None):
    """x [B,T,D] -> ([B,T,D], new cache); [B,Q,D] with num_queries=Q (the
    last Q positions; the cache still gets all T keys and values)."""
    cfg = self.cfg
    norm = lambda name: RMSNorm(cfg.norm_eps, cfg.norm_offset,
                                cfg.compute_dtype, cfg.weight_dtype, name=name)
    attn_out, new_cache = Attention(cfg, name="attn")(
        norm("attn_norm")(x), positions, mask, layer_cache, end_index,
        num_queries)
    if num_queries is not None:
      x = x[:, -num_queries:]
    x = x + attn_out
    x = x + GatedMLP(cfg, name="mlp")(norm("mlp_norm")(x))
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    return x, new_cache
