"""Run an ultralytics-exported YOLO ONNX file with OpenVINO on the CPU.

On x86 CPUs OpenVINO runs YOLO about twice as efficiently as ONNX Runtime's CPU
provider (measured on this project's 2-core CI box: ~35 vs ~60-100 CPU-ms per
640x384 image). It reads the same ``.onnx`` file; class names and input size come
from the file's metadata (read with ONNX Runtime, which is always installed).
Where the CPU computes bf16 natively (AVX512-BF16 or AMX) it runs in bf16 by default
(``cpu_precision``): about 1.7x the fp32 throughput here. Measured against fp32 on 130
real images: 168 of 171 confident boxes within IoU 0.95 (the lowest 0.90), scores within
0.05; the parity test holds it to ultralytics' own fp32 ``predict``.

Given the version's accepted int8 IR (:mod:`anjian.models.int8_ir`, chosen by the loader), it
compiles that instead: same metadata (from the ONNX beside it), same pre- and post-processing,
the int8 weights; layers NNCF kept in float run in fp32.

In fp32 and bf16 the compiled model takes the letterboxed frames' bytes, ``(b, H, W, 3)
uint8`` BGR: the conversion to RGB ``[0, 1]`` CHW floats is OpenVINO's preprocessing,
compiled into the graph, not numpy on the analysis thread (0.29 ms of CPU per 768x432
frame at 320x320, four times that at 640x640). Outputs stay within 2e-4 of the float
input's. The int8 model keeps the float input it was accepted with: fed bytes, its
quantised layers round differently (boxes within 0.3 px, scores within 0.02, but pallet/val
AP50 -1.3 points under an AVX2 cap), which the int8 gate has not judged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anjian.models.config import DetectorConfig
from anjian.models.detector import PendingDetections, host_images
from anjian.models.errors import ModelLoadError
from anjian.models.int8_ir import Int8Files
from anjian.models.onnx_export import ExportDetector, fixed_batch_chunks, open_session
from anjian.models.postprocess import decode_outputs
from anjian.models.preprocess import LetterboxTransform, letterbox_batch, letterbox_pixel_batch

__all__ = ["OpenVinoDetector", "cpu_has_native_bf16", "openvino_available"]

logger = logging.getLogger(__name__)


def openvino_available() -> bool:
    """True when the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


_ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
"""oneDNN's instruction-set caps (OpenVINO's CPU plugin honours them), in the order oneDNN reads them."""

