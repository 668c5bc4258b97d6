"""Tests of the batched KV-cache sampler against naive full recomputation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from beneficial_rl.models import config as config_lib
from beneficial_rl.models import sampler as sampler_lib
from beneficial_rl.models import transformer as transformer_lib

CFG = config_lib.TransformerConfig(
    vocab_size=61, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
    head_dim=8, mlp_dim=48, max_seq_len=48)
PROMPTS = [[3, 14, 15, 9, 2, 6, 5], [35, 8], [9, 7, 9, 3, 2]]
NEW = 8
REF_LEN = 24  # Fixed width of the naive reference buffer (one compile).
StopReason = sampler_lib.StopReason


@pytest.fixture(scope="module")
def model_params():
  model = transformer_lib.Transformer(CFG)
  return model, transformer_lib.init_params(model, jax.random.key(0))


@pytest.fixture(scope="module")
def sampler():
  return sampler_lib.Sampler(CFG, prompt_buckets=(8, 16))


@pytest.fixture(scope="module")
def forward(model_params):
  """Jitted full forward over a right-padded [1, REF_LEN] buffer."""
  model, params = model_params
  fn = jax.jit(lambda t: model.apply({"params": params}, t,
                                     jnp.arange(REF_LEN)[None])[0][0])
  def run(seq):
    buf = np.zeros((1, REF_LEN), np.int32)
    buf[0, :len(seq)] = seq  # Causal: the right padding cannot leak back.
    return np.asarray(fn(jnp.asarray(buf)))
  return run


def naive_greedy(forward, prompt, steps):
  """Greedy decoding that recomputes the whole sequence for every token."""
  seq = list(prompt)
  for _ in range(steps):
    seq.append(int(np.argmax(forward(seq)[len(seq) - 1])))
  return seq[len(prompt):]


@pytest.fixture(scope="module")
def greedy_ref(forward):
  return [naive_greedy(forward, p, NEW) for p in PROMPTS]


GREEDY = sampler_lib.SamplingConfig(max_new_tokens=NEW, greedy=True)


def _right_padded():
  arr = np.full((3, 9), 60, np.int32)  # Junk padding on the right.
  for b, p in enumerate(PROMPTS):
    arr[b, :len(p)] = p
  return arr, [len(p) for p in PROMPTS]


def _left_padded():
  arr = np.full((3, 7), 60, np.int32)
  for b, p in enumerate(PROMPTS):
    arr[b, 7 - len(p):] = p
  return arr, [len(p) for p in PROMPTS]


@pytest.mark.parametrize("layout", ["ragged", "right", "left"])
def test_greedy_equals_naive_full_recompute(model_params, sampler, greedy_ref,
                                            layout):
  _, params = model_params
  key = jax.random.key(0)
  if layout == "ragged":
    out = sampler(params, PROMPTS, key, GREEDY)
  elif layout == "right":
    arr, lens = _right_padded()
    out = sampler(params, arr, key, GREEDY, lengths=lens)
  else:
    arr, lens = _left_padded()
    out = sampler(params, jnp.asarray(arr), key, GREEDY, lengths=lens,
                  padding_side="left")
  assert out.completions() == greedy_ref
  np.testing.assert_array_equal(out.lengths, [NEW] * 3)
  np.testing.assert_array_equal(out.stop_reason, [StopReason.LENGTH] * 3)
  assert bool(np.all(out.mask))
  np.testing.assert_array_equal(out.prompt_lengths, [7, 2, 5])
  assert out.prompt_tokens.shape == (3, 8)  # Bucket 8, left-padded.
  np.testing.assert_array_equal(out.prompt_tokens[1], [0] * 6 + [35, 8])


def test_logprobs_and_prompt_major_layout_match_a_forward_pass(
    model_params, sampler, forward):
  _, params = model_params
  temp, n = 0.7, 3
  cfg = sampler_lib.SamplingConfig(max_new_tokens=NEW, temperature=temp,
                                   top_k=20, top_p=0.9, n=n)
  out = sampler(params, PROMPTS, jax.random.key(3), cfg)
  assert out.tokens.shape == (len(PROMPTS) * n, NEW)
  np.testing.assert_array_equal(out.prompt_lengths, np.repeat([7, 2, 5], n))
  completions = out.completions()
  for row, comp in enumerate(completions):
    prompt = PROMPTS[row // n]  # Rows [i*n, (i+1)*n) belong to prompt i.
    np.testing.assert_array_equal(out.prompt_tokens[row, 8 - len(prompt):],
                                  prompt)
    logits = forward(list(prompt) + comp) / temp
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = [logp[len(prompt) - 1 + t, tok] for t, tok in enumerate(comp)]
    np.testing.assert_allclose(out.logprobs[row, :len(comp)], want,
                               atol=1e-4)
  for i in range(len(PROMPTS)):  # Samples of a group are independent.
    assert len({tuple(c) for c in completions[i * n:(i + 1) * n]}) > 1
  assert float(jnp.abs(out.logprobs * ~out.mask).max()) == 0.0


def _expected_stop(ref, eos, stop):
  """Length and reason from an unstopped greedy completion."""
  for t, tok in enumerate(ref):
    if tok in eos:
      return t + 1, StopReason.EOS
    if t + 1 >= len(stop) and tuple(ref[t + 1 - len(stop):t + 1]) == stop:
      return t + 1, StopReason.STOP_SEQUENCE
  return len(ref), StopReason.LENGTH


def _split_run(sampler, params, cfg):
  """prefill -> decode -> finish; returns (final state, output)."""
  state = sampler.prefill(params, PROMPTS, jax.random.key(0), cfg)
  assert int(state.step) == 1
  state = sampler.decode(params, state, cfg)
  return state, sampler.finish(state, len(PROMPTS), cfg)


def test_eos_and_stop_sequences(model_params, sampler, greedy_ref):
  _, params = model_params
  eos = greedy_ref[0][2]
  stop = tuple(greedy_ref[1][3:5])
  cfg = GREEDY.replace(eos_ids=(eos,), stop_sequences=((58, 59, 60), stop),
                       pad_id=-1)
  _, out = _split_run(sampler, params, cfg)
  reasons = set()
  for b, ref in enumerate(greedy_ref):
    length, reason = _expected_stop(ref, {eos}, stop)
    reasons.add(reason)
    assert int(out.lengths[b]) == length
    assert int(out.stop_reason[b]) == reason
    np.testing.assert_array_equal(out.tokens[b, :length], ref[:length])
    np.testing.assert_array_equal(out.tokens[b, length:], -1)
    np.testing.assert_array_equal(out.mask[b], np.arange(NEW) < length)
  assert {StopReason.EOS, StopReason.STOP_SEQUENCE} <= reasons


def test_decode_loop_exits_once_all_rows_stopped(model_params, sampler,
                                                 greedy_ref):
  _, params = model_params
  # Each row meets the EOS or a stop sequence within its first 3 tokens.
  cfg = GREEDY.replace(eos_ids=(greedy_ref[0][2],), stop_sequences=(
      tuple(greedy_ref[1][0:3]), tuple(greedy_ref[2][1:3])), pad_id=-1)
  state, out = _split_run(sampler, params, cfg)  # Same programs as above.
  assert int(out.lengths.max()) <= 3 < NEW
  assert int(state.step) == int(out.lengths.max())


def test_top_k_one_equals_greedy(model_params, sampler):
  _, params = model_params
  greedy = sampler(params, PROMPTS, jax.random.key(0), GREEDY)
  top1 = sampler(params, PROMPTS, jax.random.key(7),
                 GREEDY.replace(greedy=False, temperature=1.0, top_k=1))
  np.testing.assert_array_equal(top1.tokens, greedy.tokens)
  np.testing.assert_allclose(top1.logprobs, greedy.logprobs, atol=1e-6)


# EOS 60 is rare; its presence makes the static EOS count 1 in all uses.
SAMPLE = sampler_lib.SamplingConfig(max_new_tokens=NEW, temperature=1.0,
                                    eos_ids=(60,))


def test_same_key_same_output_different_key_different(model_params, sampler):
  _, params = model_params
  a = sampler(params, PROMPTS, jax.random.key(1), SAMPLE)
  b = sampler(params, PROMPTS, jax.random.key(1), SAMPLE)
  c = sampler(params, PROMPTS, jax.random.key(2), SAMPLE)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_array_equal(a.logprobs, b.logprobs)
  assert not np.array_equal(a.tokens, c.tokens)


def test_no_recompilation_inside_a_bucket(model_params, sampler):
  _, params = model_params
  compiles = []
  listener = lambda event, *a, **k: compiles.append(event) if (
      event == "/jax/core/compile/backend_compile_duration") else None
  # Temperature and EOS *values* are runtime inputs; their count is static.
  sampler(params, [[1, 2, 3, 4, 5]] * 2, jax.random.key(0), SAMPLE)
  traces = sampler.num_traces
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    out = sampler(params, [[1, 2, 3, 4, 5, 6, 7], [8]], jax.random.key(1),
                  SAMPLE.replace(temperature=0.5, eos_ids=(4,)))
    jax.block_until_ready(out)
    assert compiles == [] and sampler.num_traces == traces
    sampler(params, [list(range(1, 10))] * 2, jax.random.key(0), SAMPLE)
    assert sampler.num_traces == traces + 1  # Bucket 16: a new program.
    assert compiles  # ... which the listener sees.
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def test_sharded_sampling_equals_unsharded(model_params, sampler):
  _, params = model_params
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:8]), ("data",))
  sharded = sampler_lib.Sampler(CFG, prompt_buckets=(8, 16), mesh=mesh)
  # 3 prompts are padded to 8 rows, one per device.
  a = sharded(params, PROMPTS, jax.random.key(9), SAMPLE)
  b = sampler(params, PROMPTS, jax.random.key(9), SAMPLE)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_array_equal(a.lengths, b.lengths)
  np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
  state = sharded.prefill(params, PROMPTS, jax.random.key(9), SAMPLE)
  assert state.cache.layers[0].k.sharding.spec[0] in ("data", ("data",))
  assert len(state.tokens.sharding.device_set) == 8


def test_sample_categorical_matches_softmax_frequencies():
  logits = jnp.asarray([1.0, 0.0, -jnp.inf, 2.0, -1.0, 0.5, -jnp.inf, 0.0,
                        1.5, -0.5])  # V=10: blocks of 4 with padding.
  rows = 40_000
  draws = jax.jit(sampler_lib.sample_categorical)(
      jax.random.key(0), jnp.broadcast_to(logits, (rows, 10)))
  freq = np.bincount(np.asarray(draws), minlength=10) / rows
  p = np.asarray(jax.nn.softmax(logits))
  assert freq[2] == 0 and freq[6] == 0
  np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(0.25 / rows))


def test_sample_categorical_log_prob_is_the_log_softmax_of_the_draw():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 4, (64, 61)).astype(np.float32)
  logits[::5, ::3] = -np.inf  # Masked tokens (as top-p leaves them).
  draw = jax.jit(sampler_lib.sample_categorical, static_argnums=2)
  tokens, logp = draw(jax.random.key(3), logits, True)
  # The same tokens as without the log-prob ...
  np.testing.assert_array_equal(tokens, draw(jax.random.key(3), logits,
                                             False))
  # ... and the log-prob a separate log-softmax gives.
  want = np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)),
                            np.asarray(tokens)[:, None], axis=1)[:, 0]
  assert np.isfinite(want).all()
  np.testing.assert_allclose(logp, want, atol=2e-6)


def _collectives(sampler, params, sampling) -> int:
  """All-reduces in the compiled sampling program of 8 prompts (one per
  device, so that no output needs resharding)."""
  prompts = (PROMPTS * 3)[:8]
  args, rows = sampler._inputs(params, prompts, jax.random.key(0), sampling,  # pylint: disable=protected-access
                               None, "right")
  fn = sampler._program("generate", args[1].shape, sampling, rows)  # pylint: disable=protected-access
  return fn.lower(*args).compile().as_text().count("all-reduce(")


def test_sharded_decode_without_stop_conditions_needs_no_all_reduce(
    model_params):
  """Rows can only stop early on EOS / stop sequences; without them the loop
  runs max_new_tokens steps and needs no cross-device `all(done)`."""
  _, params = model_params
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:8]), ("data",))
  sharded = sampler_lib.Sampler(CFG, prompt_buckets=(8,), mesh=mesh)
  plain = SAMPLE.replace(eos_ids=())
  assert _collectives(sharded, params, plain) == 0
  assert _collectives(sharded, params, SAMPLE) >= 1
  out = sharded(params, PROMPTS, jax.random.key(4), plain)
  np.testing.assert_array_equal(out.lengths, [NEW] * len(PROMPTS))


def test_top_k_and_top_p_filter_support():
  logits = jnp.log(jnp.asarray([[0.05, 0.4, 0.1, 0.3, 0.15]] * 20_000))
  knobs = (jnp.float32(1.0), jnp.float32(0.8))
  topk = sampler_lib.SamplingConfig(top_k=2)
  choose = jax.jit(sampler_lib.choose_tokens, static_argnums=4)
  toks, lp = choose(logits, jax.random.key(1), *knobs, topk)
  freq = np.bincount(np.asarray(toks), minlength=5) / len(toks)
  np.testing.assert_allclose(freq, [0, 0.4 / 0.7, 0, 0.3 / 0.7, 0],
                             atol=0.02)
  # Logprobs are of the unfiltered (tempered) distribution.
  np.testing.assert_allclose(lp, np.log(np.asarray([0.05, 0.4, 0.1, 0.3,
                                                    0.15]))[toks], atol=1e-5)
  # Top-p 0.8 keeps 0.4 + 0.3 (0.7 < 0.8) and 0.15 (crosses 0.8).
  topp = sampler_lib.SamplingConfig(top_p=0.8)
  toks, _ = choose(logits, jax.random.key(2), *knobs, topp)
  freq = np.bincount(np.asarray(toks), minlength=5) / len(toks)
  np.testing.assert_allclose(freq, [0, 0.4 / 0.85, 0, 0.3 / 0.85, 0.15 / 0.85],
                             atol=0.02)


def test_bad_input_raises_clear_errors(model_params, sampler):
  _, params = model_params
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"prompts\[1\]: empty prompt"):
    sampler(params, [[1], []], key, GREEDY)
  with pytest.raises(ValueError, match=r"prompts\[0\]\[2\]: token id 61"):
    sampler(params, [[1, 2, 61]], key, GREEDY)
  with pytest.raises(ValueError, match=r"lengths\[1\]=9 exceeds"):
    sampler(params, np.ones((2, 4), np.int32), key, GREEDY, lengths=[2, 9])
  with pytest.raises(ValueError, match="at most 40 fit"):
    sampler(params, [list(range(41))], key, GREEDY)
  with pytest.raises(ValueError, match=r"SamplingConfig.top_p=1.5"):
    sampler_lib.SamplingConfig(top_p=1.5)
  with pytest.raises(ValueError, match="padding_side='middle'"):
    sampler(params, np.ones((1, 3), np.int32), key, GREEDY,
            padding_side="middle")


@pytest.mark.parametrize("changes", [
    {}, {"tie_embeddings": True, "logit_softcap": 2.0}], ids=["untied", "tied"])
def test_policy_logits_mirror_the_transformer_head(changes):
  cfg = CFG.replace(**changes)
  model = transformer_lib.Transformer(cfg)
  params = transformer_lib.init_params(model, jax.random.key(1))
  tokens = jnp.asarray([[4, 8, 15, 16, 23]])
  pos = jnp.arange(5)[None]
  want, _ = jax.jit(model.apply)({"params": params}, tokens, pos)
  hidden, _ = jax.jit(transformer_lib.Decoder(cfg).apply)(
      {"params": params["decoder"]}, tokens, pos)
  got = sampler_lib.policy_logits(cfg, params, hidden)
  np.testing.assert_allclose(got, want, atol=1e-5)
