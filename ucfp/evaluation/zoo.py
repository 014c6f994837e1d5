"""The evaluation zoo: base model, pruned copies, derived copies (attacks), unassociated
models, and the owner's reference and surrogate models.

Every model is trained once and cached (orbax) under a hash of its training
spec and the data, then restored on later runs. See DESIGN section 2.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import jax
import numpy as np

from ucfp.core import progress, prune
from ucfp.core.types import Model
from ucfp.evaluation import attacks
from ucfp.evaluation.blackbox import BLACKBOXES, blackbox_key, fit_blackbox
from ucfp.evaluation.data import Dataset, split_halves
from ucfp.evaluation.model_list import ModelEntry, parse_model_list
from ucfp.evaluation.models import accuracy, get_module, inference_apply, init_variables
from ucfp.evaluation.parallel import Job, run_jobs
from ucfp.evaluation.store import ModelStore, data_id, spec_key
from ucfp.evaluation.train import TrainSpec, train

# Surrogates are fine-tuned with seed config.seed + SURROGATE_SEED: another data order
# than the evaluation's pruned copies (which use config.seed).
SURROGATE_SEED = 3001
# The owner's validators (config.robust.validators): fine-tuned with yet another order.
VALIDATOR_SEED = 3101


@dataclasses.dataclass
class ZooModel:
  model: Model | Callable  # a white-box Model, or a black-box callable (images -> labels)
  kind: str  # base | pruned | derived | unassociated | reference | surrogate | validator
  test_accuracy: float
  rate: float | None = None
  seconds: float = 0.0  # training time of this build (0 when restored)
  label: str = ""  # the name of a black-box callable
  built_seconds: float = 0.0  # training time when the model was built (from its record)
  attack: str = ""  # the attack spec that derived it (kind 'derived')
  useful: bool = True  # False: test accuracy < attacks.USEFUL_FRACTION x the base's

  @property
  def name(self) -> str:
    return self.model.name if isinstance(self.model, Model) else self.label


@dataclasses.dataclass
class Zoo:
  base: ZooModel
  reference: list[ZooModel]
  pruned: list[ZooModel]
  unassociated: list[ZooModel]
  derived: list[ZooModel] = dataclasses.field(default_factory=list)  # zoo.attacks, .extended
  surrogate: list[ZooModel] = dataclasses.field(default_factory=list)  # robust.surrogates
  validator: list[ZooModel] = dataclasses.field(default_factory=list)  # robust.validators
  workers: int = 1  # the processes that trained this build's models (config.train.workers)

  def all(self) -> list[ZooModel]:
    return [
      self.base, *self.reference, *self.surrogate, *self.validator, *self.pruned,
      *self.derived, *self.unassociated,
    ]  # fmt: skip


class ZooBuilder:
  """Trains or restores models for one dataset and training configuration.

  only: None trains every model it is asked for that is not cached. A set of names
  trains only those: every other model is a stand-in (zero weights, accuracy NaN; the
  base is restored when cached), and the uncached ones are listed in `missing` (the
  plan of a parallel build, `ucfp.evaluation.parallel`, uses the empty set).
  restore_only: train nothing; an uncached model is listed in `missing` and left out of
  what the builder returns (`restore_zoo`).
  """

  def __init__(
    self,
    config,
    data: Dataset,
    workdir: str,
    only: frozenset[str] | None = None,
    restore_only: bool = False,
  ):
    self.config = config
    self.data = data
    self.store = ModelStore(os.path.join(workdir, "models"))
    self.data_key = data_id(data.train_x, data.train_y, data.info.name)
    self.halves = split_halves(len(data.train_x), seed=12345)
    self.only = only
    self.restore_only = restore_only
    self.missing: list[Job] = []  # uncached models not in `only`, in build order
    self.trained: dict[str, float] = {}  # name: training seconds, of this builder

  def _stand_in(self, apply_fn, variables, name: str, kind: str, rate=None) -> ZooModel:
    """A model a selective builder does not build: NaN accuracy, never scored."""
    return ZooModel(Model(apply_fn, variables, name), kind, float("nan"), rate)

  def _spec(self, entry: ModelEntry, **kw) -> TrainSpec:
    t = self.config.train
    return TrainSpec(
      arch=entry.arch,
      seed=entry.seed,
      epochs=entry.epochs or t.epochs,
      batch_size=t.batch_size,
      learning_rate=t.learning_rate,
      weight_decay=t.weight_decay,
      augment=t.augment,
      subset=entry.subset,
      **kw,
    )

  def _get(
    self, name: str, kind: str, spec: TrainSpec, init=None, masks=None, rate=None, inputs=None
  ):
    """Restores the model of `spec`, or trains it: on the dataset's train split (the
    subset of `spec`) from `init` with `masks`, or on what `inputs()` returns (an
    attack's `TrainInputs`, built only when training is needed)."""
    module = get_module(spec.arch, self.data.info.num_classes)
    apply_fn = inference_apply(module)
    key = spec_key(spec, self.data_key)
    abstract = jax.eval_shape(
      lambda: init_variables(module, jax.random.PRNGKey(0), self.data.info.image_shape)
    )
    if self.only is not None and name not in self.only:
      cached = self.store.exists(name, key)
      if not cached:
        self.missing.append(Job(name, kind))
      if not (cached and kind == "base" and self.only):  # a worker restores the base
        zeros = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract)
        return self._stand_in(apply_fn, zeros, name, kind, rate), key
    cached = self.store.restore(name, key, abstract)
    if cached is not None:
      variables, record = cached
      progress.note(f"  restored {name} (test accuracy {record['test_accuracy']:.4f})")
      zm = ZooModel(Model(apply_fn, variables, name), kind, record["test_accuracy"], rate)
      zm.built_seconds = float(record.get("train_seconds", 0.0))
      return zm, key
    if self.restore_only:
      self.missing.append(Job(name, kind))
      return None, key
    start = time.perf_counter()
    if inputs is None:
      indices = {"full": None, "half_a": self.halves[0], "half_b": self.halves[1]}[spec.subset]
      inputs = attacks.TrainInputs(self.data.train_x, self.data.train_y, indices, init, masks)
    else:
      inputs = inputs()
    progress.note(f"  training {name} ({spec.arch}, {spec.epochs} epochs)...")
    variables = train(
      module,
      spec,
      inputs.x,
      inputs.y,
      indices=inputs.indices,
      init=inputs.init,
      masks=inputs.masks,
      name=name,
    )
    variables = jax.block_until_ready(variables)
    seconds = time.perf_counter() - start
    acc = accuracy(apply_fn, variables, self.data.test_x, self.data.test_y)
    record = {
      "name": name,
      "kind": kind,
      "spec": dataclasses.asdict(spec),
      "data": self.data_key,
      "test_accuracy": acc,
      "train_seconds": seconds,
      "sparsity": prune.sparsity(variables),
    }
    self.store.save(name, key, variables, record)
    self.trained[name] = seconds
    progress.note(f"  {name}: test accuracy {acc:.4f} ({seconds:.1f} s)")
    return ZooModel(Model(apply_fn, variables, name), kind, acc, rate, seconds, "", seconds), key

  def base(self) -> tuple[ZooModel, str]:
    entry = ModelEntry(self.config.model, self.config.seed)
    out = self._get(f"base-{entry.arch}", "base", self._spec(entry))
    if out[0] is None:
      raise ValueError(f"{self.store.root}: no {self.config.model} base cached, nothing to restore")
    return out

  def pruned(
    self, base: ZooModel, base_key: str, rates=None, seed_offset: int = 0, kind: str = "pruned"
  ) -> list[ZooModel]:
    """Magnitude-pruned copies of the base, fine-tuned with their masks: the evaluation's
    (`kind='pruned'`, rates `zoo.prune_rates`) or the owner's surrogates (another seed)."""
    z = self.config.zoo
    out = []
    for rate in z.prune_rates if rates is None else rates:
      seed = self.config.seed + seed_offset
      entry = ModelEntry(self.config.model, seed, epochs=z.finetune_epochs)
      spec = dataclasses.replace(
        self._spec(entry),
        learning_rate=z.finetune_learning_rate,
        prune_rate=float(rate),
        prune_kind="global",
        parent=base_key,
        augment=False,
      )
      masks = prune.global_magnitude_masks(base.model.variables, float(rate))
      name = f"pruned-{rate:g}" if kind == "pruned" else f"{kind}-pruned-{rate:g}"
      zm, _ = self._get(name, kind, spec, init=base.model.variables, masks=masks, rate=float(rate))
      if zm is None:  # restore_only, not cached
        continue
      if kind == "pruned":
        zm.attack = f"prune_global:{rate:g}:finetune"
        zm.useful = zm.test_accuracy >= attacks.USEFUL_FRACTION * base.test_accuracy
      out.append(zm)
    return out

  def surrogates(self, base: ZooModel, base_key: str) -> list[ZooModel]:
    """The owner's surrogates (none for `c`): pruned copies (`robust.surrogates`)
    fine-tuned with another data order than the evaluation's, and the copies of the
    attacks `robust.surrogate_attacks` derived with the seed + SURROGATE_SEED."""
    if self.config.method == "c":
      return []
    r = self.config.robust
    out = self.pruned(base, base_key, r.surrogates, SURROGATE_SEED, "surrogate")
    specs = attacks.parse_attacks(r.surrogate_attacks, "config.robust.surrogate_attacks")
    return out + self.attacked(base, base_key, specs, SURROGATE_SEED, "surrogate")

  def validators(self, base: ZooModel, base_key: str) -> list[ZooModel]:
    """The owner's validators (none for `c`): pruned copies (`robust.validators`)
    fine-tuned as the surrogates are, with the seed + VALIDATOR_SEED; held out of the
    objective, they choose among the oversampled candidates (`ucfp.core.select`)."""
    if self.config.method == "c":
      return []
    rates = self.config.robust.get("validators", ())
    return self.pruned(base, base_key, rates, VALIDATOR_SEED, "validator")

  def context(self, base_key: str | None = None, seed_offset: int = 0) -> attacks.Context:
    """The adversary's context of every attack on the base (checkpoint key `base_key`,
    by default the one `base()` uses): the base's recipe with the seed moved by
    `seed_offset`, the zoo's fine-tuning."""
    if base_key is None:
      base_key = spec_key(
        self._spec(ModelEntry(self.config.model, self.config.seed)), self.data_key
      )
    entry = ModelEntry(self.config.model, self.config.seed + seed_offset)
    return attacks.Context(
      self._spec(entry),
      base_key,
      self.config.zoo.finetune_epochs,
      self.config.zoo.finetune_learning_rate,
      self.halves,
      self.data.info.num_classes,
    )

  def attacked(
    self, base: ZooModel, base_key: str, specs, seed_offset: int = 0, kind: str = "derived"
  ) -> list[ZooModel]:
    """The base's copies derived by each attack of `specs` (`ucfp.evaluation.attacks`):
    trained ones cached like every model, the others (quantisation, noise, pruning
    without fine-tuning) derived again on each build (no training). The evaluation's
    (`kind='derived'`) or the owner's surrogates (`kind='surrogate'`, named
    `surrogate-<name>`, the adversary's seed moved by `seed_offset`)."""
    ctx = self.context(base_key, seed_offset)
    out = []
    for attack in specs:
      d = attacks.derive(attack, base.model, self.data, ctx)
      name = attack.name if kind == "derived" else f"{kind}-{attack.name}"
      if d.spec is None:
        apply_fn = inference_apply(get_module(d.arch, self.data.info.num_classes))
        if self.only is not None:  # derived at once on every build: nothing to train
          out.append(self._stand_in(apply_fn, d.variables, name, kind, attack.rate))
          continue
        acc = accuracy(apply_fn, d.variables, self.data.test_x, self.data.test_y)
        zm = ZooModel(Model(apply_fn, d.variables, name), kind, acc, attack.rate)
      else:
        zm, _ = self._get(name, kind, d.spec, rate=attack.rate, inputs=d.inputs)
        if zm is None:  # restore_only, not cached
          continue
      if kind != "derived" or self.only is not None:
        out.append(zm)
        continue
      zm.attack = attack.text
      zm.useful = zm.test_accuracy >= attacks.USEFUL_FRACTION * base.test_accuracy
      if not zm.useful:
        progress.note(
          f"  {attack.name}: test accuracy {zm.test_accuracy:.4f} < {attacks.USEFUL_FRACTION} x "
          f"the base's {base.test_accuracy:.4f}: reported, not counted as a theft"
        )
      out.append(zm)
    return out

  def blackbox(self, entry: ModelEntry, name: str) -> ZooModel:
    """An innocent outside JAX (`ucfp.evaluation.blackbox`), queried for labels only."""
    indices = {"full": slice(None), "half_a": self.halves[0], "half_b": self.halves[1]}
    idx = indices[entry.subset]
    if self.only is not None:  # fitted on every build (not cached): nothing to train
      zm = ZooModel(lambda x: np.zeros(len(x), np.int32), "unassociated", float("nan"))
      zm.label = name
      return zm
    start = time.perf_counter()
    cache = os.path.join(self.store.root, f"{name}-{blackbox_key(entry, self.data_key)}.npz")
    fn = fit_blackbox(entry.arch, entry.seed, self.data.train_x[idx], self.data.train_y[idx], cache)
    seconds = time.perf_counter() - start
    acc = float(np.mean(fn(self.data.test_x) == self.data.test_y))
    built = getattr(fn, "fit_seconds", seconds)  # a stored one: its fit's, not this restore's
    return ZooModel(fn, "unassociated", acc, None, seconds, name, built)

  def sklearn_blackbox(self, seed: int = 7) -> ZooModel:
    """The extended zoo's innocent: scikit-learn's MLP on flat pixels (all the train split)."""
    return self.blackbox(ModelEntry("sk_mlp", seed), "sklearn-mlp")

  def listed(self, text: str, field: str, kind: str) -> list[ZooModel]:
    prefix = {"unassociated": "innocent"}.get(kind, kind)
    out = []
    for e in parse_model_list(text, field, blackbox=kind == "unassociated"):
      suffix = "" if e.subset == "full" else f"-{e.subset}"
      name = f"{prefix}-{e.arch}-s{e.seed}{suffix}"
      if e.arch in BLACKBOXES:
        out.append(self.blackbox(e, name))
      else:
        zm = self._get(name, kind, self._spec(e))[0]
        if zm is not None:  # None: restore_only, not cached
          out.append(zm)
    return out


