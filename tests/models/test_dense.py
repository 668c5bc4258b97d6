"""`models.dense.dense`: forward and both gradients equal autodiff of x @ w."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from beneficial_rl.models import dense as dense_lib


def _loss(matmul, x, w, target):
  return jnp.sum(jnp.sin(matmul(x, w)) * target)


@pytest.mark.parametrize("lead", [(5,), (3, 4), (2, 3, 2)])
def test_value_and_gradients_match_autodiff(lead):
  kx, kw, kt = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (*lead, 6))
  w = jax.random.normal(kw, (6, 7))
  target = jax.random.normal(kt, (*lead, 7))
  want = jax.value_and_grad(lambda a, b: _loss(jnp.matmul, a, b, target),
                            argnums=(0, 1))(x, w)
  got = jax.jit(jax.value_and_grad(
      lambda a, b: _loss(dense_lib.dense, a, b, target), argnums=(0, 1)))(
          x, w)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  for g, r in zip(got[1], want[1]):
    assert g.shape == r.shape
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_weight_gradient_by_hand_and_dtypes():
  x = jnp.arange(12.0).reshape(2, 3, 2)
  w = jnp.array([[1.0, -1.0, 2.0], [0.5, 0.0, 1.0]])
  # d/dw sum(x @ w) = sum over rows of x, repeated per output column.
  dw = jax.grad(lambda w: jnp.sum(dense_lib.dense(x, w)))(w)
  rows = np.asarray(x).reshape(-1, 2).sum(0)
  np.testing.assert_allclose(dw, np.stack([rows] * 3, axis=1))
  xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
  gx, gw = jax.grad(lambda a, b: jnp.sum(dense_lib.dense(a, b)).astype(
      jnp.float32), argnums=(0, 1))(xb, wb)
  assert gx.dtype == jnp.bfloat16 and gw.dtype == jnp.bfloat16


def test_under_checkpoint_and_vmap():
  x = jax.random.normal(jax.random.key(1), (4, 3, 5))
  w = jax.random.normal(jax.random.key(2), (5, 2))
  fn = jax.checkpoint(lambda a, b: jnp.sum(jnp.tanh(dense_lib.dense(a, b))))
  ref = lambda a, b: jnp.sum(jnp.tanh(a @ b))
  np.testing.assert_allclose(jax.grad(fn, 1)(x, w), jax.grad(ref, 1)(x, w),
                             rtol=1e-5, atol=1e-6)
  per_row = jax.vmap(jax.grad(fn, 1), in_axes=(0, None))(x, w)
  np.testing.assert_allclose(
      per_row, jax.vmap(jax.grad(ref, 1), in_axes=(0, None))(x, w),
      rtol=1e-5, atol=1e-6)