_ISAS_WITHOUT_BF16 = frozenset(
    {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
)
"""oneDNN instruction-set caps below AVX512_CORE_BF16: no native bf16 kernels under them."""


def _has_native_bf16(core: Any) -> bool:
    """Whether OpenVINO reports native bf16 (AVX512-BF16 or AMX) on this CPU, and no ISA cap forbids it.

    OpenVINO reads the capability from the processor, not from a ``ONEDNN_MAX_CPU_ISA`` cap set
    to keep it off newer instructions (``AVX2`` on an AMX Xeon): under such a cap a bf16 model
    fails to compile ("Supported primitive descriptors list is empty"), so the cap decides.
    """
    cap = next((os.environ[name] for name in _ISA_CAP_VARIABLES if os.environ.get(name)), "")
    if cap.strip().upper() in _ISAS_WITHOUT_BF16:
        return False
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _choose_precision(requested: str, core: Any) -> str:
    """``fp32`` or ``bf16`` for the float model: bf16 when asked for, or on ``auto`` where the CPU has native bf16.

    Raises:
        ModelLoadError: bf16 was asked for on a CPU without native bf16 (it would be emulated, slower),
            or int8 without an int8 model.
    """
    if requested == "int8":
        raise ModelLoadError(
            "cpu_precision 'int8' runs the version's accepted int8 model, and this one has none "
            "(load_detector finds it beside model.onnx); use 'auto' or 'fp32'"
        )
    native_bf16 = _has_native_bf16(core)
    if requested == "bf16" and not native_bf16:
        raise ModelLoadError(
            "cpu_precision 'bf16' needs a CPU with native bf16 (AVX512-BF16 or AMX); use 'auto'"
        )
    if requested == "auto":
        return "bf16" if native_bf16 else "fp32"
    return requested


def cpu_has_native_bf16() -> bool:
    """True when OpenVINO is installed and reports native bf16 on this CPU."""
    if not openvino_available():
        return False
    import openvino as ov

    return _has_native_bf16(ov.Core())


class OpenVinoDetector(ExportDetector):
    """A YOLO detector (ultralytics ONNX export, NMS not embedded) run by OpenVINO on the CPU.

    Everything but compiling and running the model is ``ExportDetector``'s (metadata read
    with ONNX Runtime, letterbox, decode, static batches); a batch is spread over the
    compiled model's parallel infer requests. ``detect_async`` starts a batch and returns
    at once, so the next batch can be queued behind it and the streams never idle
    between batches (the pipeline keeps one batch in flight while it prepares the next).

    Example:
        >>> detector = OpenVinoDetector(Path("model.onnx"), DetectorConfig())
        >>> [dets] = detector.detect([image_bgr])
    """

    def __init__(
        self, path: Path, config: DetectorConfig | None = None, *, int8: Int8Files | None = None
    ) -> None:
        """Compile the model for the CPU.

        Args:
            path: The ``.onnx`` file (its metadata describes the model; it runs unless ``int8``).
            config: Thresholds, threads, ``cpu_precision``.
            int8: The version's accepted int8 IR, run instead of the ONNX (the loader finds it).

        Raises:
            ModelLoadError: The file is missing, OpenVINO is not installed or cannot compile it,
                or the int8 IR cannot be read or does not fit the ONNX's input and output.
            ModelMetadataError: It lacks class names or an input size, or is not a detector.
        """
        super().__init__(path, config)
        try:
            import openvino as ov
        except ImportError:
            raise ModelLoadError(
                "backend 'openvino' needs the openvino package (a base dependency of anjian: reinstall it)"
            ) from None
        session = open_session(self.path)
        self._read_export(session)
        core = ov.Core()
        if int8 is not None:
            self.precision = "int8"
            self.info = dataclasses.replace(self.info, version=f"{self.info.version}+int8")
            model = _read_int8(core, int8, session)
        else:
            self.precision = _choose_precision(self.config.cpu_precision, core)
            model = None
        try:
            properties: dict[str, Any] = {
                "PERFORMANCE_HINT": "THROUGHPUT",
                # int8: the layers kept in float run fp32, as when the model was accepted
                "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[self.precision],
            }
            if self.config.intra_op_threads:
                properties["INFERENCE_NUM_THREADS"] = self.config.intra_op_threads
            model = model if model is not None else core.read_model(str(self.path))
            # int8 keeps the float input it was accepted with: fed bytes, its quantised layers round
            # differently (pallet/val AP50 -1.3 points under an AVX2 cap), beyond the gate's tolerance.
            model = model if self.precision == "int8" else _with_pixel_input(model)
            self._compiled = core.compile_model(model, "CPU", properties)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises untyped runtime errors
            source = int8.xml if int8 is not None else self.path
            raise ModelLoadError(f"OpenVINO cannot compile {source}: {str(exc).strip()[:300]}") from None
        # THROUGHPUT runs one stream per few cores; a batch is split across the streams'
        # requests, which run in parallel, so every core works on every batch.
        self.use_compiled(self._compiled)
        logger.info(
            "loaded %s with OpenVINO %s (%d classes, input %s%s)",
            self.info.version,
            self.precision,
            len(self.info.class_names),
            self.info.input_hw,
            " dynamic" if self._is_dynamic_hw else "",
        )

    @property
    def compiled_model(self) -> Any:
        """The compiled OpenVINO model (the pipeline bench measures its raw throughput)."""
        return self._compiled

    def use_compiled(self, compiled: Any) -> None:
        """Run another compiled model of the same input and output through this detector.

        The quantiser scores NNCF's candidates (compiled models it hands over) with the same
        letterbox and decoding as the pipeline. A model that takes floats (NNCF's) is fed
        ``letterbox_batch``'s tensor, one that takes bytes (``_with_pixel_input``) the frames' bytes.
        """
        import openvino as ov

        self._compiled = compiled
        self._takes_pixels = compiled.input(0).get_element_type() == ov.Type.u8
        self._streams = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        # Two batches' worth: one running on the streams, the next queued behind it.
        self._idle_requests = [compiled.create_infer_request() for _ in range(2 * self._streams)]

    def detect_async(self, images: Sequence[Any]) -> PendingDetections:
        """Letterbox the images and start the model on them; ``result()`` waits, decodes and maps the boxes back."""
        if not images:
            return PendingDetections.done([])
        batch, transforms = self._letterbox(host_images(images))
        started = self._start(batch)
        return PendingDetections(
            lambda: self._in_image_pixels(decode_outputs(started.wait(), transforms, self.config), images),
            is_ready=started.is_done,
        )

    def model_input(self, images: Sequence[Any]) -> np.ndarray:
        """The batch the compiled model is fed for ``images``: what a benchmark of the model alone must feed."""
        return self._letterbox(host_images(images))[0]

    def request_chunk(self, batch_size: int) -> int:
        """Images each infer request takes when a batch of ``batch_size`` is started (the largest chunk).

        A benchmark of the model alone feeds requests this many images at a time, as the engine does.
        """
        if self._fixed_batch is not None:
            return self._fixed_batch
        return -(-max(1, batch_size) // min(self._streams, max(1, batch_size)))

    def _letterbox(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[LetterboxTransform]]:
        """The model input for ``images``: their bytes, or ``letterbox_batch``'s floats for a model that takes floats."""
        letterbox = letterbox_pixel_batch if self._takes_pixels else letterbox_batch
        return letterbox(images, self.info.input_hw, stride=self._stride)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Spread the batch over the infer requests and wait; ``(b, 4 + classes, anchors)`` back."""
        return self._start(batch).wait()

    def _start(self, batch: np.ndarray) -> _StartedBatch:
        """Start the batch, spread over idle infer requests; return what waits for it.

        A dynamic-batch model takes one chunk per stream. A static-batch export is cut into
        chunks of its batch size, all started at once: OpenVINO queues the requests beyond
        its streams and runs each as a stream frees, so no chunk waits for Python to collect
        the one before it.
        """
        if self._fixed_batch is None:
            chunks = np.array_split(batch, min(self._streams, len(batch)))
        else:
            chunks = fixed_batch_chunks(batch, self._fixed_batch)
        requests = [
            self._idle_requests.pop() if self._idle_requests else self._compiled.create_infer_request()
            for _ in chunks
        ]
        chunks = [np.ascontiguousarray(chunk) for chunk in chunks]
        for request, chunk in zip(requests, chunks, strict=True):
            # zero-copy: the request reads the chunk itself, which the started batch keeps alive
            request.start_async({0: chunk}, share_inputs=True)
        return _StartedBatch(requests, chunks, len(batch), self._idle_requests)


class _StartedBatch:
    """A batch running on infer requests: whether they are done, and their joined output once they are.

    ``wait()`` gives the requests back to ``idle`` for the next batch. The input chunks are
    kept until then: the requests read them in place. No Python completion callback is set:
    one still pending when the interpreter exits aborts the process ("exception not rethrown").
    """

    def __init__(self, requests: list[Any], chunks: list[np.ndarray], size: int, idle: list[Any]) -> None:
        self._requests = requests
        self._chunks: list[np.ndarray] | None = chunks
        self._size = size
        self._idle = idle

    def is_done(self) -> bool:
        """Whether every request has finished (asks without waiting)."""
        return all(request.wait_for(0) for request in self._requests)

    def wait(self) -> np.ndarray:
        """Wait for every request; ``(b, 4 + classes, anchors)``, the chunks' outputs joined (padding cut)."""
        outputs = []
        for request in self._requests:
            request.wait()
            outputs.append(np.array(request.get_output_tensor(0).data))
        self._chunks = None
        self._idle.extend(self._requests)
        return np.concatenate(outputs)[: self._size]


def _with_pixel_input(model: Any) -> Any:
    """``model`` taking the letterboxed frames' bytes, ``(b, H, W, 3) uint8`` BGR, and converting them in-graph.

    OpenVINO's preprocessing (to float, BGR to RGB, divided by 255, NHWC to NCHW) is compiled
    with the model and fused into its first layer, so the host only resizes and copies bytes.
    The model's own input stays ``(b, 3, H, W)`` float RGB in ``[0, 1]``, dynamic sizes included.
    """
    from openvino import Layout, Type
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(Type.u8).set_layout(Layout("NHWC")).set_color_format(
        ColorFormat.BGR
    )
    ppp.input().model().set_layout(Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
    return ppp.build()


def _read_int8(core: Any, int8: Int8Files, session: Any) -> Any:
    """Read the int8 IR and check it takes and gives what the ONNX beside it does.

    Raises:
        ModelLoadError: OpenVINO cannot read it, or its input or output channels differ from the ONNX's.
    """
    fix = "set model.cpu_precision: fp32 to run the ONNX, or quantise the version again"
    try:
        model = core.read_model(str(int8.xml), str(int8.bin))
        shape_in = model.inputs[0].get_partial_shape()
        shape_out = model.outputs[0].get_partial_shape()
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises untyped runtime errors
        reason = " ".join(str(exc).split())[:300]
        raise ModelLoadError(f"OpenVINO cannot read the int8 model {int8.xml}: {reason}; {fix}") from None
    expected_in = session.get_inputs()[0].shape
    expected_out = session.get_outputs()[0].shape
    checks = [
        ("input", shape_in, expected_in, (1, 2, 3)),
        ("output", shape_out, expected_out, (1,)),
    ]
    for what, actual, expected, axes in checks:
        if actual.rank.is_dynamic or len(actual) != len(expected):
            raise ModelLoadError(
                f"{int8.xml}: {what} shape {actual} does not fit the ONNX's {expected}; {fix}"
            )
        for axis in axes:
            is_fixed = isinstance(expected[axis], int)
            if actual[axis].is_static and (not is_fixed or actual[axis].get_length() != expected[axis]):
                # a fixed IR beside a free ONNX would fail on the first 16:9 batch, not here
                raise ModelLoadError(
                    f"{int8.xml}: {what} shape {actual} does not fit the ONNX's {expected}; {fix}"
                )
    return model
