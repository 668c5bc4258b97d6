"""Explicit key/value cache, so that decoding is a pure function.

Layout: every row of the batch shares one write position (`end_index`), which
holds when prompts are *left*-padded: row b's real tokens start at slot
`start_index[b]`. Slots [start_index[b], end_index) hold row b's keys/values.
The sampler converts right-padded prompts to this layout.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from beneficial_rl.models import config as config_lib


@flax.struct.dataclass
class LayerCache:
  """Keys and values of one attention layer.

  Attributes:
    k: [B, K, H, S] keys, RoPE already applied.
    v: [B, K, S, H] values.

  Head-major, keys transposed: a decode step's attention is then two batched
  matmuls over (B, K) that read the cache in place (q @ k contracts H, the
  second-minor dim of k; p @ v contracts S, the second-minor dim of v).
  Measured against a [B, S, K, H] layout in docs/performance.md.
  """
  k: jax.Array
  v: jax.Array


@flax.struct.dataclass
class KVCache:
  """Cache for all layers.

  Attributes:
    layers: one `LayerCache` per transformer block.
    start_index: int32[B], first valid slot of each row (its left padding).
    end_index: int32[], next slot to be written (shared by all rows).
  """
  layers: tuple[LayerCache, ...]
  start_index: jax.Array
  end_index: jax.Array

  @property
  def batch_size(self) -> int:
    return self.layers[0].k.shape[0]

  @property
  def max_length(self) -> int:
    return self.layers[0].v.shape[2]

  @property
  def lengths(self) -> jax.Array:
    """int32[B], number of valid tokens per row."""
    return self.end_index - self.start_index


def init_cache(cfg: config_lib.TransformerConfig, batch_size: int,
               max_length: int, start_index: jax.Array | None = None,
               dtype: jnp.dtype | None = None) -> KVCache:
  """Returns an empty cache with `max_length` slots per row."""
  dtype = dtype or cfg.compute_dtype
  k_shape = (batch_size, cfg.num_kv_heads, cfg.head_dim, max_length)
  v_shape = (batch_size, cfg.num_kv_heads, max_length, cfg.head_dim)
  layers = tuple(
      LayerCache(k=jnp.zeros(k_shape, dtype), v=jnp.zeros(v_shape, dtype))
      for _ in range(cfg.num_layers))
  if start_index is None:
    start_index = jnp.zeros((batch_size,), jnp.int32)
  return KVCache(layers=layers, start_index=start_index.astype(jnp.int32),
                 end_index=jnp.zeros((), jnp.int32))


def cache_bytes(cfg: config_lib.TransformerConfig, batch_size: int,
                max_length: int) -> int:
  """Bytes a cache of this shape occupies (for memory planning)."""
  per = batch_size * max_length * cfg.num_kv_heads * cfg.head_dim
  return 2 * cfg.num_layers * per * cfg.compute_dtype.itemsize
