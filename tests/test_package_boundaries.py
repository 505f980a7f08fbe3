"""Packages depend one way (docs/ARCHITECTURE.md): the import graph, read with ``ast`` (nothing is
imported or run), must follow these rules.

1. ``epick.runtime`` imports nothing from ``epick.export``, ``epick.trainer`` or ``epick.simulator``,
   neither at module level nor inside functions. (The ``epick`` command's subcommand table in
   ``runtime/cli.py`` names their modules as strings and loads one only when it runs; the trainer's
   ``.epick`` backend is found through the ``epick.backends`` entry point.)
2. ``epick.runtime`` imports ``epick.cuda_kernels`` only inside functions of ``runtime/device_path.py``
   (the GPU picking path builds on the kernels when it is constructed; the host path never loads them).
3. ``epick.cuda_kernels`` imports from epick only the runtime's pure definitions: ``epick.runtime.peaks``,
   ``epick.runtime.preprocess`` and ``epick.runtime.errors``.
4. ``epick.trainer`` and ``epick.simulator`` never import ``epick.export``; ``epick.simulator`` never
   imports ``epick.trainer``. (``epick.export`` builds on the trainer and the runtime.)
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "trainer", "export", "cuda_kernels", "simulator")   # folder = epick.<name>
PURE_RUNTIME = {"epick.runtime.peaks", "epick.runtime.preprocess", "epick.runtime.errors"}


class Edge(NamedTuple):
    source: str       # importing module, e.g. epick.runtime.device_path
    target: str       # imported module (or module.name for "from module import name")
    lazy: bool        # inside a function (runs only when called)
    where: str        # file:line


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "epick." + ".".join(parts)


def _edges(path: Path) -> list[Edge]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    edges: list[Edge] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            where = f"{path.relative_to(REPO)}:{getattr(child, 'lineno', '?')}"
            if isinstance(child, ast.Import):
                edges.extend(Edge(module, alias.name, inner, where) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                edges.extend(Edge(module, f"{target}.{alias.name}", inner, where) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return edges


def _graph() -> list[Edge]:
    files = [p for name in PACKAGES for p in (REPO / name).rglob("*.py")]
    assert len(files) > 50, "the package folders were not found beside tests/"
    return [e for f in files for e in _edges(f)]


def _inside(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


@pytest.fixture(scope="module")
def graph() -> list[Edge]:
    return _graph()


def test_runtime_imports_no_export_trainer_or_simulator(graph):
    bad = [e for e in graph if _inside(e.source, "epick.runtime")
           and any(_inside(e.target, p) for p in ("epick.export", "epick.trainer", "epick.simulator"))]
    assert not bad, "\n".join(f"{e.where}: {e.source} imports {e.target}" for e in bad)


def test_runtime_loads_cuda_kernels_only_lazily_on_the_device_path(graph):
    uses = [e for e in graph if _inside(e.source, "epick.runtime") and _inside(e.target, "epick.cuda_kernels")]
    bad = [e for e in uses if not e.lazy or e.source != "epick.runtime.device_path"]
    assert not bad, "\n".join(f"{e.where}: {e.source} imports {e.target} "
                              f"({'inside a function' if e.lazy else 'at module level'})" for e in bad)
    assert uses, "the device path no longer uses the kernels: update this rule and docs/ARCHITECTURE.md"


def test_cuda_kernels_depend_only_on_pure_runtime_definitions(graph):
    bad = [e for e in graph if _inside(e.source, "epick.cuda_kernels") and _inside(e.target, "epick")
           and not _inside(e.target, "epick.cuda_kernels")
           and not any(_inside(e.target, m) for m in PURE_RUNTIME)]
    assert not bad, "\n".join(f"{e.where}: {e.source} imports {e.target}" for e in bad)


def test_trainer_and_simulator_do_not_import_export(graph):
    bad = [e for e in graph if (_inside(e.source, "epick.trainer") or _inside(e.source, "epick.simulator"))
           and _inside(e.target, "epick.export")]
    bad += [e for e in graph if _inside(e.source, "epick.simulator") and _inside(e.target, "epick.trainer")]
    assert not bad, "\n".join(f"{e.where}: {e.source} imports {e.target}" for e in bad)


def test_the_graph_reader_sees_relative_and_lazy_imports(tmp_path):
    """The rules above are only as good as the reader: check it on known lines of the tree."""
    edges = _edges(REPO / "runtime" / "device_path.py")
    assert any(e.target.startswith("epick.cuda_kernels") and e.lazy for e in edges)
    assert any(e.target == "epick.runtime.pipeline.Prepared" and not e.lazy for e in edges)
    backend = _edges(REPO / "trainer" / "backend.py")
    assert any(e.target == "epick.trainer.modelfile.load_model" and e.lazy for e in backend)


def test_model_files_run_through_the_registered_trainer_backend():
    """`epick pick --model x.epick` finds the trainer's backend through the entry point, not an import."""
    from epick.runtime.backends import ENTRY_POINT_GROUP, registered_backend

    assert ENTRY_POINT_GROUP == "epick.backends"
    cls = registered_backend("model", "x.epick")
    assert cls.__module__ == "epick.trainer.backend"
    from epick.runtime.errors import ModelFileError

    with pytest.raises(ModelFileError, match=r"epick\[train\]"):
        registered_backend("no-such-kind", "x.foo")
