"""Rollouts: prompt batches from a mixture, sampling, and the training forward.

One RL step's data flows through here:

  PromptStream   batch i of a SeqIO mixture, a function of (seed, i) only:
                 B prompts left-padded to a fixed width P, with their ids,
                 data sources, traits and domains;
  sample         G completions per prompt from `models.sampler.Sampler`
                 (rows prompt-major, row = i * G + j), copied to the host;
  decode_responses  the text of each completion via the chat template;
  reward_metrics, monitor_rows, rollout_metrics  what the trainer logs
                 about the rewards and completions of a step;
  sequence_batch prompt + completion as one int32[N, P + T] row per sample;
  policy_forward log-probs (and values) of the T completion tokens under some
                 params: one decoder pass over the P + T - 1 inputs, with the
                 vocabulary projection applied to the last T positions only.

Fixed shapes everywhere (P, T, N) are what keeps every jitted program at one
compilation for the whole run.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable, Iterator, Mapping, Sequence

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from beneficial_rl.data import chat
from beneficial_rl.grading import monitor as monitor_lib
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import kv_cache as kv_cache_lib
from beneficial_rl.models import sampler as sampler_lib
from beneficial_rl.models import transformer as transformer_lib
from beneficial_rl.parallel import remat as remat_lib

Array = jax.Array
PyTree = Any


# ------------------------------------------------------------------ prompts --


def _text(x: Any) -> str:
  return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def left_pad(sequences: Sequence[Sequence[int]], width: int
             ) -> tuple[np.ndarray, np.ndarray]:
  """int32[B, width] rows left-padded with 0, and int32[B] lengths.

  Longer sequences keep their last `width` tokens (the end of a chat prompt is
  the generation header, which must stay).
  """
  tokens = np.zeros((len(sequences), width), np.int32)
  lengths = np.zeros(len(sequences), np.int32)
  for b, seq in enumerate(sequences):
    seq = np.asarray(seq, np.int32)[-width:]
    if seq.size == 0:
      raise ValueError(f"prompt {b} is empty")
    tokens[b, width - seq.size:] = seq
    lengths[b] = seq.size
  return tokens, lengths


@dataclasses.dataclass(frozen=True)
class PromptBatch:
  """B prompts of one RL step.

  Attributes:
    tokens: int32[B, P], left-padded with 0.
    lengths: int32[B], real prompt lengths.
    ids / sources / traits / domains: per-prompt strings ('' when unset).
  """
  tokens: np.ndarray
  lengths: np.ndarray
  ids: tuple[str, ...]
  sources: tuple[str, ...]
  traits: tuple[str, ...]
  domains: tuple[str, ...]

  @classmethod
  def from_examples(cls, examples: Sequence[Mapping[str, Any]],
                    width: int) -> "PromptBatch":
    """From mixture examples {'inputs', 'id', 'source', 'trait', 'domain'}."""
    tokens, lengths = left_pad([ex["inputs"] for ex in examples], width)
    field = lambda k: tuple(_text(ex.get(k, b"")) for ex in examples)
    return cls(tokens, lengths, field("id"), field("source"), field("trait"),
               field("domain"))

  def repeat(self, n: int) -> "PromptBatch":
    """Each prompt's metadata repeated n times (prompt-major rows)."""
    rep = lambda xs: tuple(x for x in xs for _ in range(n))
    return PromptBatch(np.repeat(self.tokens, n, axis=0),
                       np.repeat(self.lengths, n), rep(self.ids),
                       rep(self.sources), rep(self.traits), rep(self.domains))


class PromptStream:
  """Batches of `batch_size` prompts; batch i depends only on (data, i).

  `examples` must be a deterministic, endless iterable (e.g. a seeded SeqIO
  mixture with num_epochs=None); the stream skips `start * batch_size`
  examples, so a resumed run re-creates the exact batches it would have seen.
  """

  def __init__(self, examples: Iterable[Mapping[str, Any]], *,
               batch_size: int, width: int, start: int = 0):
    self._it = iter(examples)
    self.batch_size, self.width = batch_size, width
    self.position = start

  def __iter__(self) -> Iterator[PromptBatch]:
    return self

  def __next__(self) -> PromptBatch:
    examples = list(itertools.islice(self._it, self.batch_size))
    if len(examples) < self.batch_size:
      raise StopIteration
    self.position += 1
    return PromptBatch.from_examples(examples, self.width)


