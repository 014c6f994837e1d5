"""The zoo's model lists (`config.reference.models`, `config.zoo.unassociated`):
`arch:seed[:subset[:epochs]]` entries, parsed and checked before any compute."""

from __future__ import annotations

import dataclasses

from ucfp.evaluation.blackbox import BLACKBOXES

SUBSETS = ("full", "half_a", "half_b")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  arch: str
  seed: int
  subset: str = "full"
  epochs: int | None = None


def parse_model_list(text: str, field: str, blackbox: bool = False) -> list[ModelEntry]:
  """Parses `arch:seed[:subset[:epochs]]` entries separated by commas; with `blackbox`,
  arch may also be a scikit-learn black box (`ucfp.evaluation.blackbox.BLACKBOXES`).

  Raises ValueError naming `field` on a malformed entry or an unknown architecture.
  """
  from ucfp.evaluation.models import MODELS

  archs = sorted(MODELS) + (list(BLACKBOXES) if blackbox else [])
  entries = []
  for item in [t.strip() for t in str(text).split(",") if t.strip()]:
    parts = item.split(":")
    ok = 2 <= len(parts) <= 4 and parts[1].lstrip("-").isdigit()
    ok = ok and (len(parts) < 3 or parts[2] in SUBSETS)
    ok = ok and (len(parts) < 4 or (parts[3].isdigit() and int(parts[3]) > 0))
    if not ok:
      raise ValueError(
        f"{field}: entry {item!r} is not arch:seed[:subset[:epochs]] "
        f"(subset one of {', '.join(SUBSETS)}, epochs a positive integer)"
      )
    if parts[0] not in archs:
      raise ValueError(f"{field}: model {parts[0]!r} is not one of {', '.join(archs)}")
    entries.append(
      ModelEntry(
        parts[0],
        int(parts[1]),
        parts[2] if len(parts) > 2 else "full",
        int(parts[3]) if len(parts) > 3 else None,
      )
    )
  return entries
