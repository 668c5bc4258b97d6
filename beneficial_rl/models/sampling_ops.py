"""Token selection kernels of the sampler: greedy and inverse-CDF draws.

Pure jax functions on logits [R, V]; `sampler.choose_tokens` combines them
with temperature, top-k and top-p.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def argmax_first(x: Array) -> Array:
  """int32[R]: index of the first maximum of each row of x [R, V].

  Two plain reductions; faster on CPU than XLA's variadic argmax reduce.
  """
  top = x.max(axis=-1, keepdims=True)
  iota = jnp.arange(x.shape[-1], dtype=jnp.int32)
  return jnp.min(jnp.where(x == top, iota, x.shape[-1]), axis=-1)


def row_uniforms(key: Array, rows: int) -> Array:
  """float32[R] in (0, 1); row r uses `fold_in(key, r)`.

  Keying by row index makes a row's draw independent of the batch size, so
  batch padding (for sharding) and sharding itself do not change samples.
  """
  draw = lambda r: jax.random.uniform(
      jax.random.fold_in(key, r), (), minval=np.finfo(np.float32).tiny)
  return jax.vmap(draw)(jnp.arange(rows))


def sample_categorical(key: Array, logits: Array, with_logprob: bool = False
                       ) -> Array | tuple[Array, Array]:
  """int32[R]: one draw per row from softmax(logits [R, V]).

  Inverse-CDF sampling with a single uniform per row, in two levels (pick a
  block of about sqrt(V) tokens from the block masses, then a token inside
  it), so that it needs R random numbers instead of the R x V of Gumbel-max
  and no full-vocabulary scan. Tokens with logit -inf are never drawn.

  With `with_logprob`, also returns float32[R] log softmax(logits)[token],
  normalised by the same exponentials the draw used (one pass over the
  vocabulary instead of a second one for a logsumexp).
  """
  original = logits
  rows, vocab = logits.shape
  block = 1 << max(0, (int(np.ceil(np.sqrt(vocab))) - 1).bit_length())
  nblocks = -(-vocab // block)
  pad = nblocks * block - vocab
  if pad:
    logits = jnp.pad(logits, ((0, 0), (0, pad)), constant_values=-jnp.inf)
  top = logits.max(axis=-1, keepdims=True)
  probs = jnp.exp(logits - top)
  probs = probs.reshape(rows, nblocks, block)
  block_cdf = jnp.cumsum(probs.sum(axis=-1), axis=-1)  # [R, nblocks]
  # u in (0, total]: u <= block_cdf[-1] keeps the block index in range, and
  # u > 0 skips leading zero-mass blocks / tokens.
  u = row_uniforms(key, rows)[:, None] * block_cdf[:, -1:]
  j = jnp.sum(block_cdf < u, axis=-1)  # [R]
  below = jnp.where(j > 0, jnp.take_along_axis(
      block_cdf, jnp.maximum(j - 1, 0)[:, None], axis=-1)[:, 0], 0.0)
  row = jnp.take_along_axis(probs, j[:, None, None], axis=1)[:, 0]  # [R, blk]
  i = jnp.sum(jnp.cumsum(row, axis=-1) < (u[:, 0] - below)[:, None], axis=-1)
  # Rounding can leave the residual above the block's own cumsum: fall back
  # to the block's last token with non-zero mass.
  iota = jnp.arange(block, dtype=jnp.int32)
  last = jnp.max(jnp.where(row > 0, iota, 0), axis=-1)
  i = jnp.where(i >= block, last, i)
  tokens = (j * block + i).astype(jnp.int32)
  if not with_logprob:
    return tokens
  picked = jnp.take_along_axis(original, tokens[:, None], axis=-1)[:, 0]
  return tokens, picked - top[:, 0] - jnp.log(block_cdf[:, -1])
