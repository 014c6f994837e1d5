"""ucfp: fingerprinting neural networks with characteristic examples (JAX/Flax).

Implements "Characteristic Examples: High-Robustness, Low-Transferability
Fingerprinting of Neural Networks" (Wang et al., IJCAI 2021, arXiv 2105.07078).
"""

from ucfp.core.fingerprints import Fingerprints
from ucfp.core.generation import fingerprint
from ucfp.core.mistakes import mistake_fingerprints
from ucfp.core.progress import show_progress
from ucfp.core.scoring import (
  CombinedVerdict,
  UniquenessReport,
  Verdict,
  match_rate,
  null_dispersion,
  null_rate_upper_bound,
  uniqueness_score,
  verify,
  verify_combined,
)
from ucfp.core.types import Model
from ucfp.references import pruned_copies, simple_references, train_references

__all__ = [
  "CombinedVerdict",
  "Fingerprints",
  "Model",
  "UniquenessReport",
  "Verdict",
  "fingerprint",
  "match_rate",
  "mistake_fingerprints",
  "null_dispersion",
  "null_rate_upper_bound",
  "pruned_copies",
  "show_progress",
  "simple_references",
  "train_references",
  "uniqueness_score",
  "verify",
  "verify_combined",
]
__version__ = "0.1.0"
