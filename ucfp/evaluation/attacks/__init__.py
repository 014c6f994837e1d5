"""Attacks that derive a copy of a model: the threat model of the evaluation zoo.

An attack spec is `NAME[:ARG...]`; `config.zoo.attacks` lists them, comma-separated.
RATE is in (0, 1); FT is `finetune` (default: masked fine-tuning after pruning) or
`raw`; DATA is `same` (the train split) or `other` (its half `half_b`, augmented);
ARCH is `same` (the base's architecture) or a zoo architecture.

    spec                     derived model               what the adversary does
    prune_global:RATE[:FT]   global-pruned-RATE          magnitude pruning, all kernels at once
    prune_layer:RATE[:FT]    layer-pruned-RATE           magnitude pruning, each kernel at RATE
    prune_channel:RATE[:FT]  channel-pruned-RATE         conv output channels of least L1 norm
    fine_prune:RATE[:FT]     fine-pruned-RATE            the last conv's channels least active
                                                         on clean images (Liu et al., 2018)
    finetune_all:DATA        finetuned-DATA-data         fine-tunes every layer
    finetune_last:DATA       finetuned-last-DATA-data    fine-tunes the last layer only
    wash:DATA                washed-DATA-data            every layer, 10x the fine-tuning rate
    new_head[:LAYERS]        new-head-LAYERS             a re-initialised last layer, then
                                                         `all` (default) or `last` layers trained
                                                         at the base's learning rate
    quant:BITS[:GRAIN]       quantized-intBITS           BITS 8 or 4; GRAIN `channel` (default,
                             [-per-channel]              name suffix) or `tensor`
    noise:SCALE              noise-SCALE                 Gaussian noise on every kernel, std
                                                         SCALE x the kernel's std
    distill:ARCH[:TEMP]      distilled-ARCH-TTEMP        a student on the base's soft labels at
                                                         TEMP (default 4) over the train images
    extract:ARCH:QUERIES     extracted-ARCH-QUERIES      a student on the base's hard labels for
                                                         QUERIES: half_a, half_b, aug (half_b and
                                                         an augmented copy), ood (photo patches)
    advtrain:KIND[:EPS]      advtrained-KIND-EPS         fine-tuning on FGSM or PGD examples of
                                                         L-inf radius EPS (default 0.03)

Fine-tuning uses `zoo.finetune_epochs` and `zoo.finetune_learning_rate` (as the zoo's
pruned copies); students train from scratch with the base's recipe (`train.*`). A
copy whose test accuracy is below USEFUL_FRACTION of the base's is reported as not
useful: destroying the model is no theft.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ucfp.core.types import Model
from ucfp.evaluation.attacks.adversarial import advtrain_attack
from ucfp.evaluation.attacks.base import Attack, Context, Derivation, TrainInputs
from ucfp.evaluation.attacks.distill import QUERIES, distill_attack, extract_attack
from ucfp.evaluation.attacks.finetune import finetune_attack, new_head_attack
from ucfp.evaluation.attacks.pruning import prune_attack
from ucfp.evaluation.attacks.quantize import noise_attack, quant_attack
from ucfp.evaluation.data import Dataset
from ucfp.evaluation.models import MODELS, get_module, inference_apply
from ucfp.evaluation.train import train

__all__ = [
  "ATTACKS", "EXTENDED", "USEFUL_FRACTION", "Attack", "Context", "Derivation",
  "TrainInputs", "derive", "parse_attack", "parse_attacks", "run_attack",
]  # fmt: skip

# A derived copy whose test accuracy is below this fraction of the base's is not useful.
USEFUL_FRACTION = 0.85
# config.zoo.extended: the zoo's derived copies before attacks had specs (same names).
EXTENDED = ("prune_channel:0.5", "quant:8:tensor", "finetune_all:other")


@dataclasses.dataclass(frozen=True)
class Arg:
  """An attack argument: its name, parser (text -> value, None if invalid), what is
  allowed (for errors), and its default (None: required)."""

  name: str
  parse: Callable[[str], object]
  allowed: str
  default: object = None


def _number(low, high, low_open=True):
  def parse(t):
    try:
      v = float(t)
    except ValueError:
      return None
    ok = (v > low if low_open else v >= low) and (high is None or v < high)
    return v if ok else None

  return parse


def _choice(*options, cast=str):
  return lambda t: cast(t) if t in options else None


RATE = Arg("RATE", _number(0.0, 1.0), "a number in (0, 1)")
FT = Arg("FT", _choice("finetune", "raw"), "finetune or raw", "finetune")
DATA = Arg("DATA", _choice("same", "other"), "same or other")
ARCH = Arg("ARCH", _choice("same", *sorted(MODELS)), f"same or one of {', '.join(sorted(MODELS))}")


@dataclasses.dataclass(frozen=True)
class AttackDef:
  args: tuple[Arg, ...]
  derive: Callable[[Attack, Model, Dataset, Context], Derivation]
  name: Callable[[tuple], str]  # the derived model's name from the parsed arguments

  def usage(self, kind: str) -> str:
    return kind + "".join(f":{a.name}" if a.default is None else f"[:{a.name}]" for a in self.args)


def _pruned(prefix):
  return lambda a: f"{prefix}-pruned-{a[0]:g}" + ("-raw" if a[1] == "raw" else "")


ATTACKS: dict[str, AttackDef] = {
  "prune_global": AttackDef((RATE, FT), prune_attack, _pruned("global")),
  "prune_layer": AttackDef((RATE, FT), prune_attack, _pruned("layer")),
  "prune_channel": AttackDef((RATE, FT), prune_attack, _pruned("channel")),
  "fine_prune": AttackDef((RATE, FT), prune_attack, _pruned("fine")),
  "finetune_all": AttackDef((DATA,), finetune_attack, lambda a: f"finetuned-{a[0]}-data"),
  "finetune_last": AttackDef((DATA,), finetune_attack, lambda a: f"finetuned-last-{a[0]}-data"),
  "wash": AttackDef((DATA,), finetune_attack, lambda a: f"washed-{a[0]}-data"),
  "new_head": AttackDef(
    (Arg("LAYERS", _choice("all", "last"), "all or last", "all"),),
    new_head_attack,
    lambda a: f"new-head-{a[0]}",
  ),
  "quant": AttackDef(
    (
      Arg("BITS", _choice("8", "4", cast=int), "8 or 4"),
      Arg("GRAIN", _choice("channel", "tensor"), "channel or tensor", "channel"),
    ),
    quant_attack,
    lambda a: f"quantized-int{a[0]}" + ("-per-channel" if a[1] == "channel" else ""),
  ),
  "noise": AttackDef(
    (Arg("SCALE", _number(0.0, None), "a positive number"),),
    noise_attack,
    lambda a: f"noise-{a[0]:g}",
  ),
  "distill": AttackDef(
    (ARCH, Arg("TEMP", _number(0.0, None), "a positive number", 4.0)),
    distill_attack,
    lambda a: f"distilled-{a[0]}-T{a[1]:g}",
  ),
  "extract": AttackDef(
    (ARCH, Arg("QUERIES", _choice(*QUERIES), " or ".join(QUERIES))),
    extract_attack,
    lambda a: f"extracted-{a[0]}-{a[1]}",
  ),
  "advtrain": AttackDef(
    (
      Arg("KIND", _choice("fgsm", "pgd"), "fgsm or pgd"),
      Arg("EPS", _number(0.0, 1.0), "a number in (0, 1)", 0.03),
    ),
    advtrain_attack,
    lambda a: f"advtrained-{a[0]}-{a[1]:g}",
  ),
}


def _format(v) -> str:
  return f"{v:g}" if isinstance(v, float) else str(v)


def parse_attack(text: str, field: str = "config.zoo.attacks") -> Attack:
  """Parses one attack spec `NAME[:ARG...]` (see the module docstring).

  Raises ValueError naming `field` and what is allowed.
  """
  kind, *parts = text.strip().split(":")
  if kind not in ATTACKS:
    usages = ", ".join(d.usage(k) for k, d in ATTACKS.items())
    raise ValueError(f"{field}: unknown attack {kind!r} in {text!r}; allowed: {usages}")
  d = ATTACKS[kind]
  required = sum(a.default is None for a in d.args)
  if not required <= len(parts) <= len(d.args):
    raise ValueError(f"{field}: {text!r} is not {d.usage(kind)}")
  args = []
  for arg, part in zip(d.args, parts + [None] * (len(d.args) - len(parts)), strict=True):
    value = arg.default if part is None else arg.parse(part)
    if value is None:
      raise ValueError(f"{field}: {text!r}: {arg.name} must be {arg.allowed}")
    args.append(value)
  args = tuple(args)
  canonical = ":".join([kind, *(_format(a) for a in args)])
  rate = args[0] if d.derive is prune_attack else None
  return Attack(kind, args, canonical, d.name(args), rate)


def parse_attacks(text: str, field: str = "config.zoo.attacks") -> list[Attack]:
  """Parses comma-separated attack specs; a spec given twice is an error."""
  out = [parse_attack(t, field) for t in str(text).split(",") if t.strip()]
  seen = set()
  for a in out:
    if a.text in seen:
      raise ValueError(f"{field}: {a.text!r} is given twice")
    seen.add(a.text)
  return out


def derive(attack: Attack, base: Model, data: Dataset, ctx: Context) -> Derivation:
  """What `attack` derives from the base model `base` with the data and recipe given."""
  return ATTACKS[attack.kind].derive(attack, base, data, ctx)


def run_attack(attack: Attack | str, base: Model, data: Dataset, ctx: Context) -> Model:
  """Applies `attack` to `base` and returns the derived model (trained now, uncached;
  the zoo caches derived models, see `ucfp.evaluation.zoo`)."""
  attack = parse_attack(attack, "attack") if isinstance(attack, str) else attack
  d = derive(attack, base, data, ctx)
  apply_fn = inference_apply(get_module(d.arch, ctx.num_classes))
  if d.spec is None:
    return Model(apply_fn, d.variables, attack.name)
  ti = d.inputs()
  module = get_module(d.arch, ctx.num_classes)
  v = train(
    module, d.spec, ti.x, ti.y, indices=ti.indices, init=ti.init, masks=ti.masks, name=attack.name
  )
  return Model(apply_fn, v, attack.name)