def _collect(b: ZooBuilder, scope: str) -> Zoo | list[ZooModel]:
  """What `b` builds, in build order: `scope` 'zoo' (the owner's models and the
  evaluation's), 'owner' (the base, references, surrogates and validators) or 'surrogates' (the
  base and the surrogates: a list)."""
  config = b.config
  evaluation = scope == "zoo"
  base, base_key = b.base()
  if scope == "surrogates":
    return b.surrogates(base, base_key)
  needs_reference = config.method == "ltrc" and config.ltrc.term == "reference"
  reference = (
    b.listed(config.reference.models, "config.reference.models", "reference")
    if needs_reference
    else []
  )
  surrogate = b.surrogates(base, base_key)
  validator = b.validators(base, base_key)
  pruned = b.pruned(base, base_key) if evaluation else []
  unassoc = (
    b.listed(config.zoo.unassociated, "config.zoo.unassociated", "unassociated")
    if evaluation
    else []
  )
  derived = []
  if evaluation:
    specs = attacks.parse_attacks(config.zoo.attacks)
    if config.zoo.extended:  # the copies it always made, unless zoo.attacks has them
      given = {a.text for a in specs}
      specs += [a for a in map(attacks.parse_attack, attacks.EXTENDED) if a.text not in given]
    derived = b.attacked(base, base_key, specs)
  if evaluation and config.zoo.extended:
    unassoc.append(b.sklearn_blackbox())
  return Zoo(base, reference, pruned, unassoc, derived, surrogate, validator)


