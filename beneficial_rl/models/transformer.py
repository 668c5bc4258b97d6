"""Decoder-only transformer with policy, value and reward heads.

Pure functional use:

  model = Transformer(cfg)                       # head='policy'
  params = init_params(model, jax.random.key(0))
  logits, _ = model.apply({'params': params}, tokens, positions)
  logits, cache = model.apply({'params': params}, tokens, positions,
                              cache=cache)      # prefill / decode step

All heads share the backbone parameters under `params['decoder']`, so a value
or reward model can be initialised from a policy checkpoint.
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from beneficial_rl.models import config as config_lib
from beneficial_rl.models import dense as dense_lib
from beneficial_rl.models import kv_cache as kv_cache_lib
from beneficial_rl.models import layers

Array = jax.Array
Head = Literal["policy", "value", "reward"]


def attention_mask(batch: int, length: int, token_mask: Array | None,
                   cache: kv_cache_lib.KVCache | None) -> Array:
  """bool[B, T, S]: may query i attend to key slot j.

  Without a cache, S = T and the mask is causal over the given tokens with
  padding keys (token_mask False) removed. With a cache, query i sits at slot
  end_index + i and sees slots [start_index[b], end_index + i].
  """
  q_idx = jnp.arange(length)[:, None]
  if cache is None:
    causal = q_idx >= jnp.arange(length)[None, :]
    mask = jnp.broadcast_to(causal, (batch, length, length))
    if token_mask is not None:
      mask = mask & token_mask[:, None, :].astype(bool)
    return mask
  slots = jnp.arange(cache.max_length)[None, None, :]
  upper = cache.end_index + q_idx[None]  # [1, T, 1]
  lower = cache.start_index[:, None, None]  # [B, 1, 1]
  return (slots >= lower) & (slots <= upper)


class Decoder(nn.Module):
  """Embedding + blocks + final norm. Returns hidden states [B, T, D]."""
  cfg: config_lib.TransformerConfig

  def setup(self):
    cfg = self.cfg
    self.embedding = self.param(
        "embedding",
        nn.with_logical_partitioning(
            nn.initializers.normal(stddev=cfg.embed_dim ** -0.5),
            ("vocab", "embed")),
        (cfg.vocab_size, cfg.embed_dim), cfg.weight_dtype)
    block_cls = layers.Block
    if cfg.remat != "none":
      policy = (None if cfg.remat == "full" else
                jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims)
      # Argument 6 (self is 0) is Block's int num_queries.
      block_cls = nn.remat(layers.Block, policy=policy, static_argnums=(6,))
    self.blocks = [block_cls(cfg, name=f"layer_{i}")
                   for i in range(cfg.num_layers)]
    self.final_norm = layers.RMSNorm(cfg.norm_eps, cfg.norm_offset,
                                     cfg.compute_dtype, cfg.weight_dtype)

  def __call__(self, tokens: Array, positions: Array,
               cache: kv_cache_lib.KVCache | None = None,
               token_mask: Array | None = None,
               num_outputs: int | None = None
               ) -> tuple[Array, kv_cache_lib.KVCache | None]:
    """Hidden states [B, T, D], or [B, num_outputs, D] of the last positions.

    With `num_outputs`, the last block computes queries, attention output and
    MLP for those positions only (its keys and values still cover all T):
    what a prefill or a completion-only loss needs, for less work.
    """
    cfg = self.cfg
    x = jnp.take(self.embedding, tokens, axis=0).astype(cfg.compute_dtype)
    if cfg.scale_embeddings:
      x = x * jnp.asarray(cfg.embed_dim ** 0.5, cfg.compute_dtype)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    mask = attention_mask(tokens.shape[0], tokens.shape[1], token_mask, cache)
    new_layers = []
    for i, block in enumerate(self.blocks):
      layer_cache = cache.layers[i] if cache is not None else None
      end = cache.end_index if cache is not None else None
      last = num_outputs if i == len(self.blocks) - 1 else None
      x, new_layer = block(x, positions, mask, layer_cache, end, last)
      new_layers.append(new_layer)
    x = self.final_norm(x)
    if cache is None:
      return x, None
    new_cache = kv_cache_lib.KVCache(
        layers=tuple(new_layers), start_index=cache.start_index,
        end_index=cache.end_index + tokens.shape[1])
    return x, new_cache

  def logits(self, hidden: Array) -> Array:
    """Projects hidden states with the tied embedding table."""
    return dense_lib.dense(hidden, self.embedding.astype(hidden.dtype).T)


class Transformer(nn.Module):
  """Backbone with one head.

  head='policy': logits float32[B, T, V].
  head='value':  per-token values float32[B, T] (PPO critic).
  head='reward': sequence scores float32[B], read at each row's last valid
                 token (token_mask), or the last position without a mask.
  """
  cfg: config_lib.TransformerConfig
  head: Head = "policy"

  @nn.compact
  def __call__(self, tokens: Array, positions: Array,
               cache: kv_cache_lib.KVCache | None = None,
               token_mask: Array | None = None
               ) -> tuple[Array, kv_cache_lib.KVCache | None]:
    cfg = self.cfg
    decoder = Decoder(cfg, name="decoder")
    hidden, new_cache = decoder(tokens, positions, cache, token_mask)
    if self.head == "policy":
      if cfg.tie_embeddings:
        logits = decoder.logits(hidden)
      else:
        w = self.param("lm_head", nn.with_logical_partitioning(
            nn.initializers.normal(stddev=cfg.embed_dim ** -0.5),
            ("embed", "vocab")), (cfg.embed_dim, cfg.vocab_size),
                       cfg.weight_dtype)
        logits = dense_lib.dense(hidden, w.astype(cfg.compute_dtype))
      logits = logits.astype(jnp.float32)
      if cfg.logit_softcap is not None:
        logits = cfg.logit_softcap * jnp.tanh(logits / cfg.logit_softcap)
      logits = nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
      return logits, new_cache
    if self.head not in ("value", "reward"):
      raise ValueError(f"Transformer.head={self.head!r}; expected 'policy', "
                       "'value' or 'reward'")
    w = self.param(f"{self.head}_head", nn.with_logical_partitioning(
        nn.initializers.zeros, ("embed", None)), (cfg.embed_dim, 1),
                   cfg.weight_dtype)
    b = self.param(f"{self.head}_bias", nn.with_logical_partitioning(
        nn.initializers.zeros, (None,)), (1,), cfg.weight_dtype)
    scores = (hidden.astype(jnp.float32) @ w.astype(jnp.float32) + b)[..., 0]
    if self.head == "value":
      return scores, new_cache
    if token_mask is None:
      return scores[:, -1], new_cache
    last = last_valid_index(token_mask)
    return jnp.take_along_axis(scores, last[:, None], axis=1)[:, 0], new_cache


def last_valid_index(token_mask: Array) -> Array:
  """int32[B], index of the last True of each row of bool[B, T] (0 if none)."""
  t = token_mask.shape[1]
  idx = jnp.where(token_mask.astype(bool), jnp.arange(t)[None, :], -1)
  return jnp.maximum(idx.max(axis=1), 0).astype(jnp.int32)


def _dummy_inputs(batch: int = 1, length: int = 1):
  tokens = jnp.zeros((batch, length), jnp.int32)
  return tokens, jnp.zeros_like(tokens)


def abstract_params(model: Transformer):
  """Boxed `ShapeDtypeStruct` params carrying logical axis names."""
  return jax.eval_shape(lambda: model.init(jax.random.key(0),
                                           *_dummy_inputs()))["params"]


def init_params(model: Transformer, rng: Array):
  """Initialised parameters as a plain (unboxed) pytree."""
  return nn.unbox(model.init(rng, *_dummy_inputs())["params"])


def logical_axes(model: Transformer):
  """Pytree of logical PartitionSpecs matching `init_params(model, ...)`."""
  return nn.get_partition_spec(abstract_params(model))


def token_logprobs(logits: Array, targets: Array) -> Array:
  """float32[B, T] log p(targets[b, t] | ...), from logits [B, T, V]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def default_positions(token_mask: Array) -> Array:
  """int32[B, T] positions that skip left padding: cumsum(mask) - 1, >= 0."""
  return jnp.maximum(jnp.cumsum(token_mask.astype(jnp.int32), axis=1) - 1, 0)
