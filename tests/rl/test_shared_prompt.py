"""The shared-prompt training forward equals the full pass, row for row."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding

from beneficial_rl import models
from beneficial_rl.models import sampler as sampler_lib
from beneficial_rl.parallel import mesh as mesh_lib
from beneficial_rl.parallel import partitioning as pt
from beneficial_rl.parallel import sharded_jit
from beneficial_rl.rl import rl_loss
from beneficial_rl.rl import rollout as rollout_lib
from beneficial_rl.rl import run_config
from beneficial_rl.rl import step as step_lib

CFG = models.TransformerConfig(vocab_size=40, num_layers=2, embed_dim=16,
                               num_heads=2, num_kv_heads=1, head_dim=8,
                               mlp_dim=32, max_seq_len=32)
GROUP, PROMPT, NEW = 4, 6, 5


def _batch(seed: int = 0) -> dict[str, np.ndarray]:
  """3 prompts x 4 samples: prompts of 6, 1 and 4 tokens (left-padded),
  completions stopped early or not (right-padded)."""
  rng = np.random.default_rng(seed)
  prompt_lengths = np.array([6, 1, 4]).repeat(GROUP)
  prompts = rng.integers(1, CFG.vocab_size, (3, PROMPT)).repeat(GROUP, 0)
  lengths = rng.integers(1, NEW + 1, 3 * GROUP)
  lengths[::3] = NEW
  mask = np.arange(NEW)[None] < lengths[:, None]
  rollout = rollout_lib.Rollout(
      prompt_tokens=np.where(np.arange(PROMPT)[None] >= PROMPT
                             - prompt_lengths[:, None], prompts, 0),
      prompt_lengths=prompt_lengths,
      tokens=np.where(mask, rng.integers(1, CFG.vocab_size, mask.shape), 0),
      logprobs=np.zeros(mask.shape, np.float32), mask=mask, lengths=lengths,
      stop_reason=np.ones(len(lengths), np.int32))
  rollout_lib.check_prompt_groups(rollout, GROUP)
  return rollout_lib.sequence_batch(rollout)


def _params(with_value: bool = False):
  params = models.init_params(models.Transformer(CFG), jax.random.key(0))
  if with_value:
    params = dict(params, value_head=jax.random.normal(
        jax.random.key(1), (CFG.embed_dim, 1)) * 0.3,
                  value_bias=jnp.array([0.1]))
  return params


def _forward(params, batch, group, remat="none", with_value=True):
  return rollout_lib.policy_forward(
      CFG, params, jnp.asarray(batch["tokens"]),
      jnp.asarray(batch["token_mask"]), NEW, with_value=with_value,
      remat=remat, prefix_group=group)


@pytest.mark.parametrize("group", [2, 4])
def test_logits_and_values_match_the_full_pass(group):
  params, batch = _params(with_value=True), _batch()
  mask = batch["completion_mask"]
  full_logits, full_values = _forward(params, batch, 1)
  logits, values = _forward(params, batch, group)
  assert logits.shape == (12, NEW, CFG.vocab_size) and values.shape == (12,
                                                                        NEW)
  np.testing.assert_allclose(np.asarray(logits)[mask],
                             np.asarray(full_logits)[mask], atol=2e-6)
  np.testing.assert_allclose(np.asarray(values)[mask],
                             np.asarray(full_values)[mask], atol=2e-6)


def test_prompts_that_differ_within_a_group_change_the_result():
  """The shared pass reads each group's first prompt: a check, not magic."""
  params, batch = _params(), _batch()
  # Not the last prompt token: each row runs that one itself.
  batch["tokens"][1, PROMPT - 2] = (batch["tokens"][1, PROMPT - 2] + 1) % 40
  full, _ = _forward(params, batch, 1, with_value=False)
  shared, _ = _forward(params, batch, GROUP, with_value=False)
  mask = batch["completion_mask"]
  assert not np.allclose(np.asarray(full)[1][mask[1]],
                         np.asarray(shared)[1][mask[1]], atol=1e-3)
  np.testing.assert_allclose(np.asarray(full)[0][mask[0]],
                             np.asarray(shared)[0][mask[0]], atol=2e-6)


@pytest.mark.parametrize("remat", ["none", "nothing"])
def test_gradients_of_the_rl_loss_match(remat):
  cfg = rl_loss.LossConfig(algorithm="grpo", aggregation="sequence_mean",
                           kl_coef=0.04, entropy_coef=0.01, remat=remat)
  params, batch = _params(), _batch(1)
  rng = np.random.default_rng(2)
  mb = {k: jnp.asarray(batch[k]) for k in ("tokens", "token_mask",
                                           "completion_mask")}
  mask = batch["completion_mask"]
  mb["old_logp"] = jnp.asarray(np.where(mask, -3.5 + rng.normal(
      0, 0.2, mask.shape), 0).astype(np.float32))
  mb["ref_logp"] = mb["old_logp"] - 0.1
  mb["advantages"] = jnp.asarray(rng.normal(size=12).astype(np.float32))
  grads = {}
  for group in (1, GROUP):
    loss_fn = rl_loss.make_loss_fn(CFG, cfg, prefix_group=group)
    grads[group], _ = jax.jit(jax.grad(loss_fn, has_aux=True))(
        params, mb, None, None)
  for ref, got in zip(jax.tree.leaves(grads[1]), jax.tree.leaves(
      grads[GROUP])):
    scale = float(jnp.max(jnp.abs(ref)))
    assert scale > 0
    np.testing.assert_allclose(got, ref, atol=1e-5 * scale)