def mixture_stream(mixture: str, *, split: str, seed: int, width: int,
                   batch_size: int, start: int = 0) -> PromptStream:
  """A `PromptStream` over a registered SeqIO mixture (shuffled, endless)."""
  # Imported here: seqio pulls in TensorFlow, which only the trainer needs.
  import seqio  # pylint: disable=g-import-not-at-top
  ds = seqio.get_mixture_or_task(mixture).get_dataset(
      sequence_length={"inputs": width}, split=split, shuffle=True,
      seed=seed, num_epochs=None, use_cached=False)
  ds = ds.skip(start * batch_size)
  return PromptStream(ds.as_numpy_iterator(), batch_size=batch_size,
                      width=width, start=start)


# ----------------------------------------------------------------- sampling --


@dataclasses.dataclass(frozen=True)
class Rollout:
  """N = B * G completions on the host, prompt-major.

  Attributes:
    prompt_tokens: int32[N, P] left-padded prompts.
    prompt_lengths: int32[N].
    tokens: int32[N, T] completions (pad after `lengths`).
    logprobs: float32[N, T] sampler log-probs (tempered), 0 after `lengths`.
    mask: bool[N, T], True on the `lengths[n]` completion tokens.
    lengths: int32[N], completion lengths (stop token included).
    stop_reason: int32[N], `sampler.StopReason` values.
  """
  prompt_tokens: np.ndarray
  prompt_lengths: np.ndarray
  tokens: np.ndarray
  logprobs: np.ndarray
  mask: np.ndarray
  lengths: np.ndarray
  stop_reason: np.ndarray

  @property
  def num_rows(self) -> int:
    return int(self.tokens.shape[0])


def to_host(tree: PyTree) -> PyTree:
  """Numpy copies of (possibly multi-host sharded) arrays."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def sample(sampler: sampler_lib.Sampler, params: PyTree, prompts: PromptBatch,
           key: Array, sampling: sampler_lib.SamplingConfig) -> Rollout:
  """`sampling.n` completions of every prompt, gathered to the host."""
  out = sampler(params, prompts.tokens, key, sampling,
                lengths=prompts.lengths, padding_side="left")
  out = to_host(out)
  return Rollout(prompt_tokens=np.asarray(out.prompt_tokens, np.int32),
                 prompt_lengths=np.asarray(out.prompt_lengths, np.int32),
                 tokens=np.asarray(out.tokens, np.int32),
                 logprobs=np.asarray(out.logprobs, np.float32),
                 mask=np.asarray(out.mask, bool),
                 lengths=np.asarray(out.lengths, np.int32),
                 stop_reason=np.asarray(out.stop_reason, np.int32))


def decode_responses(template: chat.ChatTemplate, vocab: chat.TokenVocabulary,
                     rollout: Rollout) -> list[str]:
  """Response text of each row, up to (not including) its stop token."""
  return [template.decode_response(vocab, rollout.tokens[i, :n])
          for i, n in enumerate(rollout.lengths)]


# ------------------------------------------------------------------ metrics --


def _mean(x: np.ndarray) -> float:
  return float(np.mean(x)) if np.size(x) else math.nan


def reward_metrics(rewards: np.ndarray, rows: PromptBatch,
                   rubric: bool) -> dict[str, float]:
  """Mean reward overall, per data source and per trait (NaN rows skipped).

  Args:
    rewards: float32[N], NaN for unscorable responses.
    rows: the prompt of each row (`PromptBatch.repeat(G)`).
    rubric: scenario rewards are rubric scores: per-trait means are logged
      as 'rubric/<trait>', else as 'reward/trait/<trait>'.

  Returns:
    {name: value}; a mean over no rows is NaN.
  """
  valid = np.isfinite(rewards)
  out = {"reward/mean": _mean(rewards[valid]),
         "reward/valid_fraction": float(valid.mean())}
  src, trait = np.asarray(rows.sources), np.asarray(rows.traits)
  for source in sorted(set(rows.sources)):
    sel = src == source
    out[f"reward/{source}"] = _mean(rewards[sel & valid])
    out[f"reward/{source}/valid_fraction"] = float(valid[sel].mean())
  for t in sorted(set(rows.traits) - {""}):
    name = f"rubric/{t}" if rubric else f"reward/trait/{t}"
    out[name] = _mean(rewards[(trait == t) & valid])
  return out


def monitor_rows(rows: PromptBatch, sources: set[str], sample_size: int,
                 seed: int, step: int) -> list[int]:
  """Rows of the monitored `sources` to grade with the gold reward.

  At most `sample_size`, drawn deterministically from (seed, step) so a
  resumed run grades the same rows.
  """
  candidates = [i for i, s in enumerate(rows.sources) if s in sources]
  if not candidates:
    return []
  return [candidates[i] for i in monitor_lib.sample_indices(
      len(candidates), sample_size, seed, step)]


def monitor_state_to_json(state: monitor_lib.MonitorState) -> dict[str, Any]:
  """The monitor's state for a checkpoint (NaN EMAs become null)."""
  return {k: (None if isinstance(v, float) and math.isnan(v) else v)
          for k, v in dataclasses.asdict(state).items()}


