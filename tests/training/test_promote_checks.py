"""``anjian models promote`` refuses a version that cannot serve; the registry CLIs fail cleanly on a
registry they cannot write; ``models list`` flags a promotion whose folder was deleted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from anjian.models.registry import register_version, resolve_model_path
from anjian.service.cli import app
from tests.support.models import unrunnable_model

runner = CliRunner()
WIDE = {"COLUMNS": "1000"}  # rich wraps at the terminal's width: one message stays one line


pytestmark = pytest.mark.usefixtures("wide_error_consoles")


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


def _demo() -> Path:
    return resolve_model_path("builtin:anjian-demo/2")


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """Model 'det': version 1 (the demo model) promoted."""
    root = tmp_path / "registry"
    register_version("det", _demo(), {}, "# det 1\n", version="1", root=root)
    assert runner.invoke(app, ["models", "promote", "det", "1", "--registry", str(root)]).exit_code == 0
    return root


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.onnx"
    path.write_bytes(_demo().read_bytes()[:200_000])
    return path


def _wrong_imgsz(tmp_path: Path) -> Path:
    """The demo model (a static 320x320 graph) with metadata claiming 640x640."""
    model = onnx.load(str(_demo()))
    for prop in model.metadata_props:
        if prop.key == "imgsz":
            prop.value = "[640, 640]"
    path = tmp_path / "imgsz640.onnx"
    onnx.save(model, str(path))
    return path


def _register_broken(kind: str, tmp_path: Path, root: Path) -> None:
    """Register version 2 of 'det', broken the way ``kind`` says."""
    source = {
        "truncated": _truncated,
        "unrunnable": lambda folder: unrunnable_model(folder / "unrunnable.onnx"),
        "imgsz": _wrong_imgsz,
    }.get(kind)
    register_version("det", source(tmp_path) if source else _demo(), {}, "# det 2\n", version="2", root=root)
    folder = root / "det" / "2"
    if kind == "meta":
        (folder / "meta.json").write_text("{not json")
    if kind == "int8":
        meta = json.loads((folder / "meta.json").read_text())
        meta["int8"] = {"status": "accepted", "xml_sha256": "0" * 64, "bin_sha256": "0" * 64}
        (folder / "meta.json").write_text(json.dumps(meta))


BROKEN = [
    ("truncated", "cannot load model"),
    ("meta", "cannot read the version's metadata"),
    ("unrunnable", "it loads but cannot run: a test detection on a blank frame failed"),
    ("imgsz", "imgsz metadata 640x640 but the graph's input is 320x320"),
    ("int8", "meta.json records an accepted int8 model, but model.int8.xml is missing"),
]


def _site_config(tmp_path: Path, root: Path, kind: str) -> list[str]:
    """``--config`` of a site that runs the int8 model on the CPU (the int8 case), else ``--registry``."""
    if kind != "int8":
        return ["--registry", str(root)]
    pytest.importorskip("openvino")
    site = tmp_path / "site.yaml"
    site.write_text(
        f"model:\n  registry: {root}\n  backend: openvino\n  device: cpu\n  cpu_precision: int8\n"
    )
    return ["--config", str(site)]


@pytest.mark.parametrize(("kind", "says"), BROKEN, ids=[k for k, _ in BROKEN])
def test_promote_refuses_a_version_that_cannot_serve(
    tmp_path: Path, registry: Path, kind: str, says: str
) -> None:
    _register_broken(kind, tmp_path, registry)
    where = _site_config(tmp_path, registry, kind)

    result = runner.invoke(app, ["models", "promote", "det", "2", *where], env=WIDE)

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "det/2 cannot serve, not promoted" in result.output and says in result.output
    assert "--force" in result.output
    assert (registry / "det" / "promoted").read_text().strip() == "1"


def test_force_promotes_a_broken_version_with_a_warning(tmp_path: Path, registry: Path) -> None:
    _register_broken("truncated", tmp_path, registry)

    result = runner.invoke(
        app, ["models", "promote", "det", "2", "--registry", str(registry), "--force"], env=WIDE
    )

    assert result.exit_code == 0, result.output
    assert "warning: det/2 cannot serve, promoted anyway (--force): cannot load model" in result.output
    assert "1 -> 2" in result.output
    assert (registry / "det" / "promoted").read_text().strip() == "2"


def test_promote_loads_with_the_sites_model_settings(tmp_path: Path, registry: Path) -> None:
    register_version("det", _demo(), {}, "# det 2\n", version="2", root=registry)
    site = tmp_path / "site.yaml"
    site.write_text(
        f"model:\n  registry: {registry}\n  device: cpu\n  cpu_precision: int8\n  backend: onnxruntime\n"
    )

    refused = runner.invoke(app, ["models", "promote", "det", "2", "--config", str(site)], env=WIDE)
    assert refused.exit_code == 2 and "cpu_precision 'int8' runs with OpenVINO" in refused.output

    site.write_text(f"model:\n  registry: {registry}\n  device: cpu\n")
    accepted = runner.invoke(app, ["models", "promote", "det", "2", "--config", str(site)], env=WIDE)
    assert accepted.exit_code == 0, accepted.output
    assert (registry / "det" / "promoted").read_text().strip() == "2"


def test_list_flags_a_promoted_version_whose_folder_was_deleted(registry: Path) -> None:
    register_version("det", _demo(), {}, "# det 2\n", version="2", root=registry)
    assert runner.invoke(app, ["models", "promote", "det", "2", "--registry", str(registry)]).exit_code == 0
    shutil.rmtree(registry / "det" / "2")

    listed = runner.invoke(app, ["models", "list", "det", "--registry", str(registry)], env=WIDE)

    assert listed.exit_code == 0, listed.output
    rows = [line.split("│") for line in listed.output.splitlines() if line.count("│") > 5]
    marks = {row[3].strip(): row[1].strip() for row in rows}
    assert marks == {"2": "!", "1": ""}  # the dangling pointer flagged, version 1 not marked in force
    assert "builtin:det: promoted version 2 of det is missing (folder deleted?)" in listed.output

    rolled = runner.invoke(app, ["models", "rollback", "det", "--registry", str(registry)], env=WIDE)
    assert rolled.exit_code == 0 and "rolled back to 1 (from 2)" in rolled.output


def _under_a_file(tmp_path: Path) -> Path:
    """A registry path no one can write, even root: its parent is a regular file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return blocker / "registry"


