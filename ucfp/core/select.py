"""Over-generation and selection of fingerprints (`config.oversample`).

Generation runs on `oversample * N` candidates (each target label repeated), and the N
kept are, per target class, the ones the base model puts in their class by the
smallest margin `z_y - max_{j != y} z_j`. Candidates the base model misclassifies come
last (largest margin first), so a class never runs short.

Why the margin: on models ucfp did not train, the candidates driven deepest into their
class were the ones independently trained models followed (an exploratory probe on the
avg-pool client: Spearman correlation of the base's margin with the innocents' mean
match 0.26-0.29; measured effect in benchmarks/results/clients-digits-r3.md, README
"Client models"); the robustness term has already made every
candidate hold across the pruned variants, so the kept ones lose no robustness there.
Not a free lunch: on ucfp's own digits zoo with 11 references it raised T (0.030 ->
0.040, benchmarks/results/quality-digits-threat-oversample.md), so only configs/own.py
(few references) uses it.

With `config.class_cap = c > 1` the candidates are ranked across classes instead (same
sort key), each class kept at most ceil(c N / K) times (`across_classes`): a class whose
best candidates the base still puts deep in it is one the model family falls into
easily, and gives fewer fingerprints (benchmarks/results/clients-digits-across-*.md).

With validators (`config.robust.validators`: the owner's own copies pruned and
fine-tuned as a thief would, held out of the objective) the candidates most of them
still put in their class come first (`fewest_votes` with their misses as the votes),
then the smallest margin: the kept fingerprints are the ones pruning and fine-tuning
were measured not to undo (benchmarks/results/clients-digits-val-*-selection.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ucfp.core import objectives


def candidate_labels(y: np.ndarray, oversample: int) -> np.ndarray:
  """(oversample * N,) int32: the N target labels `y`, repeated `oversample` times."""
  return np.tile(np.asarray(y, np.int32), int(oversample))


def base_margins(apply_fn, variables, x, y, batch: int = 1024) -> np.ndarray:
  """(M,) float32 margins of the base model on x (M, H, W, C) for labels y (M,)."""
  fn = jax.jit(lambda v, xb, yb: objectives.margins(apply_fn(v, xb), yb))
  x, y = jnp.asarray(x), jnp.asarray(y)
  return np.concatenate(
    [np.asarray(fn(variables, x[i : i + batch], y[i : i + batch])) for i in range(0, len(x), batch)]
  ).astype(np.float32)


def lowest_margin(margins: np.ndarray, candidates_y: np.ndarray, y: np.ndarray) -> np.ndarray:
  """(N,) candidate indices: slot i of `y` (N,) gets a candidate labelled y[i].

  Per class c, the candidates labelled c are ranked: correctly classified ones (margin
  > 0) by ascending margin, then the rest by descending margin; the first count(y == c)
  fill the slots with y == c in order. Pure numpy; ties keep candidate order.

  Raises:
    ValueError: a class has fewer candidates than slots.
  """
  margins, candidates_y, y = np.asarray(margins), np.asarray(candidates_y), np.asarray(y)
  out = np.empty(len(y), np.int64)
  for c in np.unique(y):
    slots = np.flatnonzero(y == c)
    cand = np.flatnonzero(candidates_y == c)
    if len(cand) < len(slots):
      raise ValueError(f"class {int(c)}: {len(cand)} candidates for {len(slots)} fingerprints")
    m = margins[cand]
    hit = m > 0
    # Sort key: hits first (0), then misses (1); hits by +margin, misses by -margin.
    order = np.lexsort((np.where(hit, m, -m), ~hit))
    out[slots] = cand[order[: len(slots)]]
  return out


def fewest_votes(
  margins: np.ndarray, votes: np.ndarray, candidates_y: np.ndarray, y: np.ndarray
) -> np.ndarray:
  """(N,) candidate indices as `lowest_margin`, with per class the candidates of the
  fewest `votes` (M,) non-negative ints first among those the base model classifies
  right, then the smallest margin (M,); misclassified candidates last. Pure numpy."""
  return lowest_margin(votes_key(margins, votes), candidates_y, y)


def class_cap(factor: float, n: int, num_classes: int) -> int:
  """The most fingerprints of one class out of n: ceil(factor * n / num_classes)."""
  return int(np.ceil(factor * n / num_classes - 1e-9))


def across_classes(key: np.ndarray, candidates_y: np.ndarray, n: int, cap: int) -> np.ndarray:
  """(n,) candidate indices ranked across classes, not per class: the candidates the
  base model classifies right (key > 0) by ascending `key` (M,) (a margin, or
  `fewest_votes`' votes-then-margin key), then the misclassified ones by descending
  key, skipping a class once `cap` of it are kept. Pure numpy; ties keep candidate order.

  Raises:
    ValueError: fewer than n candidates fit under the cap.
  """
  key, candidates_y = np.asarray(key, np.float64), np.asarray(candidates_y)
  hit = key > 0
  order = np.lexsort((np.where(hit, key, -key), ~hit))
  counts: dict[int, int] = {}
  out = []
  for i in order:
    c = int(candidates_y[i])
    if counts.get(c, 0) >= cap:
      continue
    counts[c] = counts.get(c, 0) + 1
    out.append(int(i))
    if len(out) == n:
      return np.asarray(out, np.int64)
  raise ValueError(f"across_classes: {len(out)} candidates fit under cap={cap}, {n} asked")


def votes_key(margins: np.ndarray, votes: np.ndarray) -> np.ndarray:
  """(M,) `fewest_votes`' sort key: hits (margin > 0) ordered by (votes, margin) and kept
  positive, misses their margin (<= 0)."""
  margins, votes = np.asarray(margins, np.float64), np.asarray(votes)
  if votes.shape != margins.shape or (votes.size and votes.min() < 0):
    raise ValueError(f"votes must be {margins.shape} non-negative integers; got {votes.shape}")
  span = float(np.max(np.abs(margins), initial=0.0)) + 1.0
  return np.where(margins > 0, votes * span + margins, margins)
