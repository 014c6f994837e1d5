"""Public value types: a white-box model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
  """A white-box classifier: `apply_fn(variables, x) -> logits`.

  Attributes:
    apply_fn: pure function; x is float32 (B, H, W, C) in [0, 1], logits (B, K).
      Use one function object per architecture so compiled code is reused.
    variables: the weights pytree (Flax variables, Haiku params, an Equinox
      model's array leaves, ...).
    name: a label for reports.
  """

  apply_fn: Callable[[Any, Any], Any]
  variables: Any
  name: str = "model"

  def __call__(self, x):
    return self.apply_fn(self.variables, x)
