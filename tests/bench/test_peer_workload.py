"""Plumbing of the peer-workload bench at tiny sizes (no timing assertions),
and the decode attention it relies on against plain softmax attention."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from beneficial_rl.bench import peer_workload
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import layers
from beneficial_rl.models import transformer as transformer_lib

TINY = peer_workload.Workload(preset="tiny", sample_prompts=2, prompt_len=8,
                              new_tokens=4, grpo_prompts=2, group_size=2)


@pytest.fixture(scope="module")
def result():
  return peer_workload.run(TINY, runs=2, warmup=1)


def test_sampler_part_counts_tokens_programs_and_compiles(result):
  s = result["sampler"]
  assert s["tokens_per_run"] == 2 * 4  # No EOS: every row runs T steps.
  assert s["compiles_after_warmup"] == 0
  assert s["device_programs_per_call"] == 1
  t = s["tokens_per_s"]
  assert t["min"] <= t["median"] <= t["max"]
  assert s["seconds"]["min"] <= s["seconds"]["max"]


def test_grpo_part_steps_once_per_run_and_splits_phases(result):
  g = result["grpo"]
  assert g["completions"] == 4
  assert g["optimizer_steps"] == 1 + 2  # Warm-up plus timed runs.
  assert g["compiles_after_warmup"] == 0
  assert g["shared_prompt_forward"] is True
  secs = g["seconds"]
  assert set(secs) == {"generation", "reference_reward", "update", "total"}
  parts = sum(secs[k]["min"] for k in ("generation", "reference_reward",
                                       "update"))
  assert parts <= secs["total"]["max"] + 1e-6


def test_shared_prompt_step_equals_the_full_step():
  """`--no_shared_prompt` is an A/B switch: the same update either way."""
  cfg = config_lib.get_preset(TINY.preset)
  params = transformer_lib.init_params(transformer_lib.Transformer(cfg),
                                       jax.random.key(0))
  prompts = np.random.default_rng(0).integers(
      0, cfg.vocab_size, (TINY.grpo_prompts, TINY.prompt_len)).astype(np.int32)
  new = {}
  for shared in (False, True):
    parts = peer_workload.build_grpo(TINY, params, shared_prompt=shared)
    new[shared], _ = peer_workload.grpo_step(TINY, parts, parts[4], prompts,
                                             jax.random.key(1))
  # Adam's first step moves weights by about lr * sign(gradient), which
  # rounding can flip for near-zero gradients; the moments hold the
  # gradients themselves (mu = 0.1 g, nu = 0.001 g^2).
  for a, b in zip(jax.tree.leaves(new[False].opt_state),
                  jax.tree.leaves(new[True].opt_state)):
    scale = float(np.max(np.abs(np.asarray(a, np.float64))))
    np.testing.assert_allclose(b, a, atol=1e-5 * scale)
  moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(p))))
              for a, p in zip(jax.tree.leaves(new[True].params),
                              jax.tree.leaves(params)))
  assert moved > 1e-6  # The step did update the params.


def test_result_records_workload_and_is_json(result):
  assert result["workload"]["preset"] == "tiny"
  assert result["workload"]["kl_coef"] == 0.04
  text = json.dumps(result)
  assert json.loads(text)["runs"] == 2
  report = peer_workload.format_report(result)
  assert "compiles after warm-up 0" in report
  assert "reference_reward" in report


def test_constant_time_reward_is_even_fraction_of_real_tokens():
  tokens = np.array([[2, 3, 4, 9], [1, 1, 6, 8]])
  mask = np.array([[True, True, True, False], [True, False, False, False]])
  np.testing.assert_allclose(
      peer_workload.constant_time_reward(tokens, mask), [2 / 3, 0.0])


def test_add_xla_flags_appends_once(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_foo=1")
  peer_workload.add_xla_flags(("--xla_bar=true",))
  peer_workload.add_xla_flags(("--xla_bar=true",))
  assert os.environ["XLA_FLAGS"] == "--xla_foo=1 --xla_bar=true"


def test_mesh_run_records_mesh_and_keeps_guarantees():
  """Data-parallel over 2 of the test's 8 host devices, as
  `--host_devices=2` runs it."""
  mesh = peer_workload.make_bench_mesh("", 2)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 1, "tensor": 1}
  r = peer_workload.run(TINY, runs=1, warmup=1, mesh=mesh)
  assert r["mesh"] == {"data": 2, "fsdp": 1, "tensor": 1}
  assert r["sampler"]["tokens_per_run"] == 2 * 4
  assert r["sampler"]["compiles_after_warmup"] == 0
  assert r["sampler"]["device_programs_per_call"] == 1
  assert r["grpo"]["compiles_after_warmup"] == 0
  assert r["grpo"]["optimizer_steps"] == 2


def test_set_host_devices_before_and_after_backend_start():
  """In a fresh process the backend comes up with the asked-for count; once
  it has started, a different count is refused instead of ignored."""
  code = ("from beneficial_rl.bench import peer_workload as p\n"
          "p.set_host_devices(3)\n"
          "import jax\n"
          "print(jax.device_count())\n"
          "try:\n"
          "  p.set_host_devices(2)\n"
          "except RuntimeError:\n"
          "  print('refused')\n")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, env=env).stdout.split()
  assert out == ["3", "refused"]


def test_make_bench_mesh_sizes_and_errors():
  assert peer_workload.make_bench_mesh("", 1) is None
  mesh = peer_workload.make_bench_mesh("data=1,fsdp=1,tensor=2", 1)
  assert dict(mesh.shape) == {"data": 1, "fsdp": 1, "tensor": 2}
  with pytest.raises(ValueError, match="needs 64 device"):
    peer_workload.make_bench_mesh("", 64)
  with pytest.raises(ValueError, match="not NAME=SIZE"):
    peer_workload.make_bench_mesh("data2", 2)


@pytest.mark.parametrize("kv,softcap,t", [(2, None, 1), (2, 5.0, 1),
                                          (8, None, 1), (2, None, 3)])
def test_grouped_attention_matches_softmax_attention(kv, softcap, t):
  """The cached formulation (keys [B, K, H, S], values [B, K, S, H], two
  batched matmuls) equals softmax attention with masked slots."""
  b, s, g, h = 3, 7, 2, 4
  cfg = config_lib.get_preset("tiny", num_heads=kv * g, num_kv_heads=kv,
                              head_dim=h, attn_softcap=softcap)
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (b, t, kv, g, h))
  k = jax.random.normal(keys[1], (b, s, kv, h))
  v = jax.random.normal(keys[2], (b, s, kv, h))
  slots = jnp.arange(s)[None, None, :]
  first = jnp.array([0, 2, 4])[:, None, None]
  mask = (slots >= first) & (slots <= 4 + jnp.arange(t)[None, :, None])
  # pylint: disable-next=protected-access
  got = layers._grouped_attention(cfg, q, jnp.transpose(k, (0, 2, 3, 1)),
                                 jnp.swapaxes(v, 1, 2), mask)

  scores = np.einsum("btkgh,bskh->btkgs", q, k)
  if softcap:
    scores = softcap * np.tanh(scores / softcap)
  scores = np.where(np.asarray(mask)[:, :, None, None, :], scores, -np.inf)
  probs = np.exp(scores - scores.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  want = np.einsum("btkgs,bskh->btkgh", probs, v)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