def plan(config, data: Dataset, workdir: str, scope: str) -> list[Job]:
  """The models of `scope` (see `_collect`) not cached in `workdir`, in build order."""
  b = ZooBuilder(config, data, workdir, only=frozenset())
  _collect(b, scope)
  return b.missing


def train_one(config, data: Dataset, workdir: str, scope: str, name: str) -> float:
  """Trains and caches the model `name` of `scope` (its base already cached when it
  derives from it); its training seconds. Run by the workers of a parallel build."""
  b = ZooBuilder(config, data, workdir, only=frozenset({name}))
  _collect(b, scope)
  if name not in b.trained:
    raise RuntimeError(f"{name!r} is not a model to train in this zoo (or is cached already)")
  return b.trained[name]


def _build(config, data: Dataset, workdir: str, scope: str):
  """Trains the uncached models of `scope` (in `config.train.workers` processes when
  more than one, see `ucfp.evaluation.parallel`), then restores and returns them."""
  start = time.perf_counter()
  jobs = plan(config, data, workdir, scope) if config.train.workers != 1 else []
  built, workers = run_jobs(jobs, config, data, workdir, scope)  # {}: trained below
  out = _collect(ZooBuilder(config, data, workdir), scope)
  models = out.all() if isinstance(out, Zoo) else out
  for m in models:
    if m.name in built:
      m.seconds = built[m.name]
  if isinstance(out, Zoo):
    out.workers = workers
  trained = [m for m in models if m.seconds > 0]
  wall = f", {time.perf_counter() - start:.1f} s wall in {workers} workers" if built else ""
  progress.note(
    f"zoo: trained {len(trained)} of {len(models)} models in "
    f"{sum(m.seconds for m in trained):.1f} s{wall} (the others restored or derived)"
  )
  return out


def build_zoo(config, data: Dataset, workdir: str, *, evaluation: bool = True) -> Zoo:
  """Trains or restores the base model, the owner's reference models (when the
  reference term needs them) and surrogates (`robust.surrogates`, rc and ltrc) and, if
  `evaluation`, the pruned copies, derived copies and unassociated models of `config`.
  `config.train.workers` other than 1 trains them in parallel processes (CPU)."""
  return _build(config, data, workdir, "zoo" if evaluation else "owner")


def restore_zoo(config, data: Dataset, workdir: str) -> tuple[Zoo, list[Job]]:
  """The zoo of `build_zoo` as far as it is cached in `workdir`, training nothing: (the
  zoo without its uncached models, those models (name, kind) in build order). Scores a
  build still in progress; raises ValueError when the base itself is not cached."""
  b = ZooBuilder(config, data, workdir, restore_only=True)
  return _collect(b, "zoo"), list(b.missing)


def build_surrogates(config, data: Dataset, workdir: str) -> list[ZooModel]:
  """Trains or restores only the base model and the surrogates of `config`."""
  return _build(config, data, workdir, "surrogates")
