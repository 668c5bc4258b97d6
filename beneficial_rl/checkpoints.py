"""Orbax checkpoints of a training run: state, config, tokenizer, data position.

One `CheckpointManager` owns one run directory. Each saved step is a directory
`<run>/<step>/` written by `orbax.checkpoint.CheckpointManager` with one Orbax
item per part (see docs/checkpoints.md for the layout):

  params/         StandardSave of `TrainState.params` (tensorstore/OCDBT)
  train_state/    StandardSave of {step, opt_state, rng, flops}
  config/         JsonSave of the run config
  tokenizer/      JsonSave of {filename, sha256, num_bytes, base64}  (optional)
  data_iterator/  JsonSave of the data-iterator position             (optional)
  metrics/        written by Orbax when a best metric is configured

Params are their own item so that evaluation can restore them without the
optimizer state (`restore_params`, `load_params`). Orbax writes every step into
`<step>.orbax-checkpoint-tmp*` and renames it when all items are committed, so
a crash mid-save leaves the previous step as the latest one; leftover
temporary directories are removed in the background by the next writable
manager, at the latest before its first save. Nothing is pickled: arrays go
through tensorstore, the rest is JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import os
import pathlib
from typing import Any, Literal, Mapping, Sequence

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from beneficial_rl.train_state import TrainState
from beneficial_rl.utils import io

PyTree = Any
PathLike = str | os.PathLike

PARAMS = "params"
TRAIN_STATE = "train_state"
CONFIG = "config"
TOKENIZER = "tokenizer"
DATA_ITERATOR = "data_iterator"
_JSON_ITEMS = (CONFIG, TOKENIZER, DATA_ITERATOR)
# File name JsonCheckpointHandler uses inside a JSON item's directory.
_JSON_FILENAME = "metadata"


@dataclasses.dataclass(frozen=True)
class TokenizerAsset:
  """The bytes of a tokenizer file (SentencePiece `.model` or `tokenizer.json`).

  Attributes:
    filename: base name the file is written back under, e.g. 'spm.model'.
    data: the file's bytes.
  """
  filename: str
  data: bytes

  def __post_init__(self):
    name = self.filename
    if not name or name in (".", "..") or "/" in name or "\\" in name:
      raise ValueError(f"TokenizerAsset.filename={name!r}: expected a plain "
                       "file name without directories")

  @classmethod
  def from_file(cls, path: PathLike) -> "TokenizerAsset":
    path = pathlib.Path(path)
    return cls(filename=path.name, data=path.read_bytes())

  @property
  def sha256(self) -> str:
    return hashlib.sha256(self.data).hexdigest()

  def write_to(self, directory: PathLike) -> pathlib.Path:
    """Writes `directory/filename` atomically; returns its path."""
    path = pathlib.Path(directory) / self.filename
    io.atomic_write_bytes(path, self.data)
    return path

  def to_json(self) -> dict[str, Any]:
    return {"filename": self.filename, "sha256": self.sha256,
            "num_bytes": len(self.data),
            "base64": base64.b64encode(self.data).decode("ascii")}

  @classmethod
  def from_json(cls, obj: Mapping[str, Any],
                where: PathLike) -> "TokenizerAsset":
    """Decodes `to_json` output; checks size and SHA-256.

    Raises:
      io.DataError: naming `where` and the bad field.
    """
    for field in ("filename", "sha256", "num_bytes", "base64"):
      if field not in obj:
        raise io.DataError(where, None, field, "missing")
    try:
      data = base64.b64decode(obj["base64"], validate=True)
    except (ValueError, TypeError) as e:
      raise io.DataError(where, None, "base64", f"not base64: {e}") from None
    if len(data) != obj["num_bytes"]:
      raise io.DataError(where, None, "num_bytes", f"{obj['num_bytes']} != "
                         f"{len(data)} decoded bytes")
    asset = cls(filename=obj["filename"], data=data)
    if asset.sha256 != obj["sha256"]:
      raise io.DataError(where, None, "sha256", f"{obj['sha256']} does not "
                         f"match the data ({asset.sha256})")
    return asset


@dataclasses.dataclass(frozen=True)
class Restored:
  """Everything one step of a checkpoint holds.

  Attributes:
    step: the checkpoint step.
    state: the `TrainState`, laid out as the restore target asked.
    config: the run config (JSON object).
    tokenizer: the tokenizer file, or None if it was not saved.
    data_position: the data-iterator position, or None if it was not saved.
  """
  step: int
  state: TrainState
  config: dict[str, Any]
  tokenizer: TokenizerAsset | None
  data_position: dict[str, Any] | None


def _json_object(obj: Any, field: str) -> dict[str, Any]:
  """Round-trips `obj` through JSON so the saved and returned values agree.

  Dataclasses (e.g. `TransformerConfig`) are converted with `asdict`; tuples
  become lists. Raises a ValueError naming `field` for anything else.
  """
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    obj = dataclasses.asdict(obj)
  if not isinstance(obj, Mapping):
    raise ValueError(f"checkpoint field {field!r}: expected a mapping, got "
                     f"{type(obj).__name__}")
  try:
    return json.loads(json.dumps(obj, allow_nan=False))
  except (TypeError, ValueError) as e:
    raise ValueError(f"checkpoint field {field!r} is not JSON: {e}") from None


def with_shardings(tree: PyTree,
                   shardings: jax.sharding.Sharding | PyTree) -> PyTree:
  """`jax.ShapeDtypeStruct` leaves of `tree` carrying restore shardings.

  Args:
    tree: arrays or ShapeDtypeStructs (e.g. `abstract_train_state(...)`).
    shardings: one `jax.sharding.Sharding` for every leaf, or a pytree of
      shardings with the structure of `tree`.
  """
  def leaf(x, sharding):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda x: leaf(x, shardings), tree)
  return jax.tree.map(leaf, tree, shardings)


def _handler_registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  """Item name -> handler, so a fresh (or read-only) manager can restore."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for name in (PARAMS, TRAIN_STATE):
    registry.add(name, ocp.args.StandardSave)
    registry.add(name, ocp.args.StandardRestore)
  for name in _JSON_ITEMS:
    registry.add(name, ocp.args.JsonSave)
    registry.add(name, ocp.args.JsonRestore)
  return registry


