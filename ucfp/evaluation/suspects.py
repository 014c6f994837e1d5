"""Suspect models for verification, loaded from what a user has at hand.

A suspect is named by one string (`python -m ucfp.verify --suspect=...`):
- a checkpoint written by ucfp: `<workdir>/models/<name>-<key>` (the orbax folder),
  its `<name>-<key>.json` record, or `<workdir>/models/<name>` when one key matches;
- `module:function` (or `path/to/file.py:function`): the function is called with no
  arguments and returns a :class:`ucfp.Model` or a callable (images -> labels or
  scores); a module-level `ucfp.Model` is used as it is;
- an `.onnx` file, run with onnxruntime (the optional extra `ucfp[onnx]`).

Every suspect takes float32 images (N, H, W, C) in [0, 1], the fingerprints' shape.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from ucfp.core.types import Model

KEY = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{16})$")


@dataclasses.dataclass(frozen=True)
class LoadedSuspect:
  model: Model | Callable[[np.ndarray], Any]  # what ucfp.verify takes
  name: str  # the checkpoint's or Model's name, else the spec
  kind: str  # checkpoint | function | onnx


def load_suspect(spec: str, image_shape: Sequence[int]) -> LoadedSuspect:
  """Loads the suspect named by `spec` for images of `image_shape` (H, W, C)."""
  spec = str(spec).strip()
  if not spec:
    raise ValueError("suspect is empty; give a ucfp checkpoint, module:function or a .onnx file")
  if spec.lower().endswith(".onnx"):
    return load_onnx(spec, image_shape)
  if os.path.exists(spec) or _key_matches(spec):
    return load_checkpoint(spec, image_shape)
  if ":" in spec:
    return load_function(spec)
  raise ValueError(f"suspect {spec!r}: no such checkpoint, and not module:function or a .onnx file")


def _key_matches(prefix: str) -> list[str]:
  """Records `<prefix>-<16 hex digits>.json` beside `prefix`."""
  folder, base = os.path.split(os.path.abspath(prefix))
  if not base or not os.path.isdir(folder):
    return []
  pattern = re.compile(re.escape(base) + r"-[0-9a-f]{16}\.json$")
  return sorted(
    p
    for p in glob.glob(os.path.join(glob.escape(folder), "*.json"))
    if pattern.match(os.path.basename(p))
  )


def resolve_checkpoint(path: str) -> tuple[str, str, str]:
  """(models folder, name, key) of a checkpoint folder, its `.json` record, or a
  `<models>/<name>` prefix that exactly one key completes."""
  path = os.path.abspath(path).rstrip(os.sep)
  if path.endswith(".json"):
    path = path[: -len(".json")]
  elif not os.path.isdir(path):
    found = _key_matches(path)
    if len(found) != 1:
      names = ", ".join(os.path.basename(p) for p in found) or "none"
      raise ValueError(f"suspect {path!r}: {len(found)} checkpoints match ({names}); give one")
    path = found[0][: -len(".json")]
  m = KEY.match(os.path.basename(path))
  if not (m and os.path.isdir(path) and os.path.isfile(path + ".json")):
    raise ValueError(
      f"suspect {path!r} is not a ucfp checkpoint: needs a folder <name>-<16 hex key> "
      "and its .json record beside it"
    )
  return os.path.dirname(path), m["name"], m["key"]


def _stored_shapes(ckpt: str) -> dict[str, tuple[int, ...]]:
  """Leaf path -> shape of an orbax checkpoint, from its metadata (no arrays read)."""
  import orbax.checkpoint as ocp

  try:
    meta = ocp.StandardCheckpointer().metadata(ckpt)
  except Exception as e:  # noqa: BLE001 - orbax raises many types for a folder it cannot read
    raise ValueError(f"checkpoint {ckpt}: orbax cannot read it: {e}") from e
  tree = getattr(meta, "item_metadata", meta)
  return _shapes(getattr(tree, "tree", tree))


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """Path -> shape of every leaf (arrays, abstract arrays or orbax metadata; () if none)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): tuple(getattr(v, "shape", ())) for p, v in leaves}


