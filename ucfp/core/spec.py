"""`GenSpec`: the hashable generation settings that shape the compiled step.

Read from a config by `GenSpec.from_config`; used by the step (`ucfp.core.step`) and by
generation (`ucfp.core.generation`), which both import it from here.
"""

from __future__ import annotations

import dataclasses

from ucfp.core.variants import VariantSpec, resolve_batching, resolve_chunk


@dataclasses.dataclass(frozen=True)
class GenSpec:
  """The hashable generation settings that shape the compiled step."""

  method: str
  loss: str
  kappa: float
  optimizer: str
  step_size: float
  num_variants: int
  variant: VariantSpec
  batching: str
  radius: float
  term: str
  weight: float
  reduce: str = "mean"
  ref_loss: str = "prob"
  ref_noise: float = 0.0
  ref_kappa: float = 0.0
  anchor_weight: float = 0.0
  budget: float = 0.0
  chunk: int = 0
  surrogate_weight: float = 0.0

  @classmethod
  def from_config(cls, c, num_examples: int | None = None) -> GenSpec:
    """`num_examples`: the examples generated at once (default config.num_fingerprints;
    `fingerprint` passes `oversample` times that)."""
    r = c.robust
    num = int(c.num_fingerprints) if num_examples is None else int(num_examples)
    return cls(
      method=c.method,
      loss=c.loss,
      kappa=float(c.kappa),
      optimizer=c.optimizer,
      step_size=float(c.step_size),
      num_variants=int(r.num_variants),
      variant=VariantSpec(
        float(r.noise_bound), r.noise_kind, r.mask, float(r.prune_rate[0]), float(r.prune_rate[1])
      ),
      batching=resolve_batching(r.batching, int(r.num_variants)),
      chunk=resolve_chunk(int(r.chunk), num),
      radius=float(c.ltrc.radius) if c.method == "ltrc" else 0.0,
      term=c.ltrc.term if c.method == "ltrc" else "none",
      weight=float(c.ltrc.weight),
      reduce=c.ltrc.reduce,
      ref_loss=c.ltrc.get("ref_loss", "prob"),
      ref_noise=float(c.ltrc.get("ref_noise", 0.0)),
      ref_kappa=float(c.ltrc.get("ref_kappa", 0.0)),
      anchor_weight=float(c.ltrc.get("anchor_weight", 0.0)),
      budget=float(c.get("budget", 0.0)),
      surrogate_weight=float(r.surrogate_weight) if c.method != "c" else 0.0,
    )
