"""The shape of the code base: no import circle inside nudistill/, and no bare ticket numbers in the repository.

An import circle makes a module's meaning depend on import order and hides which piece is the base; every
import counts here, function-level ones too, since they tie the modules together just the same.
A bare ticket number means nothing to a reader without the tracker, so the reason is written out instead.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nudistill"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The nudistill modules that ``path`` imports anywhere in its body (module, function or class level)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` names a module; `from module import name` does not
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_and_function_level_imports_are_edges(tmp_path, monkeypatch):
    pkg = tmp_path / "nudistill" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from nudistill.sub.c import thing\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    modules = {"nudistill.sub", "nudistill.sub.a", "nudistill.sub.b", "nudistill.sub.c"}
    assert imported_modules(pkg / "a.py", modules) == {"nudistill.sub.b", "nudistill.sub.c"}


def test_no_import_circle_in_nudistill():
    graph = import_graph()
    assert len(graph) > 50 and "nudistill.teacher.core" in graph["nudistill.teacher.trainer"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


TICKET = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
UPSTREAM = re.compile(r"[\w.-]+/[\w.-]+\s+$")
"""A ticket of a named upstream project ("ray-project/ray issues ...") is a citation, not a bare number."""


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_bare_ticket_numbers_in_the_repository():
    hits = []
    for path in tracked_text_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        hits += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                 for m in TICKET.finditer(text) if not UPSTREAM.search(text[max(0, m.start() - 80): m.start()])]
    assert not hits, "give the reason (or cite the paper) instead of a ticket number:\n" + "\n".join(hits)