def test_strided_chunks_keep_the_groups_prefix_group_reports():
  """`run_config.prefix_group` against the trainer's own chunk split."""
  params, batch = _params(), _batch(3)
  full, _ = _forward(params, batch, 1, with_value=False)
  for chunks in (1, 2, 4):
    group = run_config.prefix_group(GROUP, chunks)
    assert group == GROUP // chunks
    micro = step_lib.split_microbatches(
        {k: batch[k] for k in ("tokens", "token_mask", "completion_mask")},
        chunks)
    for c in range(chunks):
      logits, _ = rollout_lib.policy_forward(
          CFG, params, micro["tokens"][c], micro["token_mask"][c], NEW,
          prefix_group=group)
      mask = np.asarray(micro["completion_mask"][c])
      np.testing.assert_allclose(np.asarray(logits)[mask],
                                 np.asarray(full)[c::chunks][mask], atol=2e-6)
  assert run_config.prefix_group(GROUP, 3) == 1
  assert run_config.prefix_group(GROUP, 8) == 1
  assert run_config.prefix_group(1, 1) == 1


def test_reproduces_sampler_logprobs():
  params = _params()
  sampler = sampler_lib.Sampler(CFG, prompt_buckets=(8,))
  examples = [{"inputs": np.arange(1, 2 + i), "id": b"", "source": b"",
               "trait": b"", "domain": b""} for i in (0, 2, 5)]
  prompts = rollout_lib.PromptBatch.from_examples(examples, 8)
  sampling = sampler_lib.SamplingConfig(max_new_tokens=6, n=GROUP,
                                        eos_ids=(5,))
  rollout = rollout_lib.sample(sampler, params, prompts, jax.random.key(1),
                               sampling)
  rollout_lib.check_prompt_groups(rollout, GROUP)
  batch = rollout_lib.sequence_batch(rollout)
  logits, _ = rollout_lib.policy_forward(
      CFG, params, jnp.asarray(batch["tokens"]),
      jnp.asarray(batch["token_mask"]), 6, prefix_group=GROUP)
  logp = rollout_lib.completion_logprobs(logits, rollout.tokens, 1.0)
  m = rollout.mask
  assert not m.all()  # Some samples stopped at EOS.
  np.testing.assert_allclose(np.asarray(logp)[m], rollout.logprobs[m],
                             atol=2e-5)


def test_sharded_reference_matches_single_device():
  """12 rows over 4 batch shards: groups of 4 rows straddle devices."""
  mesh = mesh_lib.make_mesh(mesh_lib.MeshConfig(2, 2, 2))
  model_cfg = dataclasses.replace(CFG, num_heads=4, num_kv_heads=2)
  cfg = rl_loss.LossConfig(kl_coef=0.04)
  batch = _batch(4)
  params = models.init_params(models.Transformer(model_cfg),
                              jax.random.key(0))
  inputs = {k: batch[k] for k in ("tokens", "token_mask", "completion_mask",
                                  "sampler_logp")}
  want = jax.jit(rl_loss.make_reference_fn(model_cfg, cfg, NEW))(
      params, None, inputs)["ref_logp"]
  rows = NamedSharding(mesh, pt.batch_spec(2))
  p_sh = pt.param_shardings(models.Transformer(model_cfg), mesh)
  fn = sharded_jit.sharded_jit(
      rl_loss.make_reference_fn(model_cfg, cfg, NEW, prefix_group=GROUP),
      mesh,
      in_shardings=(p_sh, None, rows), out_shardings=rows)
  got = fn(jax.device_put(params, p_sh), None,
           jax.device_put(inputs, rows))["ref_logp"]
  assert got.sharding.is_equivalent_to(rows, 2)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_rows_that_are_not_whole_groups_are_refused():
  params, batch = _params(), _batch()
  with pytest.raises(ValueError, match="12 rows do not split into prefix "
                     "groups of 5"):
    _forward(params, batch, 5)


def test_check_prompt_groups_names_the_bad_group():
  rollout = rollout_lib.Rollout(
      prompt_tokens=np.array([[1, 2]] * 4 + [[1, 3], [1, 2]]),
      prompt_lengths=np.full(6, 2), tokens=np.zeros((6, 1), np.int32),
      logprobs=np.zeros((6, 1), np.float32), mask=np.ones((6, 1), bool),
      lengths=np.ones(6, np.int32), stop_reason=np.ones(6, np.int32))
  rollout_lib.check_prompt_groups(rollout, 1)
  with pytest.raises(ValueError, match="rows 4..5 form one group"):
    rollout_lib.check_prompt_groups(rollout, 2)
  with pytest.raises(ValueError, match="not whole groups of 4"):
    rollout_lib.check_prompt_groups(rollout, 4)
