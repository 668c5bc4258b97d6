"""Tests of beneficial_rl.checkpoints: round trips, crashes, meshes, retention.

Eight fake CPU devices come from tests/conftest.py. Train states are a small
flax MLP with optax.adamw after two updates, so the optimizer moments, step,
key and FLOP counter are all non-trivial.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.sharding import SingleDeviceSharding
import numpy as np
import optax
from orbax.checkpoint._src.path import atomicity
import pytest
import tokenizers

from beneficial_rl import checkpoints
from beneficial_rl.models import config as config_lib
from beneficial_rl.models import transformer
from beneficial_rl.train_state import abstract_train_state
from beneficial_rl.train_state import TrainState
from beneficial_rl.utils import io

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = {"model": "mlp", "lr": 0.01, "layers": [32, 16], "seed": 1}


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(16)(nn.relu(nn.Dense(32)(x)))


# One transformation, so that all test states have equal tree structures.
_TX = optax.adamw(1e-2)


@functools.partial(jax.jit, static_argnames=("updates",))
def make_state(seed: int = 0, updates: int = 2) -> TrainState:
  """MLP (8 -> 32 -> 16) train state after `updates` adamw steps."""
  params = _MLP().init(jax.random.key(seed), jnp.zeros((1, 8)))["params"]
  state = TrainState.create(params, _TX, jax.random.key(seed))
  for i in range(updates):
    grads = jax.tree.map(lambda p, i=i: jnp.cos(p * (i + 1)), state.params)
    state = state.apply_gradients(grads, flops=1e6 * (i + 1))
    state, _ = state.split_rng()
  return state


def abstract_of(state: TrainState) -> TrainState:
  return abstract_train_state(jax.eval_shape(lambda: state.params),
                              state.tx)


def assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _tokenizer_json() -> tokenizers.Tokenizer:
  vocab = {"[UNK]": 0, "be": 1, "kind": 2, "to": 3, "others": 4}
  tok = tokenizers.Tokenizer(
      tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  return tok


def test_round_trip_restores_every_part(tmp_path):
  state = make_state()
  tok = _tokenizer_json()
  asset = checkpoints.TokenizerAsset("tokenizer.json", tok.to_str().encode())
  position = {"epoch": 1, "index": 37, "shard": "train-00001-of-00004"}
  with checkpoints.CheckpointManager(tmp_path / "run") as manager:
    assert manager.save(10, state, config=CONFIG, tokenizer=asset,
                        data_position=position)
    manager.wait()

  # A fresh manager, as after a restart.
  with checkpoints.CheckpointManager(tmp_path / "run") as manager:
    assert manager.latest_step() == 10
    restored = manager.restore(abstract_of(state))
  assert restored.step == 10
  assert_trees_equal(restored.state, state)
  assert int(restored.state.step) == 2 and float(restored.state.flops) == 3e6
  assert restored.config == CONFIG
  assert restored.data_position == position
  assert restored.tokenizer == asset
  path = restored.tokenizer.write_to(tmp_path / "export")
  assert path.read_bytes() == asset.data
  reloaded = tokenizers.Tokenizer.from_file(str(path))
  assert (reloaded.encode("be kind to others").ids ==
          tok.encode("be kind to others").ids == [1, 2, 3, 4])

  # The restored state keeps training exactly like the original.
  grads = jax.tree.map(jnp.sin, state.params)
  assert_trees_equal(restored.state.apply_gradients(grads),
                     state.apply_gradients(grads))
  assert_trees_equal(jax.random.key_data(restored.state.split_rng()[1]),
                     jax.random.key_data(state.split_rng()[1]))


def test_optional_parts_and_binary_tokenizer(tmp_path):
  state = make_state(updates=1)
  blob = checkpoints.TokenizerAsset("spm.model", bytes(range(256)) * 3)
  with checkpoints.CheckpointManager(tmp_path, async_save=False) as manager:
    manager.save(1, state, config=config_lib.get_preset("tiny"),
                 tokenizer=blob)
    manager.save(2, state, config={"a": (1, 2)})
    first = manager.restore(abstract_of(state), step=1)
    second = manager.restore(abstract_of(state), step=2)
    assert manager.restore_tokenizer(step=1) == blob
    assert manager.restore_tokenizer(step=2) is None
  # Dataclass configs are saved as dicts and rebuild the dataclass.
  assert (config_lib.TransformerConfig.from_dict(first.config) ==
          config_lib.get_preset("tiny"))
  assert first.tokenizer == blob and first.data_position is None
  assert second.tokenizer is None and second.config == {"a": [1, 2]}


def test_params_only_restore_never_reads_the_optimizer(tmp_path):
  state = make_state()
  with checkpoints.CheckpointManager(tmp_path) as manager:
    manager.save(3, state, config=CONFIG)
    manager.wait()
  # Remove the optimizer state: a full restore fails, params-only does not.
  train_state_dir = tmp_path / "3" / checkpoints.TRAIN_STATE
  assert train_state_dir.is_dir()
  for p in sorted(train_state_dir.rglob("*"), reverse=True):
    p.unlink() if p.is_file() else p.rmdir()
  train_state_dir.rmdir()

  params = checkpoints.load_params(tmp_path)
  assert_trees_equal(params, state.params)
  device = jax.local_devices()[0]
  assert all(x.sharding.device_set == {device}
             for x in jax.tree.leaves(params))
  assert checkpoints.load_config(tmp_path) == CONFIG
  with checkpoints.CheckpointManager(tmp_path, read_only=True) as manager:
    with pytest.raises(KeyError, match='"train_state" was not found'):
      manager.restore(abstract_of(state))


def test_tiny_transformer_params_restore_sharded_for_eval(tmp_path):
  cfg = config_lib.get_preset("tiny", num_layers=1, vocab_size=256)
  model = transformer.Transformer(cfg)
  # The model's real parameter tree, filled from numpy (an eager flax init
  # is slow on a loaded 2-core machine).
  abstract = nn.unbox(transformer.abstract_params(model))
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda s: jnp.asarray(rng.standard_normal(s.shape), s.dtype), abstract)
  state = TrainState.create(params, optax.adamw(1e-3), jax.random.key(1))
  with checkpoints.CheckpointManager(tmp_path) as manager:
    manager.save(0, state, config=cfg)
  # Eval job: abstract params from the model, sharded over a 2x4 mesh.
  mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("fsdp", "tensor"))
  rules = (("vocab", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"),
           ("heads", "tensor"), ("kv_heads", None))
  shardings = nn.logical_to_mesh_sharding(
      transformer.logical_axes(model), mesh, rules)
  target = checkpoints.with_shardings(abstract, shardings)
  restored = checkpoints.load_params(tmp_path, step=0, target=target)
  assert_trees_equal(restored, params)
  for leaf, want in zip(jax.tree.leaves(restored), jax.tree.leaves(
      shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))):
    assert leaf.sharding.is_equivalent_to(want, leaf.ndim)
  embedding = restored["decoder"]["embedding"]
  assert embedding.addressable_shards[0].data.shape == (
      cfg.vocab_size // 4, cfg.embed_dim // 2)


def _spec_by_rank(x, axes: tuple[str, str], sizes: tuple[int, int]):
  """2-D: both axes; 1-D: first axis when divisible; else replicated."""
  if x.ndim == 2:
    return P(*axes)
  if x.ndim == 1 and x.shape[0] % sizes[0] == 0:
    return P(axes[0])
  return P()


def test_restore_onto_a_different_mesh(tmp_path):
  devices = np.array(jax.devices())
  save_mesh = Mesh(devices.reshape(2, 2, 2), ("data", "fsdp", "tensor"))
  state = make_state()
  save_shardings = jax.tree.map(
      lambda x: NamedSharding(save_mesh, _spec_by_rank(
          x, ("fsdp", "tensor"), (2, 2))), state)
  sharded = jax.device_put(state, save_shardings)
  with checkpoints.CheckpointManager(tmp_path) as manager:
    manager.save(5, sharded, config=CONFIG)
    manager.wait()

    # Same topology, no shardings in the target: the saved ones come back.
    same = manager.restore(abstract_of(state)).state
    assert_trees_equal(same, state)
    for leaf, want in zip(jax.tree.leaves(same),
                          jax.tree.leaves(save_shardings)):
      assert leaf.sharding.is_equivalent_to(want, leaf.ndim)

    # A 4x2 mesh with the axes swapped, and a single device.
    new_mesh = Mesh(devices[::-1].reshape(4, 2), ("x", "y"))
    new_shardings = jax.tree.map(
        lambda x: NamedSharding(new_mesh, _spec_by_rank(
            x, ("x", "y"), (4, 2))), state)
    one_device = SingleDeviceSharding(devices[5])
    for shardings in (new_shardings, one_device):
      target = checkpoints.with_shardings(abstract_of(state), shardings)
      restored = manager.restore(target).state
      assert_trees_equal(restored, state)
      wanted = jax.tree.leaves(jax.tree.map(lambda t: t.sharding, target))
      for leaf, want in zip(jax.tree.leaves(restored), wanted):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim)
  kernel = restored.params["Dense_0"]["kernel"]
  assert kernel.sharding.device_set == {devices[5]}


_CRASH_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from orbax.checkpoint._src.path import atomicity
from beneficial_rl import checkpoints
import test_checkpoints as t

manager = checkpoints.CheckpointManager(sys.argv[1])
for step in (1, 2):
  manager.save(step, t.make_state(seed=step), config={{"step": step}})
  manager.wait()
original = atomicity.AtomicRenameTemporaryPath.finalize
async def finalize(self):
  # Die after every item of step 3 is written, before the step is renamed.
  if self.get_final().name == "3":
    os.kill(os.getpid(), signal.SIGKILL)
  await original(self)
atomicity.AtomicRenameTemporaryPath.finalize = finalize
manager.save(3, t.make_state(seed=3), config={{"step": 3}})
manager.wait()
print("step 3 committed")
"""