def _num_classes(abstract: Callable[[int], Any], stored: dict[str, tuple[int, ...]]) -> int | None:
  """K of a checkpoint: the size, in `stored`, of the axis that is 1 with K=1 and 2 with K=2."""
  one, two = _shapes(abstract(1)), _shapes(abstract(2))
  for path, s1 in one.items():
    s2 = two[path]
    if s1 != s2 and path in stored and len(stored[path]) == len(s1):
      axis = next((i for i, ab in enumerate(zip(s1, s2, strict=True)) if ab == (1, 2)), None)
      if axis is not None:
        return int(stored[path][axis])
  return None


def load_checkpoint(path: str, image_shape: Sequence[int]) -> LoadedSuspect:
  """A :class:`ucfp.Model` restored from a checkpoint of `ucfp.evaluation.store`.

  The record's `spec.arch` gives the architecture, the checkpoint's metadata its
  class count; every stored shape must be what that architecture has for images of
  `image_shape` (H, W, C), else ValueError before any array is read.
  """
  from ucfp.evaluation.models import MODELS, get_module, inference_apply, init_variables
  from ucfp.evaluation.store import ModelStore

  root, name, key = resolve_checkpoint(path)
  ckpt = os.path.join(root, f"{name}-{key}")
  try:
    with open(ckpt + ".json") as f:
      record = json.load(f)
    arch = record["spec"]["arch"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"checkpoint record {ckpt}.json is unreadable or has no spec.arch: {e}") from e
  if arch not in MODELS:
    raise ValueError(
      f"checkpoint {ckpt}: spec.arch={arch!r} is not one of {', '.join(sorted(MODELS))}"
    )
  shape = tuple(int(d) for d in image_shape)

  def abstract(k):
    module = get_module(arch, k)
    return jax.eval_shape(lambda: init_variables(module, jax.random.PRNGKey(0), shape))

  stored = _stored_shapes(ckpt)
  k = _num_classes(abstract, stored)
  expected = _shapes(abstract(k)) if k else {}
  if not k or expected != stored:
    diff = sorted(set(expected) ^ set(stored)) or [p for p in expected if expected[p] != stored[p]]
    where = diff[0] if diff else "?"
    raise ValueError(
      f"checkpoint {ckpt}: its {arch} weights do not fit images of shape {shape} (the "
      f"fingerprints'): {where} is {stored.get(where)} there, {expected.get(where)} expected"
    )
  module = get_module(arch, k)
  variables, _ = ModelStore(root).restore(name, key, abstract(k))
  return LoadedSuspect(Model(inference_apply(module), variables, name), name, "checkpoint")


def load_function(spec: str) -> LoadedSuspect:
  """`module:function` or `file.py:function`: a Model or callable from a no-argument call."""
  module_name, _, attr = spec.rpartition(":")
  if not module_name or not attr:
    raise ValueError(f"suspect {spec!r} is not module:function")
  try:
    if module_name.endswith(".py"):
      if not os.path.isfile(module_name):
        raise FileNotFoundError(f"no such file {module_name!r}")
      loader = importlib.util.spec_from_file_location(
        os.path.splitext(os.path.basename(module_name))[0], module_name
      )
      module = importlib.util.module_from_spec(loader)
      loader.loader.exec_module(module)
    else:
      module = importlib.import_module(module_name)
  except (ImportError, FileNotFoundError) as e:
    raise ValueError(f"suspect {spec!r}: cannot import {module_name!r}: {e}") from e
  if not hasattr(module, attr):
    raise ValueError(f"suspect {spec!r}: module {module_name!r} has no attribute {attr!r}")
  obj = getattr(module, attr)
  if not isinstance(obj, Model):
    if not callable(obj):
      raise ValueError(f"suspect {spec!r}: {attr} is of type {type(obj).__name__}, not a function")
    obj = obj()
  if isinstance(obj, Model):
    return LoadedSuspect(obj, obj.name, "function")
  if callable(obj):
    return LoadedSuspect(obj, spec, "function")
  raise ValueError(
    f"suspect {spec!r}: {attr}() returned a value of type {type(obj).__name__}, not a "
    "ucfp.Model or a callable"
  )


