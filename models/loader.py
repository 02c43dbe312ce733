"""Pick the detector backend for a model file: ONNX Runtime or OpenVINO for ``.onnx``, ultralytics for ``.pt``.

The only place detectors are built. On the CPU with OpenVINO it also picks the precision
(``model.cpu_precision: auto``): bf16 where the CPU computes it natively (faster there than
int8, and lossless), else the version's accepted int8 IR (:mod:`anjian.models.int8_ir`), else
fp32. A site forces ``fp32``, ``bf16`` or ``int8`` (which requires an accepted IR).

:func:`probe_detector` is the one test a loaded model passes before it serves: a detection on a
blank frame (a graph can load and still fail on every frame, e.g. an input size its metadata
misstates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from anjian.models.config import DetectorConfig
from anjian.models.detector import Detector
from anjian.models.errors import ModelError, ModelLoadError
from anjian.models.int8_ir import Int8Files, accepted_int8
from anjian.models.onnx_detector import OnnxDetector
from anjian.models.openvino_detector import OpenVinoDetector, cpu_has_native_bf16, openvino_available
from anjian.models.registry import earlier_promotions, read_meta, resolve_model_path

__all__ = [
    "PROBE_FRAME_HW",
    "ServingModel",
    "load_detector",
    "load_openvino_candidate",
    "load_serving",
    "probe_detector",
]

PROBE_FRAME_HW = (480, 640)
"""Size of the blank frame :func:`probe_detector` detects on: a common camera shape."""


def _wants_openvino(config: DetectorConfig) -> bool:
    """OpenVINO when asked for, or on ``auto`` for a CPU run where it is installed."""
    if config.backend != "auto":
        return config.backend == "openvino"
    if config.device == "cuda" or (config.device == "auto" and _has_gpu_provider()):
        return False
    return openvino_available()


def _has_gpu_provider() -> bool:
    import onnxruntime as ort

    return bool({"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()))


def _int8_files(path: Path, config: DetectorConfig, *, is_openvino: bool) -> Int8Files | None:
    """The accepted int8 IR to run for ``cpu_precision``, ``None`` for the float file.

    Raises:
        ModelLoadError: ``int8`` was asked for, but the runtime is not OpenVINO on the CPU or the
            version has no accepted int8 model; or the accepted IR is missing or damaged.
    """
    wanted = config.cpu_precision
    if wanted in ("fp32", "bf16"):
        return None
    if not is_openvino:
        if wanted == "int8":
            raise ModelLoadError(
                f"cpu_precision 'int8' runs with OpenVINO on the CPU; this model would run with ONNX Runtime "
                f"(backend {config.backend!r}, device {config.device!r}): set backend 'openvino' and device 'cpu'"
            )
        return None
    if wanted == "auto" and cpu_has_native_bf16():
        return (
            None  # bf16 on such a CPU: 480 images/s against 354 for a fully int8 anjian-n (2-core AMX Xeon)
        )
    files = accepted_int8(path)
    if files is None and wanted == "int8":
        raise ModelLoadError(
            f"cpu_precision 'int8': {path.parent} has no accepted int8 model (none was made, or it lost "
            "accuracy: see the int8 section of its card); quantise with `anjian models quantize`, or use 'auto'"
        )
    return files


def load_detector(spec: str | Path, config: DetectorConfig | None = None) -> Detector:
    """Load the detector a model spec names.

    Args:
        spec: A ``.onnx`` file, a ``.pt`` checkpoint (needs the ``train`` extra), or
            ``builtin:NAME[/VERSION]``.
        config: Thresholds, device, threads and the site registry ``builtin:`` specs
            resolve in.

    Returns:
        An ``OnnxDetector``, an ``OpenVinoDetector`` (``.onnx`` on the CPU, see
        ``DetectorConfig.backend``) or a ``YoloDetector``; wrapped in a
        ``SecondStageDetector`` when the version's ``meta.json`` has a ``second_stage``.

    Raises:
        ModelLoadError: Unknown builtin, missing file, unsupported format; a corrupt or
            missing int8 IR where the version records an accepted one; ``cpu_precision``
            ``int8`` where there is none; a bad ``second_stage`` entry or a crop model that
            does not load.
        ModelMetadataError: The file lacks class names or an input size.
    """
    path = resolve_model_path(str(spec), root=config.registry if config else None)
    return _with_second_stage(path, _load_file(path, config), config)


def probe_detector(detector: Detector) -> str | None:
    """Why ``detector`` cannot run one blank frame, ``None`` when it can (one ``Detections`` back).

    What a model must pass before it serves: before ``anjian models promote`` writes the pointer,
    and before a running pipeline swaps to a newly promoted model.

    Returns:
        ``None``, or one line saying what failed (the runtime's message on one line, cut to 300
        characters).
    """
    frame = np.zeros((*PROBE_FRAME_HW, 3), np.uint8)
    try:
        results = detector.detect([frame])
    except Exception as exc:  # noqa: BLE001 - any failure of a model on a plain frame disqualifies it
        why = " ".join(str(exc).split())[:300]  # one line: OpenVINO's messages span several
        return f"a test detection on a blank frame failed: {type(exc).__name__}: {why}"
    if len(results) != 1:
        return f"a test detection on one blank frame gave {len(results)} results"
    return None


@dataclass(frozen=True, slots=True)
class ServingModel:
    """The detector a site serves, and where it came from.

    Attributes:
        detector: Loaded, and it ran one blank frame.
        path: The model file it was loaded from.
        passed_over: Why the promoted version does not serve, when an earlier promotion does.
    """

    detector: Detector
    path: Path
    passed_over: str | None = None


def load_serving(spec: str, config: DetectorConfig) -> ServingModel:
    """The detector to serve for ``spec``: the one it names if it loads and runs (:func:`probe_detector`),
    else, for a promoted ``builtin:NAME[@SCOPE]``, the newest earlier promotion that does.

    A plant left alone must keep watching its cameras when its promoted model's file is damaged
    on disk (or a promotion was forced past its check): an earlier version that serves beats no
    analysis, and an ``anjian run`` that stops with the alert service in it.

    Raises:
        ModelError: Neither the named model nor any earlier promotion serves (the named one's error).
    """
    try:
        return _served(resolve_model_path(spec, root=config.registry), config)
    except ModelError as exc:
        body = spec.removeprefix("builtin:")
        if not spec.startswith("builtin:") or "/" in body:
            raise
        name, _, scope = body.partition("@")
        for version in earlier_promotions(name, scope=scope or None, root=config.registry):
            try:
                serving = _served(
                    resolve_model_path(f"builtin:{name}/{version}", root=config.registry), config
                )
            except ModelError:
                continue
            return replace(serving, passed_over=str(exc))
        raise


def _served(path: Path, config: DetectorConfig) -> ServingModel:
    """``path`` loaded and probed; ``ModelLoadError`` naming why it cannot run."""
    detector = load_detector(path, config)
    reason = probe_detector(detector)
    if reason is not None:
        raise ModelLoadError(f"model {path} loads but cannot run: {reason}")
    return ServingModel(detector, path)


def load_openvino_candidate(
    path: Path, config: DetectorConfig, int8: Int8Files | None = None
) -> OpenVinoDetector:
    """An OpenVINO detector of an ONNX file, in fp32 or with an int8 IR not (yet) accepted into its version.

    For the quantiser only: it scores candidate IRs before any is recorded in the version's
    ``meta.json``, which :func:`load_detector` requires (and verifies) before it runs one.
    """
    return OpenVinoDetector(path, config, int8=int8)


def _load_file(path: Path, config: DetectorConfig | None) -> Detector:
    """The backend for one model file (no second stage)."""
    suffix = path.suffix.lower()
    if suffix == ".pt":
        from anjian.models.yolo_detector import YoloDetector

        return YoloDetector(path, config)
    if suffix == ".onnx":
        config = config or DetectorConfig()
        is_openvino = _wants_openvino(config)
        int8 = _int8_files(path, config, is_openvino=is_openvino)
        if is_openvino:
            return OpenVinoDetector(path, config, int8=int8)
        return OnnxDetector(path, config)
    raise ModelLoadError(f"{path.name}: unsupported model format {suffix!r}; anjian runs .onnx (or .pt)")


def _with_second_stage(path: Path, primary: Detector, config: DetectorConfig | None) -> Detector:
    """``primary`` with the crop model its version's ``meta.json`` names (:mod:`anjian.models.second_stage`).

    Raises:
        ModelLoadError: ``meta.json`` is unreadable or not a JSON object, the entry is
            malformed, the crop model does not load or has a second
            stage itself, or the class names do not fit.
    """
    meta_path = path.parent / "meta.json"
    raw = read_meta(path.parent, strict=True).get("second_stage")
    if raw is None:
        return primary
    from anjian.models.second_stage import SecondStageDetector, parse_second_stage

    stage = parse_second_stage(raw, source=str(meta_path))
    root = config.registry if config else None
    try:
        crop_path = resolve_model_path(stage.model, root=root)
        if not stage.model.startswith("builtin:") and not crop_path.is_absolute():
            crop_path = path.parent / crop_path
        is_beside = crop_path.parent.resolve() == path.parent.resolve()  # the meta.json read above
        if not is_beside and read_meta(crop_path.parent, strict=True).get("second_stage") is not None:
            raise ModelLoadError("it has a second stage itself; a crop model must be a plain detector")
        crop_model = _load_file(crop_path, config)
    except ModelError as exc:
        raise ModelLoadError(
            f"{meta_path}: second_stage model {stage.model!r} does not load: {exc}"
        ) from None
    return SecondStageDetector(primary, crop_model, stage)
