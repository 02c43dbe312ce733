"""GPU decode path: NV12 conversion math (checked on CPU tensors) and NVDEC end to end (GPU only)."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from anjian.cameras import gpu
from anjian.cameras.config import CameraConfig
from anjian.cameras.decode import decode_frames

torch = pytest.importorskip("torch")


def _nv12(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a BGR image into NV12 planes the way a decoder hands them over."""
    height, width = bgr.shape[:2]
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    y = i420[:height]
    u = i420[height : height + height // 4].reshape(height // 2, width // 2)
    v = i420[height + height // 4 :].reshape(height // 2, width // 2)
    return y, np.stack((u, v), axis=-1)


@pytest.mark.parametrize("uv_shape", ["interleaved-3d", "flat-2d"], ids=str)
def test_nv12_to_bgr_matches_opencv(uv_shape: str) -> None:
    rng = np.random.default_rng(0)
    bgr = cv2.resize(
        rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (64, 48), interpolation=cv2.INTER_LINEAR
    )
    y, uv = _nv12(bgr)
    expected = cv2.cvtColor(np.concatenate((y, uv.reshape(24, 64))), cv2.COLOR_YUV2BGR_NV12)
    uv_tensor = torch.from_numpy(uv if uv_shape == "interleaved-3d" else uv.reshape(24, 64))
    converted = gpu.nv12_to_bgr(torch.from_numpy(y), uv_tensor, is_bt709=False).numpy()
    assert converted.shape == (48, 64, 3) and converted.dtype == np.uint8
    assert np.abs(converted.astype(int) - expected).mean() < 2.0


def test_cuda_request_falls_back_to_cpu_decoding_without_a_gpu(test_clip: Path) -> None:
    if gpu.cuda_decode_unavailable_reason() is None:
        pytest.skip("a GPU is present: the fallback is not exercised")
    opened: list[str] = []
    camera = CameraConfig(id="c", url=str(test_clip), realtime=False, decode_device="cuda")
    frame = next(decode_frames(camera, stop=threading.Event(), on_open=opened.append))
    assert opened == ["cpu"] and isinstance(frame.image, np.ndarray) and not frame.is_on_gpu


@pytest.mark.gpu
@pytest.mark.skipif(
    gpu.cuda_decode_unavailable_reason() is not None, reason="needs NVDEC and torch with CUDA"
)
def test_nvdec_frames_stay_on_the_gpu_and_match_cpu_decoding(test_clip: Path) -> None:
    stop = threading.Event()
    opened: list[str] = []
    on_gpu = list(
        decode_frames(
            CameraConfig(id="c", url=str(test_clip), realtime=False, decode_device="cuda"),
            stop=stop,
            on_open=opened.append,
        )
    )
    on_cpu = list(decode_frames(CameraConfig(id="c", url=str(test_clip), realtime=False), stop=stop))
    assert opened == ["cuda"]
    assert len(on_gpu) == len(on_cpu) and on_gpu[0].is_on_gpu
    assert on_gpu[0].image.device.type == "cuda" and tuple(on_gpu[0].image.shape) == (240, 320, 3)
    difference = np.abs(on_gpu[3].host_image().astype(int) - on_cpu[3].image.astype(int)).mean()
    assert difference < 3.0