class CheckpointManager:
  """Saves and restores the checkpoints of one run directory.

  Retention: the newest `keep_last` steps are kept, and so are the `keep_best`
  steps with the best `metrics[best_metric]` (by `best_mode`), however old,
  and every step listed in `keep_steps` (e.g. those evaluated later for
  learning curves).
  A step saved without metrics is only kept while it is among the newest.

  Saves are asynchronous by default: `save` returns once arrays are copied to
  host memory and writing continues in the background; `wait()` blocks until
  it is committed. Restores wait for a pending save first.

  Not thread-safe; one writer per run directory. Evaluation jobs reading a
  directory that a trainer is writing should use `read_only=True`.
  """

  def __init__(self, directory: PathLike, *, keep_last: int | None = 3,
               keep_best: int = 0, best_metric: str | None = None,
               keep_steps: Sequence[int] = (),
               best_mode: Literal["max", "min"] = "max",
               async_save: bool = True, read_only: bool = False):
    """Opens (or creates) the run directory.

    Args:
      directory: the run's checkpoint root.
      keep_last: number of newest steps kept; None keeps every step.
      keep_best: number of best steps by `best_metric` also kept.
      best_metric: key of `metrics` that ranks steps; needed for keep_best.
      keep_steps: steps kept whatever their age.
      best_mode: 'max' if larger is better, 'min' if smaller is better.
      async_save: write in a background thread (see `wait`).
      read_only: never write or delete; the directory must exist.
    """
    if keep_last is not None and keep_last < 1:
      raise ValueError(f"keep_last={keep_last}: must be >= 1 or None")
    if keep_best < 0:
      raise ValueError(f"keep_best={keep_best}: must be >= 0")
    if keep_best and best_metric is None:
      raise ValueError(f"keep_best={keep_best} needs best_metric")
    if best_mode not in ("max", "min"):
      raise ValueError(f"best_mode={best_mode!r}: expected 'max' or 'min'")
    self._directory = pathlib.Path(directory).absolute()
    if read_only and not self._directory.is_dir():
      raise FileNotFoundError(f"checkpoint directory {self._directory} does "
                              "not exist")
    self._best_metric = best_metric
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0
           for s in keep_steps):
      raise ValueError(f"keep_steps={tuple(keep_steps)}: must be ints >= 0")
    policies = [checkpoint_managers.LatestN(n=keep_last)]
    if keep_steps:
      policies.append(checkpoint_managers.CustomSteps(steps=list(keep_steps)))
    best_fn = None
    if best_metric is not None:

      def best_fn(metrics: Mapping[str, float]) -> float:
        return metrics[best_metric]

      if keep_best:
        policies.append(checkpoint_managers.BestN(
            get_metric_fn=best_fn, reverse=(best_mode == "min"), n=keep_best,
            keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        best_fn=best_fn, best_mode=best_mode,
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(
            policies),
        enable_async_checkpointing=async_save, read_only=read_only,
        create=not read_only, cleanup_tmp_directories=not read_only)
    self._manager = ocp.CheckpointManager(
        self._directory, options=options,
        handler_registry=_handler_registry())

  @property
  def directory(self) -> pathlib.Path:
    return self._directory

  def step_directory(self, step: int) -> pathlib.Path:
    return self._directory / str(step)

  def reload(self) -> None:
    """Re-reads the step list from disk (readers of a run written elsewhere)."""
    self._manager.reload()

  def all_steps(self) -> list[int]:
    """Steps kept, ascending (a save still in flight included)."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """Newest step (a save still in flight included); None if none."""
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """Best kept step by `best_metric`; None without a metric or metrics."""
    if self._best_metric is None:
      return None
    return self._manager.best_step()

  def metrics(self, step: int) -> dict[str, float] | None:
    """Metrics saved with `step` (only recorded when best_metric is set)."""
    return self._manager.metrics(step)

  def save(self, step: int, state: TrainState, *,
           config: Any,
           tokenizer: TokenizerAsset | None = None,
           data_position: Mapping[str, Any] | None = None,
           metrics: Mapping[str, float] | None = None) -> bool:
    """Starts saving one step; returns True when a save was started.

    Args:
      step: checkpoint step; must exceed every step saved before.
      state: the train state (its own `step` field is saved as is).
      config: run config, a JSON-serializable mapping or a dataclass.
      tokenizer: tokenizer file to keep with the weights.
      data_position: JSON-serializable data-iterator position.
      metrics: scalars ranking this step for keep-best; must contain
        `best_metric` when given and a best metric is configured.

    Raises:
      ValueError: a non-increasing step, non-JSON config/position, or metrics
        without a finite `best_metric`.
    """
    latest = self.latest_step()
    if step < 0 or (latest is not None and step <= latest):
      raise ValueError(f"{self._directory}: save step {step} must be >= 0 and "
                       f"greater than the latest step {latest}")
    if not isinstance(state, TrainState):
      raise ValueError(f"save: expected a TrainState, got "
                       f"{type(state).__name__}")
    items = {
        PARAMS: ocp.args.StandardSave(state.params),
        TRAIN_STATE: ocp.args.StandardSave(_state_without_params(state)),
        CONFIG: ocp.args.JsonSave(_json_object(config, CONFIG)),
    }
    if tokenizer is not None:
      items[TOKENIZER] = ocp.args.JsonSave(tokenizer.to_json())
    if data_position is not None:
      items[DATA_ITERATOR] = ocp.args.JsonSave(
          _json_object(data_position, DATA_ITERATOR))
    return self._manager.save(step, args=ocp.args.Composite(**items),
                              metrics=self._checked_metrics(metrics),
                              force=True)

  def _checked_metrics(self, metrics: Mapping[str, float] | None
                       ) -> dict[str, float] | None:
    if metrics is None:
      return None
    out = {str(k): float(v) for k, v in metrics.items()}
    if self._best_metric is not None:
      value = out.get(self._best_metric)
      if value is None or not math.isfinite(value):
        raise ValueError(f"save metrics: best_metric {self._best_metric!r} "
                         f"must be a finite number, got {value} in "
                         f"{sorted(out)}")
    return out

  def wait(self) -> None:
    """Blocks until a pending asynchronous save is committed.

    Raises:
      Exception: whatever error the background save hit.
    """
    self._manager.wait_until_finished()
    self._manager.check_for_errors()

  def _resolve_step(self, step: int | None) -> int:
    self._manager.wait_until_finished()
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise FileNotFoundError(f"no complete checkpoint in {self._directory}")
      return steps[-1]
    if step not in steps:
      raise FileNotFoundError(f"no checkpoint for step {step} in "
                              f"{self._directory}; steps: {steps}")
    return step

  def _saved_items(self, step: int) -> set[str]:
    return set(self._manager.metadata(step).item_handlers or ())

  def restore(self, target: TrainState, step: int | None = None) -> Restored:
    """Restores a step (default: latest) onto `target`'s layout.

    Args:
      target: a TrainState whose leaves are `jax.ShapeDtypeStruct`s (from
        `abstract_train_state`, shardings attached with `with_shardings`) or
        arrays; each leaf is restored with that leaf's sharding, so a run can
        resume on a different mesh. Leaves without a sharding get the sharding
        they were saved with (same topology only). Static fields (tx) are
        taken from `target`.
      step: step to restore; None means the latest complete one.

    Raises:
      FileNotFoundError: no such step (message lists the steps present).
    """
    step = self._resolve_step(step)
    saved = self._saved_items(step)
    items = {
        PARAMS: ocp.args.StandardRestore(target.params),
        TRAIN_STATE: ocp.args.StandardRestore(_state_without_params(target)),
        CONFIG: ocp.args.JsonRestore(),
    }
    for name in (TOKENIZER, DATA_ITERATOR):
      if name in saved:
        items[name] = ocp.args.JsonRestore()
    out = self._manager.restore(step, args=ocp.args.Composite(**items))
    rest = out[TRAIN_STATE]
    state = target.replace(params=out[PARAMS], step=rest["step"],
                           opt_state=rest["opt_state"], rng=rest["rng"],
                           flops=rest["flops"])
    tokenizer = None
    if TOKENIZER in saved:
      tokenizer = TokenizerAsset.from_json(
          out[TOKENIZER],
          self.step_directory(step) / TOKENIZER / _JSON_FILENAME)
    return Restored(step=step, state=state, config=out[CONFIG],
                    tokenizer=tokenizer,
                    data_position=out.get(DATA_ITERATOR))

  def restore_params(self, target: PyTree | None = None,
                     step: int | None = None) -> PyTree:
    """Restores only the params item; the optimizer state is never read.

    Args:
      target: abstract (or concrete) params with the wanted shardings; None
        restores every array whole onto the first local device.
      step: step to restore; None means the latest complete one.
    """
    step = self._resolve_step(step)
    if target is None:
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      tree = self._manager.metadata(step).item_metadata[PARAMS].tree
      target = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
          tree)
    out = self._manager.restore(step, args=ocp.args.Composite(
        **{PARAMS: ocp.args.StandardRestore(target)}))
    return out[PARAMS]

  def _restore_json(self, name: str, step: int | None) -> tuple[int, Any]:
    step = self._resolve_step(step)
    if name not in self._saved_items(step):
      return step, None
    out = self._manager.restore(step, args=ocp.args.Composite(
        **{name: ocp.args.JsonRestore()}))
    return step, out[name]

  def restore_config(self, step: int | None = None) -> dict[str, Any]:
    """The run config of a step (default latest), without reading arrays."""
    return self._restore_json(CONFIG, step)[1]

  def restore_tokenizer(self, step: int | None = None
                        ) -> TokenizerAsset | None:
    """The tokenizer file of a step (default latest); None if not saved."""
    step, obj = self._restore_json(TOKENIZER, step)
    if obj is None:
      return None
    return TokenizerAsset.from_json(
        obj, self.step_directory(step) / TOKENIZER / _JSON_FILENAME)

  def close(self) -> None:
    """Waits for a pending save and releases Orbax's threads."""
    self._manager.close()

  def __enter__(self) -> "CheckpointManager":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _state_without_params(state: TrainState) -> dict[str, Any]:
  """The `train_state` item: every array leaf of the state except params."""
  return {"step": state.step, "opt_state": state.opt_state, "rng": state.rng,
          "flops": state.flops}


def load_params(directory: PathLike, *, step: int | None = None,
                target: PyTree | None = None) -> PyTree:
  """Params of a run for evaluation, read through a read-only manager.

  Args:
    directory: the run's checkpoint root.
    step: step to load; None means the latest complete one.
    target: optional abstract params with shardings (see `restore_params`).
  """
  with CheckpointManager(directory, read_only=True) as manager:
    return manager.restore_params(target=target, step=step)


def load_config(directory: PathLike, step: int | None = None
                ) -> dict[str, Any]:
  """The run config of a step (default latest) through a read-only manager."""
  with CheckpointManager(directory, read_only=True) as manager:
    return manager.restore_config(step)

