"""OpenVINO batches started without waiting give what ``detect`` gives, with two batches in flight at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from anjian.datasets.synthetic import write_demo_video
from anjian.models.config import DetectorConfig
from anjian.models.detections import Detections
from anjian.models.detector import start_detection
from anjian.models.loader import load_detector

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    video = write_demo_video(
        tmp_path_factory.mktemp("clip") / "demo.mp4", seconds=12, fps=1, size_wh=(480, 270)
    )
    with av.open(str(video)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _same(a: list[Detections], b: list[Detections]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.class_id, y.class_id)
        np.testing.assert_allclose(x.xyxy, y.xyxy, atol=1e-3)
        np.testing.assert_allclose(x.confidence, y.confidence, atol=1e-5)


def test_two_batches_in_flight_each_get_their_own_detections(frames: list[np.ndarray]) -> None:
    config = DetectorConfig(backend="openvino", cpu_precision="fp32", device="cpu", confidence_threshold=0.01)
    detector = load_detector("builtin:anjian-demo/1", config)
    first, second = frames[:4], frames[4:9]  # the flame burns from 5 s to 7 s
    expected_first, expected_second = detector.detect(first), detector.detect(second)
    assert sum(len(d) for d in expected_first + expected_second) > 0, "the frames should hold detections"

    running = start_detection(detector, first)
    queued = start_detection(detector, second)  # started behind the first, before it is waited for
    _same(queued.result(), expected_second)  # taken in the other order: no mix-up
    _same(running.result(), expected_first)
    _same(running.result(), expected_first)  # asking again gives the same list
    _same(detector.detect(first), expected_first)  # the requests went back to the pool


def test_a_detector_without_async_answers_through_the_same_call(frames: list[np.ndarray]) -> None:
    config = DetectorConfig(backend="onnxruntime", device="cpu", confidence_threshold=0.01)
    detector = load_detector("builtin:anjian-demo/1", config)
    _same(start_detection(detector, frames[:3]).result(), detector.detect(frames[:3]))


def test_an_empty_batch_is_done_at_once() -> None:
    detector = load_detector(
        "builtin:anjian-demo/1", DetectorConfig(backend="openvino", cpu_precision="fp32", device="cpu")
    )
    assert start_detection(detector, []).result() == []


def test_a_process_exiting_with_a_batch_still_on_the_model_exits_cleanly(tmp_path: Path) -> None:
    """A completion callback into Python still pending at exit aborted the process ("exception not rethrown")."""
    script = tmp_path / "exit_in_flight.py"
    script.write_text(
        "import numpy as np\n"
        "from anjian.models.config import DetectorConfig\n"
        "from anjian.models.detector import start_detection\n"
        "from anjian.models.loader import load_detector\n"
        "config = DetectorConfig(backend='openvino', cpu_precision='fp32', device='cpu')\n"
        "detector = load_detector('builtin:anjian-demo/1', config)\n"
        "pending = start_detection(detector, [np.zeros((360, 640, 3), np.uint8)] * 4)\n"
        "print('leaving with the batch in flight', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert "leaving with the batch in flight" in done.stdout, done.stderr
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_float_model_takes_the_frames_bytes_and_finds_what_the_float_input_finds(
    frames: list[np.ndarray],
) -> None:
    """In-graph preprocessing (bytes in) gives the detections of the numpy conversion (floats in)."""
    import openvino as ov

    config = DetectorConfig(backend="openvino", cpu_precision="fp32", device="cpu", confidence_threshold=0.01)
    detector = load_detector("builtin:anjian-demo/1", config)
    batch = detector.model_input(frames[4:7])  # type: ignore[attr-defined]
    assert batch.dtype == np.uint8 and batch.shape[0] == 3 and batch.shape[3] == 3  # (b, H, W, BGR)
    with_bytes = detector.detect(frames)
    assert sum(len(d) for d in with_bytes) > 0, "the frames should hold detections"

    core = ov.Core()
    floats = core.compile_model(
        core.read_model(str(detector.path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    detector.use_compiled(floats)  # type: ignore[attr-defined]
    assert detector.model_input(frames[:1]).dtype == np.float32  # type: ignore[attr-defined]
    _same(detector.detect(frames), with_bytes)
    _same(start_detection(detector, frames).result(), with_bytes)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 8])
def test_request_chunk_is_the_largest_chunk_a_started_batch_gives_a_request(
    frames: list[np.ndarray], batch_size: int
) -> None:
    """The bench's model limit feeds each request this many images: what the engine's batches give one."""
    from anjian.models.openvino_detector import OpenVinoDetector

    detector = load_detector("builtin:anjian-demo", DetectorConfig(backend="openvino", cpu_precision="fp32"))
    assert isinstance(detector, OpenVinoDetector)
    started = detector._start(detector.model_input(frames[:1] * batch_size))
    chunks = started._chunks
    assert chunks is not None
    assert detector.request_chunk(batch_size) == max(len(chunk) for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == batch_size
    started.wait()
