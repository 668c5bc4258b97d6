"""Device mesh with three named axes: data, fsdp and tensor.

Why three axes: `data` replicates the model and splits the batch, `fsdp` splits
the batch *and* the parameters / optimizer state (ZeRO-3 style), `tensor`
splits heads, MLP hidden units and the vocabulary inside each layer. The
logical axis rules in `beneficial_rl.parallel.partitioning` map model axis
names onto these mesh axes.

A `MeshConfig` field of -1 takes "the rest" of the devices, so
`MeshConfig(data=1, fsdp=-1, tensor=1)` is pure FSDP on any device count.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType
from jax.sharding import Mesh

MESH_AXES: tuple[str, str, str] = ("data", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Sizes of the mesh axes; at most one may be -1 (all remaining devices).

  Attributes:
    data: pure data-parallel replicas.
    fsdp: fully sharded data parallelism (batch and parameters split).
    tensor: tensor (model) parallelism inside each layer.
  """
  data: int = 1
  fsdp: int = -1
  tensor: int = 1

  def __post_init__(self):
    for name in MESH_AXES:
      size = getattr(self, name)
      if not isinstance(size, int) or (size < 1 and size != -1):
        raise ValueError(f"MeshConfig.{name}={size!r}: expected a positive "
                         "int or -1 (the rest of the devices)")
    if self.sizes.count(-1) > 1:
      raise ValueError(f"MeshConfig {self.as_flag()}: only one field may be "
                       "-1")

  @property
  def sizes(self) -> tuple[int, int, int]:
    return tuple(getattr(self, name) for name in MESH_AXES)

  def resolve(self, num_devices: int) -> tuple[int, int, int]:
    """Axis sizes with -1 filled in; their product equals `num_devices`.

    Raises:
      ValueError: naming the field that does not divide the device count.
    """
    sizes = list(self.sizes)
    left = num_devices
    for name, size in zip(MESH_AXES, sizes):
      if size == -1:
        continue
      if left % size:
        raise ValueError(
            f"MeshConfig.{name}={size} does not divide the {left} devices "
            f"left for it (of {num_devices}); mesh {self.as_flag()}")
      left //= size
    if -1 in sizes:
      sizes[sizes.index(-1)] = left
    elif left != 1:
      raise ValueError(
          f"MeshConfig {self.as_flag()} uses {num_devices // left} devices "
          f"but {num_devices} are available; set one field (e.g. fsdp) to -1 "
          "or make the product of the sizes equal the device count")
    return tuple(sizes)

  def as_flag(self) -> str:
    return ",".join(f"{n}={s}" for n, s in zip(MESH_AXES, self.sizes))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "MeshConfig":
    unknown = set(d) - set(MESH_AXES)
    if unknown:
      raise ValueError(f"MeshConfig: unknown fields {sorted(unknown)}; "
                       f"expected {list(MESH_AXES)}")
    return cls(**{k: int(v) for k, v in d.items()})

  @classmethod
  def parse(cls, flag: str) -> "MeshConfig":
    """Parses 'data=1,fsdp=8,tensor=1' (missing fields keep defaults)."""
    d = {}
    for part in filter(None, (p.strip() for p in flag.split(","))):
      name, sep, value = part.partition("=")
      if not sep:
        raise ValueError(f"mesh flag {flag!r}: {part!r} is not NAME=SIZE")
      try:
        d[name.strip()] = int(value)
      except ValueError:
        raise ValueError(f"mesh flag {flag!r}: field {name.strip()!r} has "
                         f"non-integer size {value!r}") from None
    return cls.from_dict(d)


def resolve_config_mesh(mesh: Mapping[str, Any], num_devices: int
                        ) -> tuple[MeshConfig, int, int]:
  """(MeshConfig, data, fsdp) of a config's `mesh` fields on `num_devices`.

  Raises:
    ValueError: 'config.mesh: ...' when the fields are unknown or the sizes
      do not fit the devices.
  """
  try:
    cfg = MeshConfig.from_dict(mesh)
    data, fsdp, _ = cfg.resolve(num_devices)
  except ValueError as e:
    raise ValueError(f"config.mesh: {e}") from None
  return cfg, data, fsdp


def make_mesh(cfg: MeshConfig,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A `Mesh` over `devices` (default: all) with axes (data, fsdp, tensor).

  All axes are `AxisType.Auto`, i.e. GSPMD propagates shardings between the
  annotated inputs, outputs and `with_sharding_constraint` points. With the
  default devices, `jax.make_mesh` orders them for the physical topology
  (TPU ICI rings) so that `tensor` (the innermost axis) stays on neighbours.
  """
  auto = (AxisType.Auto,) * len(MESH_AXES)
  if devices is None:
    sizes = cfg.resolve(jax.device_count())
    return jax.make_mesh(sizes, MESH_AXES, axis_types=auto)
  devices = list(devices)
  sizes = cfg.resolve(len(devices))
  grid = np.asarray(devices, dtype=object).reshape(sizes)
  return Mesh(grid, MESH_AXES, axis_types=auto)


def num_devices_needed(cfg: MeshConfig) -> int:
  """Device count of a fully specified mesh (no -1)."""
  if -1 in cfg.sizes:
    raise ValueError(f"MeshConfig {cfg.as_flag()}: a field is -1, so the "
                     "device count is not determined; give all sizes")
  return math.prod(cfg.sizes)
