"""Shared pieces of the peer-framework drivers (run in ../peers-venv).

The drivers in this directory time other frameworks (HF transformers, TRL,
Tunix) on the fixed peer workload of `beneficial_rl.bench.peer_workload`, so
that `run_side_by_side.sh` can alternate them with our benchmark on the same
machine and report ratios. They are scripts, not part of the package: the
directory has no `__init__.py`, nothing in the package or its tests imports
them, and the peers are never a dependency of the project. Each driver is run
by path (`python beneficial_rl/bench/peers/hf_generate.py`), which puts this
directory on `sys.path` so that `import peer_common` finds this file.

Every driver prints exactly one JSON line on stdout (library chatter is sent
to stderr) with: framework, version, metric, median / min / max over the
timed runs, the phase split where the framework exposes one, and the machine
load before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from typing import Any, Iterator

# Two threads' worth of CPU, as the machine has (set before torch / jax load);
# PEER_THREADS overrides it for the torch drivers (a sensitivity check only).
NUM_THREADS = int(os.environ.get("PEER_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
  os.environ.setdefault(_var, str(NUM_THREADS))

# The fixed workload (same numbers as `peer_workload.Workload` and the
# `peer_workload` model preset).
WORKLOAD: dict[str, Any] = {
    "model": "llama", "vocab_size": 4096, "hidden_size": 256,
    "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "head_dim": 64,
    "mlp_dim": 704, "rope_theta": 10_000.0, "norm_eps": 1e-6,
    "tied_embeddings": False, "dtype": "float32", "seed": 0,
    "sample_prompts": 32, "prompt_len": 64, "new_tokens": 64,
    "temperature": 1.0, "grpo_prompts": 8, "group_size": 4,
    "kl_coef": 0.04, "learning_rate": 1e-5, "inner_epochs": 1,
    "loss_aggregation": "per token, then per sequence",
}


def parse_args(description: str) -> argparse.Namespace:
  """--runs (timed, >= 1) and --warmup (untimed, >= 1)."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--runs", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  args = parser.parse_args()
  if args.runs < 1 or args.warmup < 1:
    parser.error("--runs and --warmup must be >= 1")
  return args


def random_prompts(rows: int, seed: int) -> "Any":
  """int64[rows, prompt_len] uniform token ids, as our benchmark draws them."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  return rng.integers(0, WORKLOAD["vocab_size"],
                      (rows, WORKLOAD["prompt_len"])).astype(np.int64)


def summary(values: list[float]) -> dict[str, float]:
  """Median / min / max of a list of numbers."""
  return {"median": statistics.median(values), "min": min(values),
          "max": max(values)}


def load_average() -> float:
  """1-minute load average (the machine is shared with other jobs)."""
  return os.getloadavg()[0]


def even_fraction(token_rows: "Any") -> list[float]:
  """The constant-time reward: fraction of even ids in each row, float[N]."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rows = [np.asarray(r) for r in token_rows]
  return [float((r % 2 == 0).mean()) if r.size else 0.0 for r in rows]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
  """Sends Python-level prints to stderr so stdout holds only the result."""
  with contextlib.redirect_stdout(sys.stderr):
    yield


def emit(record: dict[str, Any]) -> None:
  """Prints the result as one JSON line on the real stdout."""
  record.setdefault("workload", WORKLOAD)
  record.setdefault("threads", NUM_THREADS)
  sys.__stdout__.write(json.dumps(record, sort_keys=True) + "\n")
  sys.__stdout__.flush()
