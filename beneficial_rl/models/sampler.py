"""Batched autoregressive sampling over the explicit KV cache.

Pipeline of one `Sampler.__call__` (a single jitted program per static shape):
  1. host: ragged / right- / left-padded prompts are left-padded into a length
     bucket, so that every row's last prompt token sits in the same slot and
     all rows share one cache write position (see `kv_cache.py`);
  2. prefill: one forward pass over the [B, P] prompts fills the cache; only
     the last slot's logits are projected to the vocabulary; the cache is then
     repeated `n` times (prompt-major) and the first token is sampled;
  3. decode: a `lax.while_loop` feeds one token per row per iteration and
     stops as soon as every row is done. No host round-trip per token.

Log-probabilities returned for a sampled token are
`log_softmax(logits / temperature)[token]`, computed *before* top-k / top-p
filtering (temperature 1 under greedy decoding). This is the log-probability
of the token under the tempered policy that RL objectives differentiate.

A completion includes the EOS token or stop sequence that ended it; `mask`
covers exactly those `lengths[b]` tokens, and later slots hold `pad_id`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from typing import Any, Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from beneficial_rl.models import config as config_lib
from beneficial_rl.models import dense as dense_lib
from beneficial_rl.models import kv_cache as kv_cache_lib
from beneficial_rl.models import sampling_ops
from beneficial_rl.models.prompt_packing import default_buckets  # pylint: disable=unused-import
from beneficial_rl.models.prompt_packing import pack_prompts  # pylint: disable=unused-import
from beneficial_rl.models.prompt_packing import Prompts
from beneficial_rl.models.sampling_ops import argmax_first  # pylint: disable=unused-import
from beneficial_rl.models.sampling_ops import row_uniforms  # pylint: disable=unused-import
from beneficial_rl.models.sampling_ops import sample_categorical  # pylint: disable=unused-import
from beneficial_rl.models import transformer as transformer_lib

Array = jax.Array


class StopReason(enum.IntEnum):
  """Why a row stopped (values of `SampleOutput.stop_reason`)."""
  LENGTH = 0         # Reached max_new_tokens.
  EOS = 1            # Sampled one of `eos_ids`.
  STOP_SEQUENCE = 2  # The completion ended with one of `stop_sequences`.


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """What to sample. Hashable; fields marked static select a compiled program.

  Attributes:
    max_new_tokens: T, completion length budget (static).
    temperature: logits are divided by it; 0 means greedy (dynamic).
    greedy: argmax decoding (static).
    top_k: keep the k most likely tokens before sampling (static).
    top_p: nucleus sampling mass in (0, 1] (value dynamic, on/off static).
    eos_ids: tokens that end a row (values dynamic, count static).
    stop_sequences: token sequences that end a row when the completion ends
      with one of them (values dynamic, shapes static).
    n: samples per prompt; output row i * n + j is sample j of prompt i.
    pad_id: filler of completion slots after a row stopped.
  """
  max_new_tokens: int = 64
  temperature: float = 1.0
  greedy: bool = False
  top_k: int | None = None
  top_p: float | None = None
  eos_ids: tuple[int, ...] = ()
  stop_sequences: tuple[tuple[int, ...], ...] = ()
  n: int = 1
  pad_id: int = 0

  def __post_init__(self):
    def fail(field: str, msg: str):
      value = getattr(self, field)
      raise ValueError(f"SamplingConfig.{field}={value!r}: {msg}")
    if self.max_new_tokens < 1:
      fail("max_new_tokens", "must be >= 1")
    if self.temperature < 0:
      fail("temperature", "must be >= 0")
    if self.top_k is not None and self.top_k < 1:
      fail("top_k", "must be >= 1 or None")
    if self.top_p is not None and not 0 < self.top_p <= 1:
      fail("top_p", "must be in (0, 1] or None")
    if self.n < 1:
      fail("n", "must be >= 1")
    if any(len(s) == 0 for s in self.stop_sequences):
      fail("stop_sequences", "contains an empty sequence")
    if any(t < 0 for s in (self.eos_ids, *self.stop_sequences) for t in s):
      fail("eos_ids" if any(t < 0 for t in self.eos_ids) else
           "stop_sequences", "token ids must be >= 0")
    # Normalise lists given by callers so that the config stays hashable.
    object.__setattr__(self, "eos_ids", tuple(int(t) for t in self.eos_ids))
    object.__setattr__(self, "stop_sequences", tuple(
        tuple(int(t) for t in s) for s in self.stop_sequences))

  @property
  def is_greedy(self) -> bool:
    return self.greedy or self.temperature == 0

  def replace(self, **changes: Any) -> SamplingConfig:
    return dataclasses.replace(self, **changes)


@flax.struct.dataclass
class SamplingState:
  """Carry of the decode loop. R = padded batch x n rows, T = max_new_tokens.

  `recent` holds the last L completion tokens (-1 before any), L the longest
  stop sequence; step s draws its randomness from `fold_in(key, s)`.
  """
  cache: kv_cache_lib.KVCache  # R rows; the prompts end at slot P - 1.
  last_tokens: Array           # int32[R], fed at the next step.
  step: Array                  # int32[], completion tokens produced so far.
  tokens: Array                # int32[R, T], pad_id after a row stopped.
  logprobs: Array              # float32[R, T], 0 after a row stopped.
  done: Array                  # bool[R], stopped (or batch padding).
  lengths: Array               # int32[R], completion lengths.
  stop_reason: Array           # int32[R], `StopReason` values.
  recent: Array                # int32[R, L]
  prompt_tokens: Array         # int32[R, P], left-padded with id 0.
  key: Array                   # PRNG key.


@flax.struct.dataclass
class SampleOutput:
  """Completions of B prompts x n samples; row i * n + j is sample j of i.

  `logprobs` are defined in the module docstring. Slot j of `prompt_tokens`
  row b is a real token iff j >= P - prompt_lengths[b] (padding is id 0).
  """
  tokens: Array          # int32[B*n, T], pad_id beyond `lengths`.
  logprobs: Array        # float32[B*n, T], 0 beyond `lengths`.
  mask: Array            # bool[B*n, T], True on real completion tokens.
  lengths: Array         # int32[B*n], EOS / stop-sequence tokens included.
  stop_reason: Array     # int32[B*n], `StopReason` values.
  prompt_tokens: Array   # int32[B*n, P], prompts left-padded to bucket P.
  prompt_lengths: Array  # int32[B*n]

  def completions(self) -> list[list[int]]:
    """Real completion tokens of each row, as Python lists (host copy)."""
    tokens, lengths = np.asarray(self.tokens), np.asarray(self.lengths)
    return [tokens[i, :lengths[i]].tolist() for i in range(len(lengths))]


def _cast_matrices(cfg: config_lib.TransformerConfig, params):
  """Casts weight matrices to the compute dtype once, outside the loop."""
  dt = cfg.compute_dtype
  return jax.tree.map(
      lambda x: x.astype(dt) if x.ndim >= 2 and x.dtype != dt else x, params)


def policy_logits(cfg: config_lib.TransformerConfig, params,
                  hidden: Array) -> Array:
  """float32[..., V] logits of the policy head from hidden states [..., D].

  Mirrors `Transformer(head='policy')`, so that prefill can project only the
  last slot instead of all P prompt positions.
  """
  if cfg.tie_embeddings:
    w = params["decoder"]["embedding"].astype(hidden.dtype).T
  else:
    w = params["lm_head"].astype(cfg.compute_dtype)
  logits = dense_lib.dense(hidden, w).astype(jnp.float32)
  if cfg.logit_softcap is not None:
    logits = cfg.logit_softcap * jnp.tanh(logits / cfg.logit_softcap)
  return logits


def choose_tokens(logits: Array, key: Array, temperature: Array,
                  top_p: Array, sampling: SamplingConfig
                  ) -> tuple[Array, Array]:
  """Samples one token per row. Returns (int32[R], float32[R] logprobs).

  A full-vocabulary sort happens only for top-p without top-k; with top-k
  the draw is among its k candidates.
  """
  if sampling.is_greedy:
    scaled = logits
    tokens = sampling_ops.argmax_first(logits)
  else:
    scaled = logits / temperature
    if sampling.top_k is None and sampling.top_p is None:
      # The draw's own exponentials normalise the log-prob.
      return sampling_ops.sample_categorical(key, scaled, with_logprob=True)
    k = min(sampling.top_k or logits.shape[-1], logits.shape[-1])
    vals, idx = jax.lax.top_k(scaled, k)  # Sorted, descending.
    if sampling.top_p is not None:
      probs = jax.nn.softmax(vals, axis=-1)
      mass_before = jnp.cumsum(probs, axis=-1) - probs
      vals = jnp.where(mass_before < top_p, vals, -jnp.inf)
    choice = sampling_ops.sample_categorical(key, vals)
    tokens = jnp.take_along_axis(idx, choice[:, None], axis=-1)[:, 0]
  tokens = tokens.astype(jnp.int32)
  picked = jnp.take_along_axis(scaled, tokens[:, None], axis=-1)[:, 0]
  return tokens, picked - jax.nn.logsumexp(scaled, axis=-1)


def runtime_knobs(sampling: SamplingConfig) -> tuple[np.ndarray, ...]:
  """Sampling inputs that vary without recompiling.

  Returns (temperature f32[], top_p f32[], EOS ids int32[E], stop sequences
  int32[S, L] right-aligned with -1 meaning "any token").
  """
  longest = max((len(q) for q in sampling.stop_sequences), default=0)
  stops = np.full((len(sampling.stop_sequences), longest), -1, np.int32)
  for i, q in enumerate(sampling.stop_sequences):
    stops[i, longest - len(q):] = q
  return (np.float32(sampling.temperature or 1.0),
          np.float32(sampling.top_p or 1.0),
          np.asarray(sampling.eos_ids, np.int32).reshape(-1), stops)


def _record(state: SamplingState, tokens: Array, logprobs: Array,
            eos: Array, stops: Array, sampling: SamplingConfig
            ) -> SamplingState:
  """Writes column `state.step` and updates the stop bookkeeping."""
  active = ~state.done
  step = state.step
  recent = state.recent
  if stops.shape[0]:
    recent = jnp.where(active[:, None], jnp.concatenate(
        [recent[:, 1:], tokens[:, None]], axis=1), recent)
    hit_stop = jnp.all((stops[None] < 0) | (recent[:, None, :] == stops[None]),
                       axis=-1).any(axis=-1)
  else:
    hit_stop = jnp.zeros_like(active)
  hit_eos = (tokens[:, None] == eos[None, :]).any(axis=-1)
  reason = jnp.where(hit_eos, int(StopReason.EOS),
                     jnp.where(hit_stop, int(StopReason.STOP_SEQUENCE),
                               state.stop_reason))
  stopped = hit_eos | hit_stop | (step + 1 >= sampling.max_new_tokens)
  column = jnp.where(active, tokens, sampling.pad_id)
  return state.replace(
      last_tokens=tokens,
      step=step + 1,
      tokens=jax.lax.dynamic_update_slice(state.tokens, column[:, None],
                                          (0, step)),
      logprobs=jax.lax.dynamic_update_slice(
          state.logprobs, jnp.where(active, logprobs, 0.0)[:, None],
          (0, step)),
      done=state.done | stopped,
      lengths=jnp.where(active, step + 1, state.lengths),
      stop_reason=jnp.where(active, reason, state.stop_reason),
      recent=recent)


class Sampler:
  """Samples completions from a policy `Transformer`'s params.

  Compiled programs are cached on the object, keyed by the static shapes
  (batch, prompt bucket, max_new_tokens, n, static sampling options), so a new
  prompt length inside a known bucket reuses a program.

    sampler = Sampler(cfg)
    out = sampler(params, [[5, 6, 7], [8]], jax.random.key(0),
                  SamplingConfig(max_new_tokens=32, n=4, eos_ids=(1,)))
  """

  def __init__(self, cfg: config_lib.TransformerConfig, *,
               prompt_buckets: Sequence[int] | None = None,
               mesh: jax.sharding.Mesh | None = None,
               batch_axes: str | Sequence[str] = ("data",)):
    """Args:
      cfg: the policy's config; `max_seq_len` bounds prompt + completion.
      prompt_buckets: allowed padded prompt lengths (default
        `default_buckets(cfg.max_seq_len)`).
      mesh: optional mesh; rows are sharded over `batch_axes`, params are
        used as sharded (and replicated onto the mesh when they are not).
    """
    self.cfg = cfg
    self.buckets = tuple(sorted(prompt_buckets or
                                default_buckets(cfg.max_seq_len)))
    self.mesh = mesh
    self.batch_axes = ((batch_axes,) if isinstance(batch_axes, str)
                       else tuple(batch_axes))
    if mesh is not None:
      missing = [a for a in self.batch_axes if a not in mesh.shape]
      if missing:
        raise ValueError(f"batch_axes {missing} not in mesh axes "
                         f"{tuple(mesh.shape)}")
    self._decoder = transformer_lib.Decoder(cfg)
    self._programs: dict[tuple[Any, ...], Callable[..., Any]] = {}
    self.trace_counts: dict[str, int] = {}

  # ----------------------------------------------------------------- public
  def __call__(self, params, prompts: Prompts, key: Array,
               sampling: SamplingConfig | None = None, *,
               lengths: Sequence[int] | None = None,
               padding_side: str = "right") -> SampleOutput:
    """Prefill + decode + output in one compiled program."""
    sampling = sampling or SamplingConfig()
    args, rows = self._inputs(params, prompts, key, sampling, lengths,
                              padding_side)
    fn = self._program("generate", args[1].shape, sampling, rows)
    return fn(*args)

  def prefill(self, params, prompts: Prompts, key: Array,
              sampling: SamplingConfig | None = None, *,
              lengths: Sequence[int] | None = None,
              padding_side: str = "right") -> SamplingState:
    """Fills the cache and samples the first token (step 1 of T)."""
    sampling = sampling or SamplingConfig()
    args, _ = self._inputs(params, prompts, key, sampling, lengths,
                           padding_side)
    return self._program("prefill", args[1].shape, sampling)(*args)

  def decode(self, params, state: SamplingState,
             sampling: SamplingConfig | None = None) -> SamplingState:
    """Runs the decode loop to the end; `state` is donated (reused)."""
    sampling = sampling or SamplingConfig()
    params = self._place_params(params)
    fn = self._program("decode", state.prompt_tokens.shape, sampling)
    return fn(params, state, *runtime_knobs(sampling))

  def finish(self, state: SamplingState, num_rows: int,
             sampling: SamplingConfig | None = None) -> SampleOutput:
    """Output of the first `num_rows` rows (drops batch-padding rows)."""
    sampling = sampling or SamplingConfig()
    fn = self._program("finish", state.prompt_tokens.shape, sampling, num_rows)
    return fn(state)

  @property
  def num_traces(self) -> int:
    """Total traces of this sampler's programs (each trace is a compile)."""
    return sum(self.trace_counts.values())

  # --------------------------------------------------------------- host side
  def _row_multiple(self) -> int:
    if self.mesh is None:
      return 1
    return int(np.prod([self.mesh.shape[a] for a in self.batch_axes]))

  def _sharding(self, ndim: int, free: bool = False):
    """Rows over the batch axes; other dims replicated, or XLA's choice."""
    rest = jax.sharding.PartitionSpec.UNCONSTRAINED if free else None
    spec = jax.sharding.PartitionSpec(self.batch_axes, *[rest] * (ndim - 1))
    return jax.sharding.NamedSharding(self.mesh, spec)

  def _place_params(self, params):
    if self.mesh is None:
      return params
    devices = set(self.mesh.devices.flat)
    repl = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    return jax.tree.map(
        lambda x: x if (isinstance(x, jax.Array)
                        and x.sharding.device_set == devices)
        else jax.device_put(x, repl), params)

  def _inputs(self, params, prompts, key, sampling, lengths, padding_side):
    limit = self.cfg.max_seq_len - sampling.max_new_tokens
    tokens, lens = pack_prompts(prompts, lengths, padding_side,
                                vocab_size=self.cfg.vocab_size,
                                buckets=self.buckets, limit=limit)
    rows = tokens.shape[0]
    extra = -rows % self._row_multiple()
    if extra:  # Batch-padding rows: one token, marked done from the start.
      tokens = np.concatenate(
          [tokens, np.zeros((extra, tokens.shape[1]), np.int32)])
      lens = np.concatenate([lens, np.ones(extra, np.int32)])
    start = (tokens.shape[1] - lens).astype(np.int32)
    live = np.arange(tokens.shape[0]) < rows
    if self.mesh is not None:
      tokens, start, live = (jax.device_put(x, self._sharding(x.ndim))
                             for x in (tokens, start, live))
      key = jax.device_put(key, jax.sharding.NamedSharding(
          self.mesh, jax.sharding.PartitionSpec()))
    args = (self._place_params(params), tokens, start, live, key,
            *runtime_knobs(sampling))
    return args, rows * sampling.n

  def _program(self, kind: str, batch_shape: tuple[int, int],
               sampling: SamplingConfig, *extra: int) -> Callable[..., Any]:
    """The jitted function for these static shapes (compiled on first use)."""
    static = sampling.replace(temperature=1.0, top_p=sampling.top_p and 1.0,
                              eos_ids=(0,) * len(sampling.eos_ids),
                              stop_sequences=tuple(
                                  (0,) * len(s)
                                  for s in sampling.stop_sequences),
                              greedy=sampling.is_greedy)
    cache_key = (kind, tuple(batch_shape), static, extra)
    if cache_key not in self._programs:
      body = {"prefill": self._prefill_fn, "decode": self._decode_fn,
              "finish": self._finish_fn, "generate": self._generate_fn}[kind]
      fn = functools.partial(self._count, kind, body, static, *extra)
      donate = (1,) if kind == "decode" else ()
      self._programs[cache_key] = jax.jit(fn, donate_argnums=donate)
    return self._programs[cache_key]

  def _count(self, kind, body, *args):
    self.trace_counts[kind] = self.trace_counts.get(kind, 0) + 1
    return body(*args)

  # ------------------------------------------------------------ device side
  def _constrain(self, state: SamplingState) -> SamplingState:
    if self.mesh is None:
      return state
    rows = state.done.shape[0]
    return jax.tree.map(
        lambda x: jax.lax.with_sharding_constraint(
            x, self._sharding(x.ndim, free=True))
        if x.ndim and x.shape[0] == rows else x, state)

  def _step_logits(self, params, tokens: Array, positions: Array,
                   cache: kv_cache_lib.KVCache
                   ) -> tuple[Array, kv_cache_lib.KVCache]:
    """float32[R, V] logits of the last of `tokens` [R, t]; updated cache."""
    hidden, cache = self._decoder.apply({"params": params["decoder"]}, tokens,
                                        positions, cache, num_outputs=1)
    return policy_logits(self.cfg, params, hidden[:, -1]), cache

  def _prefill_fn(self, sampling: SamplingConfig, params, tokens: Array,
                  start: Array, live: Array, key: Array, temperature: Array,
                  top_p: Array, eos: Array, stops: Array) -> SamplingState:
    cfg, n, t_new = self.cfg, sampling.n, sampling.max_new_tokens
    params = _cast_matrices(cfg, params)
    b, p = tokens.shape
    # Prefill attends over P slots only; the T - 1 decode slots are appended
    # afterwards, in the same copy that repeats rows for the n samples.
    cache = kv_cache_lib.init_cache(cfg, b, p, start)
    positions = jnp.maximum(jnp.arange(p)[None, :] - start[:, None], 0)
    logits, cache = self._step_logits(params, tokens, positions, cache)
    rep = lambda x: jnp.repeat(x, n, axis=0) if n > 1 else x
    full = kv_cache_lib.init_cache(cfg, b, p + t_new - 1, start)
    grow = lambda big, small: rep(jax.lax.dynamic_update_slice(
        big, small, (0,) * small.ndim))  # Slots [0, P) of the larger cache.
    cache = kv_cache_lib.KVCache(
        layers=tuple(kv_cache_lib.LayerCache(k=grow(f.k, l.k),
                                             v=grow(f.v, l.v))
                     for f, l in zip(full.layers, cache.layers)),
        start_index=rep(cache.start_index), end_index=cache.end_index)
    rows = b * n
    state = SamplingState(
        cache=cache, last_tokens=jnp.zeros((rows,), jnp.int32),
        step=jnp.zeros((), jnp.int32),
        tokens=jnp.full((rows, t_new), sampling.pad_id, jnp.int32),
        logprobs=jnp.zeros((rows, t_new), jnp.float32),
        done=~rep(live), lengths=jnp.zeros((rows,), jnp.int32),
        stop_reason=jnp.full((rows,), int(StopReason.LENGTH), jnp.int32),
        recent=jnp.full((rows, stops.shape[1]), -1, jnp.int32),
        prompt_tokens=rep(tokens), key=key)
    state = self._constrain(state)
    new, lp = choose_tokens(rep(logits), jax.random.fold_in(key, 0),
                            temperature, top_p, sampling)
    return self._constrain(_record(state, new, lp, eos, stops, sampling))

  def _decode_fn(self, sampling: SamplingConfig, params, state: SamplingState,
                 temperature: Array, top_p: Array, eos: Array,
                 stops: Array) -> SamplingState:
    params = _cast_matrices(self.cfg, params)

    # Without EOS ids or stop sequences every row runs max_new_tokens steps,
    # so the loop need not reduce `done` over rows (under a mesh, a
    # cross-device all-reduce and wait on every step).
    can_stop_early = bool(sampling.eos_ids or sampling.stop_sequences)

    def cond(s: SamplingState) -> Array:
      more = s.step < sampling.max_new_tokens
      return more & ~jnp.all(s.done) if can_stop_early else more

    def body(s: SamplingState) -> SamplingState:
      positions = (s.cache.end_index - s.cache.start_index)[:, None]
      logits, cache = self._step_logits(params, s.last_tokens[:, None],
                                        positions, s.cache)
      new, lp = choose_tokens(logits, jax.random.fold_in(s.key, s.step),
                              temperature, top_p, sampling)
      s = _record(s.replace(cache=cache), new, lp, eos, stops, sampling)
      return self._constrain(s)

    return jax.lax.while_loop(cond, body, self._constrain(state))

  def _finish_fn(self, sampling: SamplingConfig, num_rows: int,
                 state: SamplingState) -> SampleOutput:
    del sampling
    t = state.tokens.shape[1]
    cut = lambda x: x[:num_rows]
    return SampleOutput(
        tokens=cut(state.tokens), logprobs=cut(state.logprobs),
        mask=cut(jnp.arange(t)[None, :] < state.lengths[:, None]),
        lengths=cut(state.lengths), stop_reason=cut(state.stop_reason),
        prompt_tokens=cut(state.prompt_tokens),
        prompt_lengths=cut(state.prompt_tokens.shape[1]
                           - state.cache.start_index))

  def _generate_fn(self, sampling: SamplingConfig, num_rows: int, params,
                   tokens: Array, start: Array, live: Array, key: Array,
                   temperature: Array, top_p: Array, eos: Array,
                   stops: Array) -> SampleOutput:
    knobs = (temperature, top_p, eos, stops)
    state = self._prefill_fn(sampling, params, tokens, start, live, key,
                             *knobs)
    state = self._decode_fn(sampling, params, state, *knobs)
    return self._finish_fn(sampling, num_rows, state)
