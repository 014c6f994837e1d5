"""Students of the base: knowledge distillation on its soft labels, and model extraction
from its hard labels alone (the black-box threat). Neither reads the true train labels."""

from __future__ import annotations

import jax
import numpy as np

from ucfp.core.predict import predict_logits
from ucfp.core.types import Model
from ucfp.evaluation.attacks.base import Attack, Context, Derivation, TrainInputs
from ucfp.evaluation.data import Dataset

# Extraction's query sets (QUERIES): halves of the train split, the half `half_b` with an
# augmented copy, or out-of-distribution natural-image patches.
QUERIES = ("half_a", "half_b", "aug", "ood")
# The seed of the augmented and out-of-distribution query sets.
QUERY_SEED = 4003


def ood_queries(n: int, image_shape, seed: int = QUERY_SEED) -> np.ndarray:
  """n random patches of scikit-learn's two embedded photographs (no download), as
  images (n, H, W, C) float32 in [0, 1]: random square crops (1/16 to 1/2 of the
  shorter side), resized to (H, W), grey (mean of RGB) when C = 1, random flips."""
  from PIL import Image
  from sklearn.datasets import load_sample_images

  h, w, c = image_shape
  photos = [Image.fromarray(im) for im in load_sample_images().images]
  rng = np.random.default_rng(seed)
  out = np.empty((n, h, w, c), np.float32)
  for i in range(n):
    photo = photos[rng.integers(len(photos))]
    side = int(rng.integers(min(photo.size) // 16, min(photo.size) // 2 + 1))
    left = int(rng.integers(0, photo.size[0] - side + 1))
    top = int(rng.integers(0, photo.size[1] - side + 1))
    patch = photo.crop((left, top, left + side, top + side)).resize((w, h), Image.BILINEAR)
    arr = np.asarray(patch, np.float32) / 255.0
    arr = arr.mean(-1, keepdims=True) if c == 1 else arr[..., :c]
    out[i] = arr[:, ::-1] if rng.random() < 0.5 else arr
  return out


def augmented_queries(x: np.ndarray, seed: int = QUERY_SEED) -> np.ndarray:
  """x (n, H, W, C) and a copy of it flipped at random and translated by up to 2
  pixels (edge padding): (2n, H, W, C)."""
  rng = np.random.default_rng(seed)
  n, h, w, _ = x.shape
  flips = rng.random(n) < 0.5
  moved = np.where(flips[:, None, None, None], x[:, :, ::-1], x)
  padded = np.pad(moved, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
  dy, dx = rng.integers(0, 5, n), rng.integers(0, 5, n)
  moved = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
  return np.concatenate([x, moved]).astype(np.float32)


def teacher_labels(base: Model, x: np.ndarray) -> np.ndarray:
  """The base's hard labels (n,) int32 for images x: all a label-only API returns."""
  return np.asarray(predict_logits(base.apply_fn, base.variables, x).argmax(-1), np.int32)


def teacher_probs(base: Model, x: np.ndarray, temperature: float) -> np.ndarray:
  """The base's probabilities (n, K) at `temperature` for images x."""
  logits = predict_logits(base.apply_fn, base.variables, x)
  return np.asarray(jax.nn.softmax(logits / temperature, axis=-1), np.float32)


def _student_arch(arg: str, ctx: Context) -> str:
  return ctx.base_spec.arch if arg == "same" else arg


def distill_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """distill:ARCH:TEMP: a student of ARCH trained from scratch (the base's recipe) on
  the base's probabilities at TEMP over the train images (Hinton et al., 2015)."""
  arch, temperature = _student_arch(attack.args[0], ctx), attack.args[1]
  spec = ctx.student_spec(arch, labels="soft", temperature=temperature)
  inputs = lambda: TrainInputs(data.train_x, teacher_probs(base, data.train_x, temperature))
  return Derivation(arch, spec=spec, inputs=inputs)


def extraction_queries(queries: str, data: Dataset, ctx: Context):
  """The thief's query images and the indices it trains on: (x, indices or None)."""
  if queries in ("half_a", "half_b"):
    return data.train_x, ctx.halves[0 if queries == "half_a" else 1]
  if queries == "aug":
    return augmented_queries(data.train_x[ctx.halves[1]]), None
  return ood_queries(len(data.train_x), data.train_x.shape[1:]), None


def extract_attack(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """extract:ARCH:QUERIES: a student of ARCH trained from scratch (the base's recipe) on
  the base's hard labels for the thief's queries only (never the true labels)."""
  arch, queries = _student_arch(attack.args[0], ctx), attack.args[1]
  spec = ctx.student_spec(arch, labels="parent", subset=queries)

  def inputs():
    x, indices = extraction_queries(queries, data, ctx)
    y = np.zeros(len(x), np.int32)  # only the queried images are labelled (and trained on)
    asked = slice(None) if indices is None else indices
    y[asked] = teacher_labels(base, x[asked])
    return TrainInputs(x, y, indices)

  return Derivation(arch, spec=spec, inputs=inputs)