def _onnx_layout(shape: Sequence[Any], image_shape: tuple[int, ...]) -> str:
  """NHWC, NCHW or flat, from an ONNX input's declared shape (symbolic dims match any size)."""
  fits = lambda dims, want: (
    len(dims) == len(want)
    and all(not isinstance(d, int) or d == w for d, w in zip(dims, want, strict=True))
  )
  h, w, c = image_shape
  dims = list(shape)[1:]
  for layout, want in (("NHWC", (h, w, c)), ("NCHW", (c, h, w)), ("flat", (h * w * c,))):
    if fits(dims, want):
      return layout
  raise ValueError(
    f"ONNX input shape {list(shape)} takes neither (N, {h}, {w}, {c}) nor (N, {c}, {h}, {w}) "
    f"nor (N, {h * w * c}) images, the fingerprints' shape"
  )


def load_onnx(path: str, image_shape: Sequence[int]) -> LoadedSuspect:
  """A callable running an ONNX classifier with onnxruntime on the CPU.

  Its one input takes the images as NHWC, NCHW (transposed here) or flattened, in
  [0, 1] (any normalisation belongs inside the graph); its first output is (N,)
  labels or (N, K) scores. A fixed batch size is honoured by padding the last batch.
  """
  try:
    import onnxruntime as ort
  except ImportError as e:
    raise ValueError(
      f"suspect {path!r} is an ONNX file, but onnxruntime is not installed: "
      "pip install 'ucfp[onnx]'"
    ) from e
  if not os.path.isfile(path):
    raise ValueError(f"suspect {path!r}: no such ONNX file")
  try:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
  except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
    raise ValueError(f"suspect {path!r} is not a valid ONNX model: {str(e).splitlines()[0]}") from e
  inputs = sess.get_inputs()
  if len(inputs) != 1:
    raise ValueError(f"suspect {path!r}: the ONNX model has {len(inputs)} inputs; ucfp feeds one")
  inp = inputs[0]
  if inp.type not in ("tensor(float)", "tensor(double)"):
    raise ValueError(f"suspect {path!r}: ONNX input {inp.name!r} is {inp.type}, not float")
  shape = tuple(int(d) for d in image_shape)
  layout = _onnx_layout(inp.shape, shape)
  dtype = np.float32 if inp.type == "tensor(float)" else np.float64
  fixed = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None

  def predict(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype)
    n = x.shape[0]
    if layout == "NCHW":
      x = x.transpose(0, 3, 1, 2)
    elif layout == "flat":
      x = x.reshape(n, -1)
    bs = fixed or n
    outs = []
    for start in range(0, n, bs):
      xb = x[start : start + bs]
      pad = bs - xb.shape[0]
      if pad:
        xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), dtype)])
      outs.append(np.asarray(sess.run(None, {inp.name: np.ascontiguousarray(xb)})[0])[: bs - pad])
    return np.concatenate(outs)

  return LoadedSuspect(predict, os.path.basename(path), "onnx")


def report_innocent_rates(
  report: dict, num_fingerprints: int, exclude: str = ""
) -> tuple[list[float], list[str]]:
  """The match rates and names of the unassociated models of a `report.json` of
  `python -m ucfp.generate` (checked: present, numbers in [0, 1], written for
  `num_fingerprints`), leaving out the one named `exclude` (a suspect is never judged
  against a null calibrated on itself); `ucfp.verify` takes the null from them."""
  innocents = report.get("unassociated") if isinstance(report, dict) else None
  if not isinstance(innocents, list) or not innocents:
    raise ValueError(
      "report has no 'unassociated' match rates (written with config.evaluate=false?)"
    )
  n = report.get("num_fingerprints")
  if n != num_fingerprints:
    raise ValueError(
      f"report num_fingerprints={n} but the fingerprint file has {num_fingerprints}; "
      "give the report written with these fingerprints"
    )
  rates, names = [], []
  for e in innocents:
    rate = e.get("match_rate") if isinstance(e, dict) else None
    if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
      raise ValueError(f"report unassociated entry {e!r}: match_rate must be a number in [0, 1]")
    if e.get("name") != exclude:
      rates.append(float(rate))
      names.append(str(e.get("name")))
  if not rates:
    raise ValueError(f"report has no unassociated model besides the suspect {exclude!r}")
  return rates, names
