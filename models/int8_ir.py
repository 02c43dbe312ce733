"""The int8 OpenVINO model registered beside a ``model.onnx``: where it lies, whether it was accepted, intact.

Registering a model may quantise it (``anjian models quantize``, see
:mod:`anjian.training.quantize`): NNCF post-training int8, kept only when its AP50 on every
validation source stays within the tolerance of the fp32 file. The accepted model lies beside
the ONNX as an OpenVINO IR, and the version's ``meta.json`` records the verdict::

    <version>/model.onnx        fp32, the model itself (class names, input size, thresholds)
    <version>/model.int8.xml    the int8 IR's graph
    <version>/model.int8.bin    its weights
    <version>/meta.json         "int8": {"status": "accepted", "xml_sha256": ..., "bin_sha256": ...,
                                         "onnx_sha256": ..., "table": [...], ...}

:func:`accepted_int8` is what the detector loader asks: the IR to run, ``None`` when the
version has no accepted int8 model. An IR whose files are missing or differ from what was
accepted (a damaged copy, or an IR of another ``model.onnx``) raises ``ModelLoadError``
rather than running unvetted weights. Standard library only, like the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anjian.models.errors import ModelLoadError
from anjian.models.metadata import file_digest

__all__ = [
    "INT8_BIN",
    "INT8_KEY",
    "INT8_XML",
    "Int8Files",
    "accepted_int8",
    "file_sha256",
    "int8_file_fields",
    "int8_record",
]

INT8_XML = "model.int8.xml"
"""File name of the int8 IR's graph, beside ``model.onnx``."""

INT8_BIN = "model.int8.bin"
"""File name of the int8 IR's weights (OpenVINO reads it beside the ``.xml``)."""

INT8_KEY = "int8"
"""Key of the int8 record in a version's ``meta.json``."""

_FIX = (
    "set model.cpu_precision: fp32 to run model.onnx, or quantise the version again (anjian models quantize)"
)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's content (all 64 digits of :func:`anjian.models.metadata.file_digest`)."""
    return file_digest(Path(path), length=64)


@dataclass(frozen=True, slots=True)
class Int8Files:
    """An accepted, intact int8 IR.

    Attributes:
        xml: The graph (``model.int8.xml``); OpenVINO reads ``bin`` beside it.
        bin: The weights.
        record: The ``int8`` record of the version's ``meta.json``.
    """

    xml: Path
    bin: Path
    record: dict[str, Any]


def int8_file_fields(folder: Path) -> dict[str, Any]:
    """The ``int8`` record's description of the IR in ``folder``: file names, SHA-256 digests and size."""
    xml, weights = Path(folder) / INT8_XML, Path(folder) / INT8_BIN
    return {
        "xml": INT8_XML,
        "bin": INT8_BIN,
        "xml_sha256": file_sha256(xml),
        "bin_sha256": file_sha256(weights),
        "bytes": xml.stat().st_size + weights.stat().st_size,
    }


def int8_record(onnx: Path) -> dict[str, Any] | None:
    """The ``int8`` record of the ``meta.json`` beside ``onnx``; ``None`` when there is none.

    Raises:
        ModelLoadError: ``meta.json`` exists but is not a JSON object, or its record is not one.
    """
    meta_path = Path(onnx).parent / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{meta_path}: cannot read the version's metadata: {exc}") from None
    record = meta.get(INT8_KEY) if isinstance(meta, dict) else None
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ModelLoadError(f"{meta_path}: {INT8_KEY!r} must be an object, got {type(record).__name__}")
    return record


def accepted_int8(onnx: Path) -> Int8Files | None:
    """The accepted int8 IR beside ``onnx``, checked against what was accepted; ``None`` when there is none.

    A version has an accepted int8 model when its ``meta.json`` records ``"status": "accepted"``
    (rejected attempts keep their table, not their files).

    Raises:
        ModelLoadError: The record says accepted, but a file is missing, or the IR or
            ``model.onnx`` differs from the files that were accepted (by SHA-256).
    """
    record = int8_record(onnx)
    if record is None or record.get("status") != "accepted":
        return None
    folder = Path(onnx).parent
    xml, weights = folder / INT8_XML, folder / INT8_BIN
    for path in (xml, weights):
        if not path.is_file():
            raise ModelLoadError(
                f"{folder}: meta.json records an accepted int8 model, but {path.name} is missing; {_FIX}"
            )
    for path, key in ((xml, "xml_sha256"), (weights, "bin_sha256"), (Path(onnx), "onnx_sha256")):
        expected = record.get(key)
        if not isinstance(expected, str) or not expected:
            raise ModelLoadError(f"{folder}: the int8 record in meta.json lacks {key!r}; {_FIX}")
        actual = file_sha256(path)
        if actual != expected:
            what = (
                "the model it was quantised from has changed"
                if key == "onnx_sha256"
                else "damaged or replaced"
            )
            raise ModelLoadError(
                f"{path}: sha256 {actual[:16]}… is not the accepted {expected[:16]}… ({what}); {_FIX}"
            )
    return Int8Files(xml, weights, record)
