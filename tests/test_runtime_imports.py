"""The runtime packages import only what a site runs: no datasets, training, ultralytics or benchmark code.

``cameras``, ``models`` and ``pipeline`` run on every site. Benchmarks (and what only
they need: synthetic footage, the naive ultralytics loop, the RTSP stand-in) live in
``anjian.service.benchmarks``; the one ``.pt`` backend is the one module of theirs that
may load ultralytics. Imports are read with ``ast`` (lazy ones inside functions and
``importlib.import_module("...")`` calls included), so nothing is imported to check.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("cameras", "models", "pipeline")
FORBIDDEN = ("anjian.datasets", "anjian.training", "anjian.service", "ultralytics", "tests")
ULTRALYTICS_BACKEND = Path("models/yolo_detector.py")  # YoloDetector runs a user's .pt through it


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``tree``, and of ``import_module("...")`` with a literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and _literal_import(node) is not None:
            found.append((node.lineno, str(_literal_import(node))))
    return found


def _literal_import(call: ast.Call) -> str | None:
    """The module ``importlib.import_module("x")`` or ``__import__("x")`` names, if a literal."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def _is_under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _violations(package: str) -> list[str]:
    """What the modules of ``package`` import that a runtime package must not, as ``file:line module``."""
    problems: list[str] = []
    for path in sorted((REPO / package).rglob("*.py")):
        relative = path.relative_to(REPO)
        if "bench" in path.stem:
            problems.append(f"{relative}: a benchmark module (they live in anjian.service.benchmarks)")
        for line, module in _imported(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            forbidden = [p for p in FORBIDDEN if _is_under(module, p)]
            if forbidden == ["ultralytics"] and relative == ULTRALYTICS_BACKEND:
                continue
            if forbidden or "bench" in module:
                problems.append(f"{relative}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", RUNTIME)
def test_runtime_packages_import_no_datasets_training_ultralytics_or_benchmarks(package: str) -> None:
    assert _violations(package) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from anjian.datasets.synthetic import write_demo_video",
            "anjian.datasets.synthetic.write_demo_video",
        ),
        ("def f():\n    from ultralytics import YOLO", "ultralytics.YOLO"),
        ("import importlib\nimportlib.import_module('tests.support.rtsp')", "tests.support.rtsp"),
        ("import anjian.training.cli", "anjian.training.cli"),
    ],
    ids=["from-import", "lazy-import", "import-module-call", "plain-import"],
)
def test_the_import_reader_sees_every_kind_of_import(source: str, expected: str) -> None:
    assert expected in [module for _, module in _imported(ast.parse(source))]
