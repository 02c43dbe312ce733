"""Typed configuration of the detector (the ``model:`` section of the site YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DetectorConfig", "registry_of_site_config"]


class DetectorConfig(BaseModel):
    """Which model file to run and how.

    ``path`` is a file path (relative paths resolve against the site YAML's folder)
    or ``builtin:NAME``: the version promoted in the site registry (``registry``), else
    the one shipped with anjian (see :mod:`anjian.models.registry`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        "builtin:anjian-n",
        min_length=1,
        description="ONNX file, .pt checkpoint, or builtin:NAME (the promoted version: the site registry's "
        "promotion, else the model shipped with anjian), builtin:NAME@SCOPE or builtin:NAME/VERSION.",
    )
    registry: Path | None = Field(
        None,
        description="The site's model registry: the folder `anjian export --register` adds versions to and "
        "`anjian models promote|rollback` changes; builtin:NAME looks there first, then in the models "
        "shipped with anjian. Relative to the site YAML. Default: $ANJIAN_REGISTRY, else "
        "~/.local/share/anjian/registry.",
    )
    confidence_threshold: float = Field(0.25, gt=0, lt=1, description="Drop detections scoring below.")
    iou_threshold: float = Field(0.45, gt=0, lt=1, description="IoU above which NMS suppresses a box.")
    max_detections: int = Field(300, ge=1, le=10000, description="Keep at most this many boxes per image.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA/TensorRT when onnxruntime-gpu sees a GPU, else CPU."
    )
    backend: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto",
        description="Runtime for .onnx files. auto: ONNX Runtime on a GPU; on the CPU, OpenVINO (about twice "
        "as efficient on x86) when it imports, else ONNX Runtime.",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Inference threads (ONNX Runtime or OpenVINO); 0 lets the runtime choose.",
    )
    fp16: bool = Field(
        True,
        description="TensorRT: build fp16 engines (about twice the fp32 throughput, same boxes to within "
        "rounding). CUDA and CPU run the file's own precision.",
    )
    cpu_precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="OpenVINO on the CPU. auto: bf16 where the CPU computes it natively (AVX512-BF16 or AMX: "
        "3.1x fp32 on a 2-core AMX Xeon, where even a fully int8 anjian-n runs 2.3x; 98% of confident boxes "
        "within IoU 0.95 of fp32, AP50 within 0.1 point), else the version's int8 model where it has an accepted "
        "one (quantised when registered, kept only if AP50 on every validation source stays within 1 point of "
        "fp32; about 1.4-1.6x fp32 with AVX2 only), else fp32. fp32 forces the fp32 file; bf16 needs native "
        "bf16; int8 requires the accepted int8 model (and runs it on any CPU). ONNX Runtime on the CPU always "
        "runs fp32.",
    )
    minimal_padding: bool = Field(
        True,
        description="Dynamic-shape models only: pad each batch to what its frames need plus one stride of "
        "grey on each side they do not fill (448x640 for 16:9 at 640, 256x320 at 320) rather than the full "
        "square; fewer pixels, same scale, the square's accuracy.",
    )


def registry_of_site_config(path: Path) -> Path | None:
    """The ``model.registry`` a site YAML names (relative to the YAML's folder), ``None`` when unset.

    Only the ``model:`` section is read and validated, so that the analysts' commands
    (``anjian models ... --config site.yaml``) act on the registry the site runs from.

    Raises:
        ValueError: The file cannot be read, or its ``model:`` section is invalid.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the site config: {exc}") from None
    except yaml.YAMLError as exc:  # PyYAML's own text quotes the line, which may hold a camera's password
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        why = getattr(exc, "problem", None) or "not valid YAML"
        raise ValueError(
            f"{path}: not valid YAML{where}: {why} (`anjian config check` shows the line)"
        ) from None
    except RecursionError:
        raise ValueError(f"{path}: lists or mappings nested too deep to read (hundreds of levels)") from None
    section = raw.get("model") if isinstance(raw, dict) else None
    try:
        config = DetectorConfig.model_validate(section or {})
    except ValidationError as exc:
        problems = "; ".join(f"model.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{path}: {problems}") from None
    if config.registry is None:
        return None
    registry = config.registry.expanduser()
    return registry if registry.is_absolute() else Path(path).resolve().parent / registry
