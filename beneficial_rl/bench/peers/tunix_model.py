"""The workload model and a toy tokenizer for the Tunix drivers.

Tunix's samplers and RL cluster take text prompts and a tokenizer. No
tokenizer can be downloaded here, so `IdTokenizer` maps a prompt written as
space-separated token ids ("17 4051 ...") to those ids and back: the model
sees exactly the random ids of the workload. Its pad / EOS id is
`vocab_size` (4096), one past the model's vocabulary, so a sampled token can
never be taken for padding or end of sequence (no early stop, every row
decodes all 64 steps); that id is never fed to the model because every prompt
is exactly 64 tokens and every completion exactly 64 tokens.

Differences from the workload that Tunix 0.1.7 imposes, recorded in the
drivers' JSON: its Llama attention applies RoPE with the function's default
theta (1e6) whatever `ModelConfig.rope_theta` says (same cost), and it
initialises the MLP kernels to zeros, which `build_model` replaces with
normal(0, 1 / sqrt(fan_in)) draws so the weights are random as in the
workload (same cost either way on CPU).
"""

from __future__ import annotations

from typing import Any

import peer_common

NOTES = [
    "Tunix 0.1.7 Llama applies RoPE with theta 1e6 (its apply_rope default); "
    "ModelConfig.rope_theta=1e4 is not passed through. Same cost.",
    "MLP kernels re-drawn at random (Tunix initialises them to zeros).",
    "Prompts go through a toy id tokenizer (text of space-separated ids).",
]


class IdTokenizer:
  """Text of space-separated ids <-> ids; pad = EOS = vocab_size."""

  def __init__(self, vocab_size: int):
    self._special = vocab_size

  def encode(self, text: str, **unused_kwargs: Any) -> list[int]:
    return [int(t) for t in text.split()]

  def decode(self, ids: Any, **unused_kwargs: Any) -> str:
    return " ".join(str(int(i)) for i in ids)

  def bos_id(self) -> None:
    return None

  def eos_id(self) -> int:
    return self._special

  def pad_id(self) -> int:
    return self._special


def prompt_texts(rows: int, seed: int) -> list[str]:
  """`rows` prompts of 64 random ids each, written as text."""
  ids = peer_common.random_prompts(rows, seed)
  return [" ".join(str(int(t)) for t in row) for row in ids]


def model_config():
  """tunix Llama3 ModelConfig for the workload."""
  from tunix.models.llama3 import model as llama3  # pylint: disable=g-import-not-at-top
  w = peer_common.WORKLOAD
  return llama3.ModelConfig(
      num_layers=w["num_layers"], vocab_size=w["vocab_size"],
      embed_dim=w["hidden_size"], hidden_dim=w["mlp_dim"],
      num_heads=w["num_heads"], head_dim=w["head_dim"],
      num_kv_heads=w["num_kv_heads"], rope_theta=int(w["rope_theta"]),
      norm_eps=w["norm_eps"], weight_tying=False)


def build_model(seed: int):
  """tunix `Llama3` with random float32 weights (seed `seed`)."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from tunix.models.llama3 import model as llama3  # pylint: disable=g-import-not-at-top
  model = llama3.Llama3(model_config(), rngs=nnx.Rngs(params=seed))
  key = jax.random.key(seed + 1)
  for i, layer in enumerate(model.layers):
    for j, proj in enumerate((layer.mlp.gate_proj, layer.mlp.up_proj,
                              layer.mlp.down_proj)):
      shape = proj.kernel.value.shape
      proj.kernel.value = jax.random.normal(
          jax.random.fold_in(key, 3 * i + j), shape) * shape[0] ** -0.5
  return model