def test_sigkill_during_save_keeps_previous_step(tmp_path):
  run = tmp_path / "run"
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(
      [sys.executable, "-c",
       _CRASH_SCRIPT.format(tests=str(REPO_ROOT / "tests")), str(run)],
      env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == -9, proc.stderr[-2000:]
  assert "step 3 committed" not in proc.stdout
  # The crash left an uncommitted step-3 directory behind.
  leftovers = [p.name for p in run.iterdir()
               if "orbax-checkpoint-tmp" in p.name]
  assert leftovers and all(name.startswith("3.") for name in leftovers)

  with checkpoints.CheckpointManager(run, read_only=True) as reader:
    assert reader.all_steps() == [1, 2] and reader.latest_step() == 2
  expected = make_state(seed=2)
  with checkpoints.CheckpointManager(run) as manager:
    restored = manager.restore(abstract_of(expected))
    assert restored.step == 2 and restored.config == {"step": 2}
    assert_trees_equal(restored.state, expected)
    # The writer can save step 3 again; the leftovers are gone by then.
    manager.save(3, make_state(seed=3), config={"step": 3})
    manager.wait()
    assert manager.latest_step() == 3
    assert not [p for p in run.iterdir() if "tmp" in p.name]


def test_background_write_error_surfaces_in_wait(tmp_path, monkeypatch):
  with checkpoints.CheckpointManager(tmp_path) as manager:
    manager.save(1, make_state(seed=1), config={"step": 1})
    manager.wait()

    async def fail(self):
      raise RuntimeError(f"disk full while committing {self.get_final()}")
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", fail)
    manager.save(2, make_state(seed=2), config={"step": 2})
    with pytest.raises(RuntimeError, match="disk full"):
      manager.wait()
    monkeypatch.undo()
    assert manager.latest_step() == 1
    restored = manager.restore(abstract_of(make_state(seed=1)))
    assert restored.step == 1 and restored.config == {"step": 1}
    assert_trees_equal(restored.state, make_state(seed=1))


def test_leftover_temporary_directory_is_ignored(tmp_path):
  state = make_state(updates=1)
  with checkpoints.CheckpointManager(tmp_path) as manager:
    manager.save(4, state, config=CONFIG)
  # A half-written step 9 as a crashed writer would leave it.
  tmp = tmp_path / "9.orbax-checkpoint-tmp-1234"
  (tmp / "params").mkdir(parents=True)
  (tmp / "params" / "partial").write_bytes(b"\x00" * 100)
  reader = checkpoints.CheckpointManager(tmp_path, read_only=True)
  assert reader.latest_step() == 4
  assert_trees_equal(reader.restore_params(), state.params)
  assert tmp.exists()  # Readers never delete.
  with checkpoints.CheckpointManager(tmp_path) as manager:
    assert manager.latest_step() == 4
    # A writer removes leftovers in the background, at the latest before
    # its first save starts.
    manager.save(5, state, config=CONFIG)
    manager.wait()
    assert not tmp.exists()
  # The reader sees the writer's new step after a reload.
  assert reader.latest_step() == 4
  reader.reload()
  assert reader.latest_step() == 5
  reader.close()


def _save_series(manager, state, values, metric):
  for step, value in enumerate(values, start=1):
    metrics = None if value is None else {metric: value, "other": -1.0}
    manager.save(step, state, config={"step": step}, metrics=metrics)
  manager.wait()


def _steps_on_disk(path: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())


def test_keep_last_n_and_best_max(tmp_path):
  state = make_state(updates=0)
  opts = dict(keep_last=2, keep_best=1, best_metric="reward")
  with checkpoints.CheckpointManager(tmp_path, **opts) as manager:
    _save_series(manager, state, [0.1, 0.9, 0.3, 0.2, 0.4, 0.5], "reward")
    # Newest two (5, 6) plus the best (2, reward 0.9), although it is older.
    assert manager.all_steps() == [2, 5, 6]
    assert _steps_on_disk(tmp_path) == [2, 5, 6]
    assert manager.best_step() == 2
    assert manager.metrics(2) == {"reward": 0.9, "other": -1.0}
  with checkpoints.CheckpointManager(tmp_path, **opts) as manager:
    assert manager.all_steps() == [2, 5, 6] and manager.best_step() == 2
    manager.save(7, state, config={}, metrics={"reward": 0.95})
    manager.wait()
    # Step 7 is now both among the newest and the best: step 2 goes.
    assert _steps_on_disk(tmp_path) == [6, 7]
    assert manager.best_step() == 7


def test_keep_last_n_and_best_min_with_unscored_steps(tmp_path):
  state = make_state(updates=0)
  with checkpoints.CheckpointManager(
      tmp_path, keep_last=1, keep_best=2, best_metric="loss",
      best_mode="min", async_save=False) as manager:
    _save_series(manager, state, [3.0, 1.0, 2.0, 0.5, 4.0], "loss")
    assert _steps_on_disk(tmp_path) == [2, 4, 5]
    # Steps without metrics are kept only while they are the newest.
    manager.save(6, state, config={})
    assert _steps_on_disk(tmp_path) == [2, 4, 6]
    manager.save(7, state, config={})
    assert _steps_on_disk(tmp_path) == [2, 4, 7]
    assert manager.best_step() == 4


def test_keep_steps_survive_keep_last(tmp_path):
  with checkpoints.CheckpointManager(tmp_path, keep_last=1, keep_steps=(2, 3),
                                     async_save=False) as manager:
    _save_series(manager, make_state(updates=0), [None] * 5, "x")
    assert _steps_on_disk(tmp_path) == [2, 3, 5]
  with pytest.raises(ValueError, match=r"keep_steps=\(-1,\)"):
    checkpoints.CheckpointManager(tmp_path, keep_steps=(-1,))


def test_keep_all_without_limits(tmp_path):
  with checkpoints.CheckpointManager(tmp_path, keep_last=None,
                                     async_save=False) as manager:
    _save_series(manager, make_state(updates=0), [None] * 4, "x")
    assert _steps_on_disk(tmp_path) == [1, 2, 3, 4]
    assert manager.best_step() is None


def test_bad_inputs_raise_clear_errors(tmp_path):
  state = make_state(updates=0)
  with pytest.raises(ValueError, match="keep_best=1 needs best_metric"):
    checkpoints.CheckpointManager(tmp_path, keep_best=1)
  with pytest.raises(ValueError, match="keep_last=0"):
    checkpoints.CheckpointManager(tmp_path, keep_last=0)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    checkpoints.CheckpointManager(tmp_path / "absent", read_only=True)
  with checkpoints.CheckpointManager(tmp_path, best_metric="reward",
                                     async_save=False) as manager:
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
      manager.restore(abstract_of(state))
    with pytest.raises(ValueError, match="'config' is not JSON"):
      manager.save(1, state, config={"fn": print})
    with pytest.raises(ValueError, match="'data_iterator' is not JSON"):
      manager.save(1, state, config={}, data_position={"x": float("nan")})
    with pytest.raises(ValueError, match="best_metric 'reward'"):
      manager.save(1, state, config={}, metrics={"loss": 1.0})
    with pytest.raises(ValueError, match="filename"):
      checkpoints.TokenizerAsset("../evil.model", b"x")
    manager.save(1, state, config={}, metrics={"reward": 1.0},
                 tokenizer=checkpoints.TokenizerAsset("t.model", b"abc"))
    with pytest.raises(ValueError, match="greater than the latest step 1"):
      manager.save(1, state, config={}, metrics={"reward": 1.0})
    with pytest.raises(FileNotFoundError, match=r"step 7 .*steps: \[1\]"):
      manager.restore_params(step=7)

  # A corrupted tokenizer payload is detected, naming the file and field.
  payload = tmp_path / "1" / checkpoints.TOKENIZER / "metadata"
  obj = json.loads(payload.read_text())
  obj["base64"] = "YWJk"  # "abd"
  payload.write_text(json.dumps(obj))
  with checkpoints.CheckpointManager(tmp_path, read_only=True) as reader:
    with pytest.raises(io.DataError, match=r"tokenizer/metadata: field "
                       r"'sha256'"):
      reader.restore_tokenizer()