def monitor_state_from_json(d: Mapping[str, Any]) -> monitor_lib.MonitorState:
  return monitor_lib.MonitorState(**{k: (math.nan if v is None else v)
                                     for k, v in d.items()})


def rollout_metrics(rows: PromptBatch, rollout: Rollout,
                    seconds: Mapping[str, float]) -> dict[str, float]:
  """Response lengths, truncation, tokens/s and seconds per phase."""
  lengths = rollout.lengths.astype(np.float64)
  tokens = float(lengths.sum())
  out = {"rollout/response_length": float(lengths.mean()),
         "rollout/truncated_fraction": float(np.mean(
             rollout.stop_reason == int(sampler_lib.StopReason.LENGTH))),
         "throughput/completion_tokens_per_s": tokens / max(
             seconds["rollout"], 1e-9),
         "throughput/step_tokens_per_s": tokens / max(
             sum(seconds.values()), 1e-9)}
  src = np.asarray(rows.sources)
  for source in sorted(set(rows.sources)):
    out[f"rollout/response_length/{source}"] = float(
        lengths[src == source].mean())
  out.update({f"time/{k}_s": v for k, v in seconds.items()})
  return out


# ------------------------------------------------------------ forward pass --


def sequence_batch(rollout: Rollout) -> dict[str, np.ndarray]:
  """Host arrays of the training forward.

  Returns:
    tokens: int32[N, P + T] prompt then completion.
    token_mask: bool[N, P + T] real tokens (prompt and completion).
    completion_mask: bool[N, T].
    sampler_logp: float32[N, T].
  """
  p = rollout.prompt_tokens.shape[1]
  prompt_mask = np.arange(p)[None, :] >= (p - rollout.prompt_lengths)[:, None]
  return {
      "tokens": np.concatenate([rollout.prompt_tokens, rollout.tokens], 1),
      "token_mask": np.concatenate([prompt_mask, rollout.mask], 1),
      "completion_mask": rollout.mask,
      "sampler_logp": np.where(rollout.mask, rollout.logprobs, 0.0).astype(
          np.float32),
  }



def check_prompt_groups(rollout: Rollout, group_size: int) -> None:
  """Checks that rows i * G .. i * G + G - 1 share prompt tokens and length.

  The shared-prompt forward (`policy_forward(prefix_group=)`) relies on it.

  Raises:
    ValueError: naming the first group whose rows differ.
  """
  tokens = np.asarray(rollout.prompt_tokens)
  lengths = np.asarray(rollout.prompt_lengths)
  if tokens.shape[0] % group_size:
    raise ValueError(f"{tokens.shape[0]} rollout rows are not whole groups "
                     f"of {group_size}")
  t = tokens.reshape(-1, group_size, tokens.shape[1])
  n = lengths.reshape(-1, group_size)
  same = (t == t[:, :1]).all(axis=(1, 2)) & (n == n[:, :1]).all(axis=1)
  if not same.all():
    bad = int(np.argmin(same))
    first, last = bad * group_size, (bad + 1) * group_size - 1
    raise ValueError(f"rollout rows {first}..{last} form one group but their "
                     "prompts differ; rows must be prompt-major (row = "
                     "prompt * group_size + sample)")