def _assert_clean_write_error(result: object, root: Path) -> None:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    assert isinstance(result.exception, SystemExit)  # type: ignore[attr-defined]  # no traceback
    output = result.output.strip()  # type: ignore[attr-defined]
    assert output.startswith(f"cannot write the registry {root}: Not a directory"), output
    assert len(output.splitlines()) == 1, output


def test_promote_to_an_unwritable_registry_is_one_clean_line(tmp_path: Path) -> None:
    root = _under_a_file(tmp_path)
    result = runner.invoke(app, ["models", "promote", "anjian-demo", "1", "--registry", str(root)], env=WIDE)
    _assert_clean_write_error(result, root)


def test_rollback_in_an_unwritable_registry_is_one_clean_line(registry: Path) -> None:
    register_version("det", _demo(), {}, "# det 2\n", version="2", root=registry)
    assert runner.invoke(app, ["models", "promote", "det", "2", "--registry", str(registry)]).exit_code == 0
    (registry / "det" / ".lock").unlink()
    (
        registry / "det" / ".lock"
    ).mkdir()  # the lock file cannot be opened for writing (as on a read-only disk)

    result = runner.invoke(app, ["models", "rollback", "det", "--registry", str(registry)], env=WIDE)

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.strip().startswith(f"cannot write the registry {registry}: Is a directory")
    assert (registry / "det" / "promoted").read_text().strip() == "2"


def test_export_register_into_an_unwritable_registry_is_one_clean_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ultralytics")
    pytest.importorskip("torch")
    from anjian.training import export

    def copy_demo(weights: Path, out: Path, **_: object) -> Path:  # the export itself is not under test
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_demo(), out)
        return out

    monkeypatch.setattr(export, "export_onnx", copy_demo)
    weights = tmp_path / "run" / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    root = _under_a_file(tmp_path)

    result = runner.invoke(
        app,
        [
            "export",
            str(weights),
            "--out",
            str(tmp_path / "out"),
            "--no-half",
            "--register",
            "--registry",
            str(root),
        ],
        env=WIDE,
    )

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"cannot write the registry {root}: Not a directory" in result.output
