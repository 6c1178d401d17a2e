"""The shape of the package: the imports between bpdemo's modules, and the public API's docstrings.

The imports are read from the source (every `import` and `from ... import`, wherever it stands: at
the top, inside a function, under `if TYPE_CHECKING`), so an import that runs late counts as much as
one that runs at once.
"""

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import bpdemo

PACKAGE = Path(bpdemo.__file__).resolve().parent
COMMAND_LINE = "bpdemo.infra.cli"
# The benchmark's commands and the `bpdemo` console script are entry points, like demos/: they may
# read the command line.
ENTRY_POINTS = {"bpdemo.__main__", "bpdemo.bench.__main__", "bpdemo.bench.explore"}


def module_name(path: Path) -> str:
    """`bpdemo/worked/trace.py` -> `bpdemo.worked.trace`; a package's `__init__.py` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(source: str, package: str, known: set[str]) -> set[str]:
    """The modules of `known` that `source` (a module of `package`) imports, anywhere in it.

    `import a.b` names the module a.b; `from a.b import c` names a.b.c when that is a module of its
    own, and a.b otherwise. Relative imports are resolved against `package`.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return found & known


def package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


IMPORTS = {
    name: imported_modules(path.read_text(encoding="utf-8"), package_of(name), set(MODULES))
    - {name}
    for name, path in MODULES.items()
}


def a_cycle(imports: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `imports` (module -> the modules it imports) as a path a -> ... -> a, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        path.append(name)
        for target in sorted(imports[name]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        done.add(name)
        return None

    for name in imports:
        if name not in done and (cycle := visit(name)):
            return cycle
    return None


def importers(module: str, imports: dict[str, set[str]]) -> set[str]:
    """The modules that import `module`, directly or through others."""
    found: set[str] = set()
    while grown := {name for name in set(imports) - found if imports[name] & (found | {module})}:
        found |= grown
    return found - {module}


def test_the_import_walk_finds_imports_wherever_they_stand():
    source = """
from typing import TYPE_CHECKING
import pkg.a
if TYPE_CHECKING:
    from pkg.sub.b import B
def later():
    from pkg import c
    from . import d
    from ..e import f
"""
    known = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.c", "pkg.d", "pkg.e", "pkg.unused"}
    found = imported_modules(source, "pkg.sub", known)
    assert found == {"pkg.a", "pkg.sub.b", "pkg.c", "pkg.sub", "pkg.e"}
    assert imported_modules("from . import d", "pkg", known) == {"pkg.d"}
    assert COMMAND_LINE in IMPORTS["bpdemo.bench.__main__"]  # the walk reads bpdemo itself


def test_the_checks_find_a_cycle_and_an_indirect_import_where_there_is_one():
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert a_cycle(imports) == ["a", "b", "c", "a"]
    assert a_cycle({**imports, "c": {"d"}}) is None
    assert importers("d", imports) == {"a", "b", "c", "e"}


def test_no_module_of_bpdemo_imports_itself_through_others():
    cycle = a_cycle(IMPORTS)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_library_module_imports_the_command_line():
    assert COMMAND_LINE in MODULES
    library = set(MODULES) - ENTRY_POINTS - {COMMAND_LINE}
    assert sorted(importers(COMMAND_LINE, IMPORTS) & library) == []


def own_docstring(obj) -> str | None:
    """The docstring `help(obj)` shows for `obj` itself, not one inherited or made up for it.

    A class inherits its base's docstring, and a dataclass without one is given its signature; a
    value (a dict, a number) shows the docstring of its type.
    """
    if isinstance(obj, type):
        text = (vars(obj).get("__doc__") or "").strip()
        if dataclasses.is_dataclass(obj) and text.startswith(f"{obj.__name__}("):
            made_up = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
            return None if text == made_up else text
        return text or None
    if inspect.isroutine(obj) or inspect.ismodule(obj):
        return (obj.__doc__ or "").strip() or None
    return None


def documented(name: str) -> bool:
    """A class or function has its own docstring; a value (a table of numbers) cannot carry one, so
    the docstring of a module of bpdemo that holds it must name it."""
    obj = getattr(bpdemo, name)
    if isinstance(obj, type) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return own_docstring(obj) is not None
    return any(
        getattr(module, name, None) is obj and f"`{name}`" in (module.__doc__ or "")
        for module in map(importlib.import_module, MODULES)
    )


def test_every_public_name_has_a_docstring_of_its_own():
    missing = [name for name in bpdemo.__all__ if not documented(name)]
    assert missing == [], f"help() shows no docstring of their own for: {', '.join(missing)}"
