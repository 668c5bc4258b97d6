"""Tests of the transformer: cache equivalence, padding, GQA, RoPE, heads."""

from __future__ import annotations

import contextlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from beneficial_rl import models
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import kv_cache as kv_cache_lib
from beneficial_rl.models import layers
from beneficial_rl.models import transformer as transformer_lib
from beneficial_rl.parallel import remat as remat_lib

CFG = config_lib.TransformerConfig(
    vocab_size=61, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
    head_dim=8, mlp_dim=48, max_seq_len=64)


class _Jitted:
  """A module whose `apply` is jitted (eager flax apply is slow on CPU)."""

  def __init__(self, module):
    self.apply = jax.jit(module.apply)


def _params(cfg, head="policy", seed=0):
  model = transformer_lib.Transformer(cfg, head=head)
  params = transformer_lib.init_params(model, jax.random.key(seed))
  return _Jitted(model), params


def _tokens(shape, seed=1, vocab=CFG.vocab_size):
  return jnp.asarray(np.random.default_rng(seed).integers(0, vocab, shape),
                     jnp.int32)


def _positions(b, t):
  return jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))


def test_prefill_then_decode_equals_full_forward():
  model, params = _params(CFG)
  tokens = _tokens((2, 10))
  full, _ = model.apply({"params": params}, tokens, _positions(2, 10))
  cache = kv_cache_lib.init_cache(CFG, 2, 16)
  logits, cache = model.apply({"params": params}, tokens[:, :6],
                              _positions(2, 6), cache=cache)
  pieces = [logits]
  for t in range(6, 10):
    pos = jnp.full((2, 1), t, jnp.int32)
    logits, cache = model.apply({"params": params}, tokens[:, t:t + 1], pos,
                                cache=cache)
    pieces.append(logits)
  assert int(cache.end_index) == 10
  np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full,
                             atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("remat", ["none", "full", "remat_blocks"])
def test_num_outputs_computes_only_the_last_positions(remat):
  """Same hidden states and gradients as slicing the full pass; the last
  block still writes every key / value into the cache."""
  cfg = CFG.replace(remat=remat) if remat == "full" else CFG
  params = models.init_params(models.Transformer(CFG),
                              jax.random.key(0))["decoder"]
  decoder = transformer_lib.Decoder(cfg)
  tokens, pos = _tokens((2, 10)), _positions(2, 10)
  mask = jnp.ones((2, 10), bool).at[0, :3].set(False)  # Left padding.

  def hidden(p, n):
    context = (remat_lib.remat_blocks("nothing") if remat == "remat_blocks"
               else contextlib.nullcontext())
    with context:
      return decoder.apply({"params": p}, tokens, pos, token_mask=mask,
                           num_outputs=n)[0]

  full, last = hidden(params, None), hidden(params, 4)
  assert full.shape == (2, 10, CFG.embed_dim)
  assert last.shape == (2, 4, CFG.embed_dim)
  np.testing.assert_allclose(last, full[:, -4:], atol=1e-6)
  g_full = jax.grad(lambda p: jnp.sum(jnp.sin(hidden(p, None)[:, -4:])))(
      params)
  g_last = jax.grad(lambda p: jnp.sum(jnp.sin(hidden(p, 4))))(params)
  for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_last)):
    np.testing.assert_allclose(b, a, atol=1e-6)

  cache = kv_cache_lib.init_cache(CFG, 2, 16)
  h_all, c_all = decoder.apply({"params": params}, tokens, pos, cache=cache)
  h_one, c_one = decoder.apply({"params": params}, tokens, pos, cache=cache,
                               num_outputs=1)
  np.testing.assert_allclose(h_one[:, 0], h_all[:, -1], atol=1e-6)
  for a, b in zip(jax.tree.leaves(c_all), jax.tree.leaves(c_one)):
    np.testing.assert_array_equal(a, b)