def policy_forward(cfg: config_lib.TransformerConfig, params: PyTree,
                   tokens: Array, token_mask: Array, num_completion: int, *,
                   with_value: bool = False, remat: str = "none",
                   prefix_group: int = 1
                   ) -> tuple[Array, Array | None]:
  """Logits (and values) at the positions that predict the completion.

  With `prefix_group` = g > 1, every g consecutive rows must share their
  prompt (left-padded, as `sequence_batch` makes it), as the G samples of a
  GRPO group do. The prompt is then run once per group, its keys and values
  are repeated g times, and the completions attend to them
  (`shared_prefix_hidden`): the same function, with the prompt's share of the
  FLOPs divided by g. Gradients reach the prompt through its keys and values.

  Args:
    cfg: the policy's shape.
    params: {'decoder', 'lm_head'?} and, with_value, 'value_head' float[D, 1]
      and 'value_bias' float[1] (the PPO critic shares the decoder).
    tokens: int32[N, P + T] from `sequence_batch`.
    token_mask: bool[N, P + T].
    num_completion: T.
    with_value: also return values.
    remat: 'none' or a `parallel.remat` policy for the decoder blocks.
    prefix_group: g, rows per shared prompt (N divisible by g); 1 runs every
      row in full.

  Returns:
    (float32[N, T, V] logits predicting tokens[:, P:], float32[N, T] values
    V(s_t) of the state before completion token t, or None).
  """
  inputs, mask = tokens[:, :-1], token_mask[:, :-1]
  positions = transformer_lib.default_positions(mask)
  decoder = transformer_lib.Decoder(cfg)

  def run():
    if prefix_group > 1:
      return shared_prefix_hidden(decoder, params["decoder"], inputs, mask,
                                  positions, num_completion, prefix_group)
    hidden, _ = decoder.apply({"params": params["decoder"]}, inputs,
                              positions, token_mask=mask,
                              num_outputs=num_completion)
    return hidden

  if remat == "none":
    hidden = run()
  else:
    with remat_lib.remat_blocks(remat):
      hidden = run()
  logits = sampler_lib.policy_logits(cfg, params, hidden)
  if not with_value:
    return logits, None
  w = params["value_head"].astype(jnp.float32)
  values = (hidden.astype(jnp.float32) @ w + params["value_bias"])[..., 0]
  return logits, values


def shared_prefix_hidden(decoder: transformer_lib.Decoder, params: PyTree,
                         inputs: Array, mask: Array, positions: Array,
                         num_completion: int, group: int) -> Array:
  """Hidden states [N, T, D] of the last T inputs, the prefix run per group.

  The first L - T inputs (the prompt, left-padded) of rows i * g .. i * g +
  g - 1 are taken from row i * g and prefilled into a KV cache of L slots;
  the cache is repeated g times and the last T inputs of every row run
  against it. Equal to the last T positions of one full pass over [N, L]
  whenever the rows of a group share their prefix.

  Args:
    decoder: the policy's `Decoder`.
    params: its parameters.
    inputs, mask, positions: [N, L] tokens, bool real-token mask and
      positions of the full rows.
    num_completion: T.
    group: g.
  """
  n, length = inputs.shape
  if n % group:
    raise ValueError(f"{n} rows do not split into prefix groups of {group}")
  p = length - num_completion
  first = lambda x: x.reshape(n // group, group, *x.shape[1:])[:, 0, :p]
  prefix_mask = first(mask)
  start = p - prefix_mask.astype(jnp.int32).sum(axis=1)  # Left padding.
  cache = kv_cache_lib.init_cache(decoder.cfg, n // group, length, start)
  # Only the prefix's keys and values are used: its last block runs one
  # position.
  _, cache = decoder.apply({"params": params}, first(inputs),
                           first(positions), cache=cache, num_outputs=1)
  repeat = lambda x: jnp.repeat(x, group, axis=0)
  cache = kv_cache_lib.KVCache(
      layers=jax.tree.map(repeat, cache.layers),
      start_index=repeat(cache.start_index), end_index=cache.end_index)
  hidden, _ = decoder.apply({"params": params}, inputs[:, p:],
                            positions[:, p:], cache=cache)
  return hidden


def completion_logprobs(logits: Array, tokens: Array,
                        temperature: float) -> Array:
  """float32[N, T] log-probs of the completion tokens int32[N, T] under the
  tempered policy softmax(logits / temperature), as the sampler reports."""
  return transformer_lib.token_logprobs(logits / temperature, tokens)
