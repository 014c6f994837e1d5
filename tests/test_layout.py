"""The package layout: the method core imports nothing of the evaluation world, and no
module of ucfp takes part in an import cycle."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

PKG = pathlib.Path(__file__).resolve().parents[1] / "ucfp"


def test_core_loads_no_evaluation_module():
  code = (
    "import json, sys, ucfp, ucfp.core; "
    "fps = ucfp.Fingerprints; ucfp.fingerprint; ucfp.verify; ucfp.uniqueness_score; "
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ucfp'))))"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  loaded = json.loads(out.stdout.strip().splitlines()[-1])
  assert "ucfp.core.generation" in loaded and "ucfp.core.scoring" in loaded
  bad = [m for m in loaded if m.startswith(("ucfp.evaluation", "ucfp.pipeline"))]
  assert not bad, f"importing ucfp / ucfp.core loaded evaluation modules: {bad}"


def _module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(PKG.parent).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _imports(path: pathlib.Path, name: str) -> set[str]:
  """Every ucfp module `path` imports, at any depth (functions included)."""
  is_pkg = path.name == "__init__.py"
  package = name if is_pkg else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        mod = ".".join(base + ([node.module] if node.module else []))
      else:
        mod = node.module or ""
      out.add(mod)
      out |= {f"{mod}.{a.name}" for a in node.names}
  return {m for m in out if m.split(".")[0] == "ucfp"}


def _graph() -> dict[str, set[str]]:
  files = {_module_name(p): p for p in PKG.rglob("*.py")}
  return {
    name: {m for m in _imports(path, name) if m in files and m != name}
    for name, path in files.items()
  }


def test_core_source_never_imports_evaluation():
  graph = _graph()
  for name, deps in graph.items():
    if name.startswith("ucfp.core"):
      bad = sorted(d for d in deps if not d.startswith("ucfp.core"))
      assert not bad, f"{name} imports {bad}: the core may import only ucfp.core"
    if name.startswith("ucfp.evaluation"):
      bad = sorted(d for d in deps if d.startswith("ucfp.pipeline") or d == "ucfp.generate")
      assert not bad, f"{name} imports {bad}: the evaluation world is below the pipeline"


def test_no_import_cycle():
  edges = _graph()
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for d in sorted(edges[n]):
      if state.get(d) == 1:
        cycle = stack[stack.index(d) :] + [d]
        raise AssertionError("import cycle: " + " -> ".join(cycle))
      if d not in state:
        visit(d)
    stack.pop()
    state[n] = 2

  for n in sorted(edges):
    if n not in state:
      visit(n)


def test_cycle_detector_catches_a_cycle(tmp_path, monkeypatch):
  pkg = tmp_path / "ucfp"
  (pkg / "a").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "a" / "__init__.py").write_text("")
  (pkg / "a" / "x.py").write_text("from ucfp.a import y\n")
  (pkg / "a" / "y.py").write_text("def f():\n  from ucfp.a.x import g\n")
  monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
  try:
    test_no_import_cycle()
  except AssertionError as e:
    assert "ucfp.a.x" in str(e) and "ucfp.a.y" in str(e)
  else:
    raise AssertionError("the cycle x -> y -> x was not found")
