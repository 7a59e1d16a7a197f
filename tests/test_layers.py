"""Layering: imports run workloads -> backends -> profiler only; each layer has one error type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> packages it must not import
FORBIDDEN = {"workloads": ("backends", "profiler"), "backends": ("profiler",)}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, inside functions too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {mod}"
           for p in sorted((ROOT / package).rglob("*.py"))
           for line, mod in _imports(p)
           if mod.split(".")[0] in FORBIDDEN[package]]
    assert not bad, bad


def test_mock_perfmodel_does_not_import_the_engine():
    mods = {mod for _, mod in _imports(ROOT / "backends/mock/perfmodel.py")}
    assert not any(m.startswith("backends.mock.") for m in mods), mods


def test_error_types_are_value_errors():
    from backends.control import ControlError
    from backends.errors import BackendError
    from workloads.errors import WorkloadError

    assert issubclass(WorkloadError, ValueError) and issubclass(BackendError, ValueError)
    assert issubclass(ControlError, BackendError)
    assert not issubclass(WorkloadError, BackendError) and not issubclass(BackendError, WorkloadError)
