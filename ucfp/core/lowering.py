"""Which convolution lowering a model's `auto` convolutions use while being traced.

The generation step pairs each variant-batching strategy with the convolution lowering
that is fastest for it on the backend (measured in benchmarks/speed.py): a model layer
reads `resolve_conv_impl` while it is traced, the step sets `conv_lowering` around the
trace. A model that ignores it (any non-ucfp model) is unaffected.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax

CONV_IMPLS = ("auto", "im2col", "xla")
_LOWERING: contextvars.ContextVar[str | None] = contextvars.ContextVar(
  "conv_lowering", default=None
)


@contextlib.contextmanager
def conv_lowering(impl: str | None) -> Iterator[None]:
  """While tracing inside this context, `impl="auto"` convolutions use `impl`.

  Generation uses it to pair each variant-batching strategy with the lowering that
  is fastest for it (measured in benchmarks/speed.py); `None` keeps the default.
  """
  token = _LOWERING.set(impl)
  try:
    yield
  finally:
    _LOWERING.reset(token)


def resolve_conv_impl(impl: str) -> str:
  """`auto` -> the `conv_lowering` in force, else `im2col` on CPU and `xla` elsewhere."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv impl={impl!r} is not one of {', '.join(CONV_IMPLS)}")
  if impl == "auto":
    override = _LOWERING.get()
    if override is not None:
      return override
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return impl