def test_left_padding_matches_unpadded_sequences():
  model, params = _params(CFG)
  seqs = [np.asarray(_tokens((7,), seed=2)), np.asarray(_tokens((4,), seed=3))]
  width = 7
  padded = np.full((2, width), 17, np.int32)  # Non-zero junk padding.
  mask = np.zeros((2, width), bool)
  for b, s in enumerate(seqs):
    padded[b, width - len(s):] = s
    mask[b, width - len(s):] = True
  positions = transformer_lib.default_positions(jnp.asarray(mask))
  batch_logits, _ = model.apply({"params": params}, jnp.asarray(padded),
                                positions, token_mask=jnp.asarray(mask))
  # The same through the cache, plus one decoded token per row.
  start = jnp.asarray([width - len(s) for s in seqs], jnp.int32)
  cache = kv_cache_lib.init_cache(CFG, 2, 12, start_index=start)
  cached_logits, cache = model.apply({"params": params}, jnp.asarray(padded),
                                     positions, cache=cache)
  nxt = jnp.asarray([[5], [9]], jnp.int32)
  step_logits, _ = model.apply({"params": params}, nxt,
                               jnp.asarray([[7], [4]], jnp.int32), cache=cache)
  for b, s in enumerate(seqs):
    ext = np.concatenate([s, np.asarray(nxt[b])])[None]
    ref, _ = model.apply({"params": params}, jnp.asarray(ext),
                         _positions(1, ext.shape[1]))
    n = len(s)
    np.testing.assert_allclose(batch_logits[b, width - n:], ref[0, :n],
                               atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(cached_logits[b, width - n:], ref[0, :n],
                               atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(step_logits[b, 0], ref[0, n], atol=1e-5,
                               rtol=1e-5)


def _np_rope(x, positions, inv_freq):
  """Rotate-half RoPE in numpy. x [B, T, heads, H]."""
  ang = positions[..., None].astype(np.float64) * inv_freq  # [B, T, H/2]
  sin, cos = np.sin(ang)[:, :, None], np.cos(ang)[:, :, None]
  half = x.shape[-1] // 2
  x1, x2 = x[..., :half], x[..., half:]
  return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def _np_attention(p, x, positions, mask, cfg, softcap=None):
  """Multi-head attention with kv heads explicitly repeated G times."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)
  x = np.asarray(x, np.float64)
  half = cfg.head_dim // 2
  inv = 1.0 / cfg.rope_theta ** (np.arange(half) / half)
  q = _np_rope(np.einsum("btd,dnh->btnh", x, p["q"]), positions, inv)
  k = _np_rope(np.einsum("btd,dnh->btnh", x, p["k"]), positions, inv)
  v = np.einsum("btd,dnh->btnh", x, p["v"])
  g = cfg.num_heads // cfg.num_kv_heads
  k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)  # [B, T, N, H]
  scores = np.einsum("btnh,bsnh->bnts", q * cfg.head_dim ** -0.5, k)
  if softcap is not None:
    scores = softcap * np.tanh(scores / softcap)
  scores = np.where(mask[:, None], scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  out = np.einsum("bnts,bsnh->btnh", probs, v)
  return np.einsum("btnh,nhd->btd", out, p["o"])


@pytest.mark.parametrize("softcap", [None, 0.7])
def test_gqa_equals_repeated_kv_multi_head_reference(softcap):
  cfg = CFG.replace(attn_softcap=softcap)
  attn = layers.Attention(cfg)
  x = jax.random.normal(jax.random.key(4), (2, 6, cfg.embed_dim))
  pos = np.stack([np.arange(6), np.arange(3, 9)]).astype(np.int32)
  mask = np.broadcast_to(np.tril(np.ones((6, 6), bool)), (2, 6, 6)).copy()
  mask[1, :, 0] = False  # A padding key in row 1.
  mask[1, 0, 0] = True   # ... which its own (padding) query still sees.
  variables = attn.init(jax.random.key(5), x, jnp.asarray(pos),
                        jnp.asarray(mask))
  y, _ = attn.apply(variables, x, jnp.asarray(pos), jnp.asarray(mask))
  ref = _np_attention(nn.unbox(variables["params"]), x, pos, mask, cfg,
                      softcap)
  np.testing.assert_allclose(y, ref, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("softcap", [None, 0.7])
def test_grouped_attention_layout_and_values_against_reference(softcap):
  """Prefill 6 tokens into an 8-slot cache, then decode a 7th: outputs match
  the uncached reference, keys sit at [B, K, H, S] and values at [B, K, S, H]
  with the unwritten slot still zero."""
  cfg = CFG.replace(attn_softcap=softcap)
  attn = layers.Attention(cfg)
  x = jax.random.normal(jax.random.key(6), (2, 7, cfg.embed_dim))
  pos = np.broadcast_to(np.arange(7, dtype=np.int32), (2, 7))
  causal = np.tril(np.ones((7, 7), bool))
  variables = attn.init(jax.random.key(7), x, jnp.asarray(pos),
                        jnp.asarray(np.broadcast_to(causal, (2, 7, 7))))
  params = nn.unbox(variables["params"])
  cache = kv_cache_lib.init_cache(cfg, 2, 8).layers[0]
  slots = np.zeros((2, 6, 8), bool)
  slots[:, :, :6] = causal[:6, :6]
  y, cache = attn.apply(variables, x[:, :6], jnp.asarray(pos[:, :6]),
                        jnp.asarray(slots), cache, jnp.int32(0))
  step_mask = np.zeros((2, 1, 8), bool)
  step_mask[:, :, :7] = True
  y7, cache = attn.apply(variables, x[:, 6:], jnp.asarray(pos[:, 6:]),
                         jnp.asarray(step_mask), cache, jnp.int32(6))
  ref = _np_attention(params, x, pos, np.broadcast_to(causal, (2, 7, 7)),
                      cfg, softcap)
  np.testing.assert_allclose(jnp.concatenate([y, y7], 1), ref, atol=2e-5,
                             rtol=2e-5)
  half = cfg.head_dim // 2
  inv = 1.0 / cfg.rope_theta ** (np.arange(half) / half)
  x64 = np.asarray(x, np.float64)
  keys = _np_rope(np.einsum("btd,dnh->btnh", x64, params["k"]), pos, inv)
  values = np.einsum("btd,dnh->btnh", x64, params["v"])
  assert cache.k.shape == (2, cfg.num_kv_heads, cfg.head_dim, 8)
  assert cache.v.shape == (2, cfg.num_kv_heads, 8, cfg.head_dim)
  np.testing.assert_allclose(cache.k[..., :7], keys.transpose(0, 2, 3, 1),
                             atol=1e-5)
  np.testing.assert_allclose(cache.v[:, :, :7], values.transpose(0, 2, 1, 3),
                             atol=1e-5)
  assert not np.any(cache.k[..., 7]) and not np.any(cache.v[:, :, 7])


def _llama3_inv_freq_by_hand(i, half, theta, factor, low, high, orig):
  """Llama 3.1 rule for one frequency, branch by branch."""
  inv = theta ** (-i / half)
  wavelen = 2 * math.pi / inv
  if wavelen < orig / high:      # High frequency: unchanged.
    return inv
  if wavelen > orig / low:       # Low frequency: divided by factor.
    return inv / factor
  smooth = (orig / wavelen - low) / (high - low)
  return (1 - smooth) * inv / factor + smooth * inv


def test_rope_llama3_scaling_against_hand_computed_frequencies():
  scaling = config_lib.RopeScaling(kind="llama3", factor=8.0,
                                   low_freq_factor=1.0, high_freq_factor=4.0,
                                   original_max_position=64)
  cfg = CFG.replace(head_dim=16, rope_scaling=scaling)
  got = np.asarray(layers.rope_inverse_frequencies(cfg))
  want = [_llama3_inv_freq_by_hand(i, 8, 10_000.0, 8.0, 1.0, 4.0, 64)
          for i in range(8)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Anchors worked out on paper: i=0 keeps 1; i=1 (wavelength 19.87 between
  # 16 and 64) interpolates to 0.2444; i=7 (wavelength 19,869) is /8.
  np.testing.assert_allclose(got[[0, 1, 7]],
                             [1.0, 0.24439, 10_000 ** (-7 / 8) / 8],
                             rtol=1e-4)
  linear = CFG.replace(rope_scaling=config_lib.RopeScaling(kind="linear",
                                                           factor=4.0))
  np.testing.assert_allclose(
      layers.rope_inverse_frequencies(linear),
      layers.rope_inverse_frequencies(CFG) / 4.0, rtol=1e-6)


def test_rope_scores_depend_only_on_relative_position():
  inv = layers.rope_inverse_frequencies(CFG)
  q = jax.random.normal(jax.random.key(6), (1, 1, 1, CFG.head_dim))
  k = jax.random.normal(jax.random.key(7), (1, 1, 1, CFG.head_dim))
  def score(m, n):
    qm = layers.apply_rope(q, jnp.full((1, 1), m), inv)
    kn = layers.apply_rope(k, jnp.full((1, 1), n), inv)
    return float(jnp.sum(qm * kn))
  assert score(3, 1) == pytest.approx(score(12, 10), rel=1e-5)
  assert score(3, 1) != pytest.approx(score(3, 2), rel=1e-3)


def test_logit_softcap():
  model, params = _params(CFG)
  tokens = _tokens((2, 5))
  raw, _ = model.apply({"params": params}, tokens, _positions(2, 5))
  capped_model = _Jitted(transformer_lib.Transformer(
      CFG.replace(logit_softcap=0.5)))
  capped, _ = capped_model.apply({"params": params}, tokens, _positions(2, 5))
  assert float(jnp.abs(raw).max()) > 0.5  # The cap is active.
  assert float(jnp.abs(capped).max()) < 0.5
  np.testing.assert_allclose(capped, 0.5 * np.tanh(np.asarray(raw) / 0.5),
                             atol=1e-6)


def test_tied_embeddings_project_with_the_embedding_table():
  cfg = CFG.replace(tie_embeddings=True)
  model, params = _params(cfg)
  assert "lm_head" not in params
  tokens = _tokens((2, 5))
  logits, _ = model.apply({"params": params}, tokens, _positions(2, 5))
  hidden, _ = transformer_lib.Decoder(cfg).apply(
      {"params": params["decoder"]}, tokens, _positions(2, 5))
  np.testing.assert_allclose(
      logits, hidden @ params["decoder"]["embedding"].T, atol=1e-5)
  untied = CFG.num_params() - cfg.num_params()
  assert untied == CFG.vocab_size * CFG.embed_dim


def test_value_and_reward_heads():
  _, policy_params = _params(CFG)
  reward_model, params = _params(CFG, head="reward")
  assert jax.tree.structure(params["decoder"]) == jax.tree.structure(
      policy_params["decoder"])
  rng = np.random.default_rng(8)
  params = dict(params, reward_head=jnp.asarray(
      rng.normal(size=(CFG.embed_dim, 1)), jnp.float32),
                reward_bias=jnp.asarray([0.3], jnp.float32))
  value_params = {"decoder": params["decoder"],
                  "value_head": params["reward_head"],
                  "value_bias": params["reward_bias"]}
  value_model = _Jitted(transformer_lib.Transformer(CFG, head="value"))
  tokens = _tokens((3, 6))
  mask = jnp.asarray(np.arange(6)[None] < np.array([[6], [2], [4]]))
  pos = _positions(3, 6)
  values, _ = value_model.apply({"params": value_params}, tokens, pos,
                                token_mask=mask)
  rewards, _ = reward_model.apply({"params": params}, tokens, pos,
                                  token_mask=mask)
  assert values.shape == (3, 6) and values.dtype == jnp.float32
  assert rewards.shape == (3,)
  np.testing.assert_allclose(rewards, values[jnp.arange(3), [5, 1, 3]],
                             atol=1e-6)
  last, _ = reward_model.apply({"params": params}, tokens, pos)
  full_values, _ = value_model.apply({"params": value_params}, tokens, pos)
  np.testing.assert_allclose(last, full_values[:, -1], atol=1e-6)


def test_bf16_compute_with_fp32_params():
  cfg = CFG.replace(dtype="bfloat16")
  model, params = _params(cfg)
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  tokens = _tokens((2, 8))
  logits, _ = model.apply({"params": params}, tokens, _positions(2, 8))
  ref, _ = _Jitted(transformer_lib.Transformer(CFG)).apply(
      {"params": params}, tokens, _positions(2, 8))
  assert logits.dtype == jnp.float32
  assert np.isfinite(np.asarray(logits)).all()
  np.testing.assert_allclose(logits, ref, atol=0.1)
  # The bf16 cache path agrees with the bf16 full forward.
  cache = kv_cache_lib.init_cache(cfg, 2, 8)
  assert cache.layers[0].k.dtype == jnp.bfloat16
  cached, _ = model.apply({"params": params}, tokens, _positions(2, 8),
                          cache=cache)
  np.testing.assert_allclose(cached, logits, atol=0.05)


@pytest.mark.parametrize("cfg", [
    config_lib.get_preset("tiny"),
    config_lib.get_preset("small"),
    CFG.replace(tie_embeddings=True, qkv_bias=True),
], ids=["tiny", "small", "tied_qkv_bias"])
def test_num_params_matches_the_real_parameter_tree(cfg):
  shapes = transformer_lib.abstract_params(transformer_lib.Transformer(cfg))
  real = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  assert cfg.num_params() == real


@pytest.mark.parametrize("remat", ["full", "dots"])
def test_remat_keeps_params_and_gradients(remat):
  cfg = models.get_preset("tiny", num_layers=2, vocab_size=64)
  base = models.Transformer(cfg)
  params = models.init_params(base, jax.random.key(0))
  rematted = models.Transformer(cfg.replace(remat=remat))
  assert jax.tree.structure(params) == jax.tree.structure(
      models.init_params(rematted, jax.random.key(0)))
  tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, 64)
  pos = jnp.broadcast_to(jnp.arange(8), (2, 8))

  def loss(p, model):
    logits, _ = model.apply({"params": p}, tokens, pos)
    return models.token_logprobs(logits[:, :-1], tokens[:, 1:]).mean()

  g0 = jax.grad(loss)(params, base)
  g1 = jax.grad(loss)(params, rematted)
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="remat='some'"):
    cfg.replace(remat="some")
