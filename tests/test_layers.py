"""The layer rules of ARCHITECTURE.md §8, and no import cycle among our modules.

Read from the source with ``ast`` (nothing is imported): every ``import`` counts, at module level
or inside a function — an import deferred into a function still ties the two modules together, it
only hides the cycle until that function runs.  Imports under ``if TYPE_CHECKING:`` are left out
(never executed).
"""
from __future__ import annotations

import ast
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "sync", "matching")
#: the faces: only they import web or CLI frameworks (the hub's own HTTP face lives in sync/hub/)
FACES = ("app.cli", "app.main", "app.hub_app", "app.api", "app.web", "sync.hub.server", "sync.hub.hq")
FRAMEWORKS = ("fastapi", "typer", "starlette", "uvicorn")
#: import edges another branch must remove (files this branch may not edit): (importer, imported) → why
ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
            if "migrations/versions" not in p.as_posix()}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module name ``name`` imports (ours resolved to the module file, others as written)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return out


@lru_cache(maxsize=1)
def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    known = _modules()
    ours: dict[str, set[str]] = {}
    every: dict[str, set[str]] = {}
    for name, path in known.items():
        imported = _imports(name, path, known)
        every[name] = imported
        ours[name] = {m for m in imported if m in known and m != name
                      and (name, m) not in ALLOWED_CYCLE_EDGES}
    return ours, every


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") or name.startswith(p + "_") for p in prefixes)


def test_no_import_cycles() -> None:
    ours, _ = _graph()
    cycles = _cycles(ours)
    detail = "\n".join(" ↔ ".join(c) for c in cycles)
    assert cycles == [], f"import cycles (counting imports inside functions):\n{detail}"


def test_matching_imports_nothing_of_ours() -> None:
    ours, _ = _graph()
    bad = {m: sorted(i for i in ours[m] if not i.startswith("matching")) for m in ours if m.startswith("matching")}
    assert {m: v for m, v in bad.items() if v} == {}


def test_sync_never_imports_app() -> None:
    ours, _ = _graph()
    bad = {m: sorted(i for i in ours[m] if i.startswith("app")) for m in ours if m.startswith("sync")}
    assert {m: v for m, v in bad.items() if v} == {}


def test_only_faces_import_web_and_cli_frameworks() -> None:
    _, every = _graph()
    bad: dict[str, list[str]] = defaultdict(list)
    for m, imported in every.items():
        if _under(m, FACES):
            continue
        for i in imported:
            if i.split(".")[0] in FRAMEWORKS:
                bad[m].append(i)
    assert dict(bad) == {}


def test_the_checker_sees_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
