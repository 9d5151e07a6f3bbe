"""The package layout keeps its promises (docs/ARCHITECTURE.md): no import circle (function-
level imports included), stage 1 never imports stage 2, the neutral layer
``yso_labels.core`` imports neither stage, and no module writes a file atomically by hand
(one helper, :func:`yso_labels.core.atomic.atomic_write`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("yso_labels", "apogee_net")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def import_graph() -> dict[str, set[str]]:
    """Module → the toolkit modules it imports anywhere in its body (top level, functions,
    ``if TYPE_CHECKING`` blocks alike). ``from a.b import c`` counts ``a.b.c`` when that is a
    module, else ``a.b``; importing ``a.b.c`` also runs ``a`` and ``a.b``."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for target in targets:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name in mods and name != mod and not mod.startswith(name + "."):
                        graph[mod].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    graph = import_graph()
    assert len(graph) > 60 and graph["apogee_net.inference.predict"]  # the walk saw modules
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_layers():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("yso_labels"):
            assert not [d for d in deps if d.startswith("apogee_net")], mod
        if mod.startswith("yso_labels.core"):
            bad = [d for d in deps if not d.startswith("yso_labels.core") and d != "yso_labels"]
            assert not bad, f"{mod} (neutral layer) imports {bad}"
        if not mod.startswith("apogee_net.testing"):
            assert not [d for d in deps if d.startswith("apogee_net.testing")], mod
        if not mod.startswith(("apogee_net.cli", "yso_labels.cli")):
            bad = [d for d in deps if ".cli" in d]
            assert not bad or mod.endswith("demo"), f"{mod} imports the CLI {bad}"


@pytest.mark.parametrize("pattern", [r"os\.replace\(", r"os\.rename\(", r"\.rename\(",
                                     r"mkstemp\(", r"NamedTemporaryFile\("])
def test_one_atomic_write(pattern):
    """Every rename-into-place lives in ``yso_labels.core.atomic``; the one other rename is
    the resumable store finishing ``STORE.h5.part`` (kept on purpose, so that an
    interrupted ingest resumes)."""
    allowed = {"yso_labels/core/atomic.py", "apogee_net/spectra/store.py"}
    hits = []
    for top in (*PACKAGES, "scripts", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for no, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(pattern, line) and rel not in allowed:
                    hits.append(f"{rel}:{no}: {line.strip()}")
    assert not hits, "hand-written atomic write:\n" + "\n".join(hits)


def test_split_parsed_once():
    from yso_labels.core.tables import TableError, parse_split

    assert parse_split([" Train", "DEV", "test "], "t").tolist() == ["train", "dev", "test"]
    with pytest.raises(TableError, match="labels.csv: split values must be .* found tset"):
        parse_split(["train", "tset"], "labels.csv")
