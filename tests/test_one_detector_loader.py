"""Every command runs the detector the site runs: only ``anjian.models.loader.load_detector`` builds one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_BACKENDS = {"OnnxDetector", "OpenVinoDetector", "YoloDetector"}
_PACKAGES = ("cameras", "pipeline", "service", "training", "datasets")


def _constructions(path: Path) -> list[str]:
    """``Backend(...)`` calls in a module, as ``file:line``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in _BACKENDS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    return found


@pytest.mark.parametrize("package", _PACKAGES)
def test_no_package_outside_models_builds_a_detector_backend_itself(package: str) -> None:
    calls = [c for module in sorted((REPO / package).rglob("*.py")) for c in _constructions(module)]
    assert not calls, f"build detectors with models.loader.load_detector, not directly: {calls}"
