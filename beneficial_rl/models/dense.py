"""`dense(x, w)`: x[..., D] @ w[D, F] with a hand-written backward pass.

The forward pass is the plain matmul. The backward pass computes the weight
gradient as one 2-D matmul over the flattened rows, dw = x[M, D]^T @ g[M, F]
(M = the product of the leading dims), and the input gradient as g @ w^T.
That is the same arithmetic autodiff does, but autodiff of `x @ w` with
x [B, T, D] contracts two dims (b, t) for dw, and XLA:CPU then lays the
[B, T, F] output gradients out transposed, writing them through a strided
copy fused into the element-wise backward (SiLU, log-softmax); the 2-D form
reads them in place. On the peer workload's MLP backward this took about
20% less time, with bitwise-identical gradients (docs/performance.md).
"""

from __future__ import annotations

import jax

Array = jax.Array


@jax.custom_vjp
def dense(x: Array, w: Array) -> Array:
  """[..., F] = x[..., D] @ w[D, F]."""
  return x @ w


def _dense_fwd(x: Array, w: Array) -> tuple[Array, tuple[Array, Array]]:
  return x @ w, (x, w)


def _dense_bwd(residuals: tuple[Array, Array], g: Array
               ) -> tuple[Array, Array]:
  x, w = residuals
  rows_x = x.reshape(-1, x.shape[-1])
  rows_g = g.reshape(-1, g.shape[-1])
  dx = (g @ w.T).astype(x.dtype)
  dw = (rows_x.T @ rows_g).astype(w.dtype)
  return dx, dw


dense.defvjp(_dense_fwd, _dense_bwd)
