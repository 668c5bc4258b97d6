"""MeshConfig resolution, parsing and make_mesh on the 8 fake CPU devices."""

from __future__ import annotations

import jax
import pytest

from beneficial_rl.parallel import mesh as mesh_lib


def test_resolve_fills_the_rest():
  assert mesh_lib.MeshConfig(2, -1, 2).resolve(8) == (2, 2, 2)
  assert mesh_lib.MeshConfig(1, -1, 1).resolve(8) == (1, 8, 1)
  assert mesh_lib.MeshConfig(-1, 2, 1).resolve(8) == (4, 2, 1)
  assert mesh_lib.MeshConfig(2, 2, 2).resolve(8) == (2, 2, 2)


def test_non_dividing_field_is_named():
  with pytest.raises(ValueError, match=r"MeshConfig\.data=3 does not divide "
                     r"the 8 devices"):
    mesh_lib.MeshConfig(3, -1, 1).resolve(8)
  with pytest.raises(ValueError, match=r"MeshConfig\.tensor=4 does not divide "
                     r"the 2 devices left"):
    mesh_lib.MeshConfig(2, 2, 4).resolve(8)


def test_product_mismatch_is_reported():
  with pytest.raises(ValueError, match="uses 4 devices but 8 are available"):
    mesh_lib.MeshConfig(2, 2, 1).resolve(8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(data=0), r"MeshConfig\.data=0"),
    (dict(tensor=-2), r"MeshConfig\.tensor=-2"),
    (dict(data=-1, fsdp=-1), "only one field may be -1"),
])
def test_invalid_sizes(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mesh_lib.MeshConfig(**kwargs)


def test_parse_and_from_dict():
  cfg = mesh_lib.MeshConfig.parse("data=1, fsdp=8,tensor=1")
  assert cfg == mesh_lib.MeshConfig(1, 8, 1)
  assert cfg.as_flag() == "data=1,fsdp=8,tensor=1"
  assert mesh_lib.MeshConfig.parse("tensor=2") == mesh_lib.MeshConfig(1, -1, 2)
  with pytest.raises(ValueError, match="unknown fields.*'pipeline'"):
    mesh_lib.MeshConfig.from_dict({"pipeline": 2})
  with pytest.raises(ValueError, match="field 'fsdp' has non-integer size"):
    mesh_lib.MeshConfig.parse("fsdp=eight")
  with pytest.raises(ValueError, match="is not NAME=SIZE"):
    mesh_lib.MeshConfig.parse("fsdp")


def test_num_devices_needed():
  assert mesh_lib.num_devices_needed(mesh_lib.MeshConfig(2, 64, 2)) == 256
  with pytest.raises(ValueError, match="device count is not determined"):
    mesh_lib.num_devices_needed(mesh_lib.MeshConfig(1, -1, 1))


def test_make_mesh_uses_all_devices():
  assert jax.device_count() == 8
  mesh = mesh_lib.make_mesh(mesh_lib.MeshConfig(2, -1, 2))
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
  with pytest.raises(ValueError, match=r"MeshConfig\.fsdp=3"):
    mesh_lib.make_mesh(mesh_lib.MeshConfig(1, 3, -1))


def test_make_mesh_with_explicit_devices():
  devices = jax.devices()[4:]
  mesh = mesh_lib.make_mesh(mesh_lib.MeshConfig(1, -1, 2), devices)
  assert dict(mesh.shape) == {"data": 1, "fsdp": 2, "tensor": 2}
  # Row-major: tensor is the fastest-varying axis.
  assert mesh.devices[0, 0, 1] == devices[1]
  assert mesh.devices[0, 1, 0] == devices[2]


def test_resolve_config_mesh_names_the_config_field():
  cfg, data, fsdp = mesh_lib.resolve_config_mesh(
      {"data": 2, "fsdp": -1, "tensor": 1}, 8)
  assert (cfg.data, data, fsdp) == (2, 2, 4)
  with pytest.raises(ValueError, match=r"^config.mesh: MeshConfig: unknown "
                     r"fields \['pipe'\]"):
    mesh_lib.resolve_config_mesh({"pipe": 2}, 8)
  with pytest.raises(ValueError, match=r"^config.mesh: "):
    mesh_lib.resolve_config_mesh({"data": 3, "fsdp": 1, "tensor": 1}, 8)
