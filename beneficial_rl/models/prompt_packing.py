"""Prompt packing for the sampler and the teacher-forced scorers.

Every row of a batch shares one KV-cache write position when prompts are
left-padded (`kv_cache.py`), and a fixed set of padded widths ("buckets")
keeps the number of compiled programs small. `pack_prompts` turns ragged or
padded prompts into that layout and validates them, naming the prompt and
position of bad input.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

Prompts = Sequence[Sequence[int]] | np.ndarray | jax.Array


def default_buckets(limit: int) -> tuple[int, ...]:
  """16, 32, then multiples of 64 below `limit`, then `limit` itself."""
  sizes = {16, 32} | set(range(64, limit, 64)) | {limit}
  return tuple(sorted(s for s in sizes if s <= limit))


def pack_prompts(prompts: Prompts, lengths: Sequence[int] | None = None,
                 padding_side: str = "right", *, vocab_size: int,
                 buckets: Sequence[int], limit: int
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads prompts into the smallest bucket that holds the longest one.

  Args:
    prompts: list of token lists, or an int array [B, W] padded on
      `padding_side` with real lengths `lengths` (default: all W).
    buckets: allowed padded lengths; `limit` is the largest allowed and is
      used when no bucket fits.

  Returns:
    int32[B, P] tokens left-padded with id 0 (any valid id works: padding
    slots are masked) and int32[B] lengths.

  Raises:
    ValueError: naming the prompt, position and field of bad input.
  """
  if padding_side not in ("left", "right"):
    raise ValueError(f"padding_side={padding_side!r}; expected 'left' or "
                     "'right'")
  if isinstance(prompts, (np.ndarray, jax.Array)):
    arr = np.asarray(prompts)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
      raise ValueError(f"prompts: expected an int array [B, W], got "
                       f"{arr.dtype}{list(arr.shape)}")
    width = arr.shape[1]
    lens = (np.full(arr.shape[0], width) if lengths is None
            else np.asarray(lengths, np.int64))
    if lens.shape != (arr.shape[0],):
      raise ValueError(f"lengths: shape {lens.shape}, expected "
                       f"({arr.shape[0]},)")
    if lens.size and lens.max() > width:
      b = int(lens.argmax())
      raise ValueError(f"lengths[{b}]={lens[b]} exceeds the prompt width "
                       f"{width}")
    rows = [arr[b, :lens[b]] if padding_side == "right"
            else arr[b, width - lens[b]:] for b in range(arr.shape[0])]
  else:
    if lengths is not None:
      raise ValueError("lengths: only valid with a padded array of prompts")
    rows = [np.asarray(p, np.int64).reshape(-1) for p in prompts]
  if not rows:
    raise ValueError("prompts: empty batch")
  for b, row in enumerate(rows):
    if row.size == 0:
      raise ValueError(f"prompts[{b}]: empty prompt (need >= 1 token)")
    bad = np.flatnonzero((row < 0) | (row >= vocab_size))
    if bad.size:
      j = int(bad[0])
      raise ValueError(f"prompts[{b}][{j}]: token id {row[j]} outside "
                       f"[0, {vocab_size})")
  longest = max(r.size for r in rows)
  if longest > limit:
    raise ValueError(f"prompts: longest prompt has {longest} tokens; at most "
                     f"{limit} fit (TransformerConfig.max_seq_len minus "
                     "max_new_tokens)")
  width = min([b for b in buckets if longest <= b <= limit] or [limit])
  tokens = np.zeros((len(rows), width), np.int32)
  for b, row in enumerate(rows):
    tokens[b, width - row.size:] = row
  return tokens, np.array([r.size for r in rows], np.int32)
