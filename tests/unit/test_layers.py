"""The package's layers: core <- robustness <- study, core <- bench; no import cycles, no private names imported.

Every ``import`` statement of every module is read with ``ast`` (including imports inside functions), so a lazy
import cannot hide an upward dependency.
"""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "snnlib"

#: layer -> the layers it may import from
ALLOWED = {"core": {"core"}, "robustness": {"core", "robustness"}, "study": {"core", "robustness", "study"},
           "bench": {"core", "bench"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("robustness", "study", "bench") else "core"


def resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of a relative import ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(path: Path):
    """(imported snnlib module, imported names, line) for every import statement of the file at path."""
    mod, is_pkg = module_name(path), path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "snnlib":
                    yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = resolve(mod, is_pkg, node.level, node.module)
            if target.split(".")[0] != "snnlib":
                continue
            names = [a.name for a in node.names]
            # ``from . import x`` imports the submodule x when it exists
            subs = [n for n in names if (PKG.parent / Path(*target.split("."), n)).with_suffix(".py").exists()
                    or (PKG.parent / Path(*target.split("."), n, "__init__.py")).exists()]
            for n in subs:
                yield f"{target}.{n}", [], node.lineno
            if len(subs) < len(names):
                yield target, [n for n in names if n not in subs], node.lineno


FILES = sorted(PKG.rglob("*.py"))


def graph():
    return {module_name(p): [(t, names, line) for t, names, line in imports(p)] for p in FILES}


def test_the_walker_sees_every_module_and_knows_the_layers():
    g = graph()
    assert {"snnlib.neurons", "snnlib.attacks.pgd", "snnlib.robustness.masking", "snnlib.study.cli",
            "snnlib.bench.compare"} <= set(g)
    assert layer_of("snnlib.attacks.pgd") == "core" and layer_of("snnlib.study.cli") == "study"
    # the walker resolves relative imports, including ones inside functions
    assert any(t == "snnlib.study.executors" for t, _, _ in g["snnlib.study.cli"])
    assert any(t == "snnlib.models" for t, _, _ in g["snnlib.attacks.rate"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_no_upward_import(path):
    mod = module_name(path)
    bad = [f"line {line}: {t}" for t, _, line in imports(path) if layer_of(t) not in ALLOWED[layer_of(mod)]]
    assert not bad, f"{mod} (layer {layer_of(mod)}) imports from a layer above it: {bad}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: module_name(p))
def test_no_private_name_imported_from_another_module(path):
    bad = [f"line {line}: {t}.{n}" for t, names, line in imports(path) for n in names
           if n.startswith("_") and n != "__version__"]
    assert not bad, f"{module_name(path)} imports private names: {bad}"


def test_no_import_cycles():
    g = {m: {t for t, _, _ in edges if t != m} for m, edges in graph().items()}
    # a package imports its submodules on purpose; edges *into* a package from its own submodules would close a
    # loop only through the package's __init__, which the interpreter resolves; keep the edges between modules
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if t not in g:
                continue
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    pkg_only = [c for c in cycles if not all(".".join(a.split(".")[:-1]) == b or ".".join(b.split(".")[:-1]) == a
                                             or a == b for a, b in zip(c, c[1:]))]
    assert not pkg_only, "import cycles: " + "; ".join(" -> ".join(c) for c in pkg_only)


def test_every_dunder_all_name_exists():
    import importlib
    missing = []
    for p in FILES:
        if p.name == "__main__.py":      # importing it would run the command line
            continue
        mod = importlib.import_module(module_name(p))
        missing += [f"{mod.__name__}.{n}" for n in getattr(mod, "__all__", []) if not hasattr(mod, n)]
    assert not missing, f"names in __all__ that do not exist: {missing}"
