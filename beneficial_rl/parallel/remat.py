"""Per-block rematerialisation without changing the model definition.

Why: without remat, autodiff keeps every layer's activations *and* its
FSDP-gathered (full, unsharded) weights alive from the forward to the backward
pass, so per-device memory stops shrinking with the FSDP degree (for
llama3_8b that is the whole model in the compute dtype on every device).
Wrapping each `layers.Block` call in `nn.checkpoint` makes the backward pass
recompute the block (re-gathering its weights) instead.

Used as a context around `model.apply` inside the differentiated function:

  with remat.remat_blocks():
    logits, _ = model.apply({'params': params}, tokens, positions)

It intercepts `Block.__call__` through `nn.intercept_methods`, so the model
and its parameter tree are unchanged. Gradients are identical up to float
reassociation.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax

from beneficial_rl.models import layers

# Named policies: what a rematerialised block may keep from its forward pass.
POLICIES: dict[str, Callable[..., Any] | None] = {
    "nothing": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}

_state = threading.local()


@contextlib.contextmanager
def remat_blocks(policy: str = "nothing") -> Iterator[None]:
  """Rematerialises every transformer block called inside the context.

  Args:
    policy: 'nothing' (save only block inputs; least memory) or 'dots'
      (also save matmul outputs without batch dims).
  """
  if policy not in POLICIES:
    raise ValueError(f"remat policy {policy!r}; expected one of "
                     f"{sorted(POLICIES)}")
  jax_policy = POLICIES[policy]

  def interceptor(next_fun, args, kwargs, context):
    if (getattr(_state, "inside", False) or context.method_name != "__call__"
        or not isinstance(context.module, layers.Block)):
      return next_fun(*args, **kwargs)

    def body(module, *a, **kw):
      _state.inside = True  # The inner call must not be wrapped again.
      try:
        return module(*a, **kw)
      finally:
        _state.inside = False

    # body(module, x, positions, mask, cache, end, num_queries): the last
    # is a Python int or None.
    static = (6,) if len(args) >= 6 else ()
    return nn.checkpoint(body, policy=jax_policy, static_argnums=static)(
        context.module, *args, **kwargs)

  with nn.intercept_methods(interceptor):
    yield
