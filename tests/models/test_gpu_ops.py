"""The torch letterbox and NMS agree with the numpy/OpenCV ones; on a GPU, frames never leave it.

The torch functions run on any device, so their geometry is checked on the CPU here;
the end-to-end GPU test (CUDA tensors through ONNX Runtime's CUDA EP with IOBinding)
needs an NVIDIA GPU and onnxruntime-gpu and is skipped without them.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from anjian.models.config import DetectorConfig
from anjian.models.onnx_detector import OnnxDetector, execution_providers
from anjian.models.postprocess import decode_yolo_output
from anjian.models.preprocess import letterbox_batch
from anjian.models.registry import resolve_model_path

torch = pytest.importorskip("torch", reason="torch (the train or GPU extra) runs the GPU ops")
pytest.importorskip("torchvision", reason="torchvision provides batched NMS")

from anjian.models.gpu_ops import decode_yolo_output_torch, letterbox_tensors


@pytest.mark.parametrize("size_wh", [(640, 360), (300, 500), (320, 320)], ids=str)
@pytest.mark.parametrize("stride", [None, 32], ids=["square", "stride32"])
def test_torch_letterbox_matches_numpy(size_wh: tuple[int, int], stride: int | None) -> None:
    w, h = size_wh
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.repeat(np.repeat(image[::8, ::8], 8, 0), 8, 1)[:h, :w])  # smooth-ish
    expected, expected_transforms = letterbox_batch([image], (320, 320), stride=stride)
    batch, transforms = letterbox_tensors([torch.from_numpy(image)], (320, 320), stride=stride)
    assert tuple(batch.shape) == expected.shape
    assert transforms == expected_transforms
    # Same geometry; bilinear kernels differ in rounding only.
    assert float(np.abs(batch.numpy() - expected).mean()) < 0.01


def test_torch_decode_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    output = np.zeros((2, 4 + 3, 50), np.float32)
    output[:, :2] = rng.uniform(50, 300, (2, 2, 50))
    output[:, 2:4] = rng.uniform(10, 80, (2, 2, 50))
    output[:, 4:] = rng.uniform(0, 1, (2, 3, 50)) ** 3
    decoded = decode_yolo_output_torch(torch.from_numpy(output), 0.25, 0.45, 300)
    for one, (xyxy, conf, cls) in zip(output, decoded, strict=True):
        exp_xyxy, exp_conf, exp_cls = decode_yolo_output(one, 0.25, 0.45, 300)
        order, exp_order = np.lexsort((xyxy[:, 0], -conf)), np.lexsort((exp_xyxy[:, 0], -exp_conf))
        np.testing.assert_allclose(xyxy[order], exp_xyxy[exp_order], atol=1e-4)
        np.testing.assert_array_equal(cls[order], exp_cls[exp_order])


def test_cpu_device_uses_only_the_cpu_provider() -> None:
    assert execution_providers(DetectorConfig(device="cpu")) == ["CPUExecutionProvider"]


_HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(
    not (torch.cuda.is_available() and _HAS_CUDA_EP), reason="needs an NVIDIA GPU and onnxruntime-gpu"
)
def test_cuda_frames_are_detected_on_the_gpu_like_host_frames() -> None:
    path = resolve_model_path("builtin:anjian-demo")
    detector = OnnxDetector(path, DetectorConfig(device="cuda"))
    assert detector.providers[0] in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    from anjian.datasets.synthetic import demo_scene_spec, render_scene

    image, flames = render_scene(demo_scene_spec((640, 360)), t_s=10.0)  # a flame burns
    assert flames
    host = detector.detect([image])[0]
    on_gpu = detector.detect([torch.from_numpy(image).cuda()])[0]
    assert len(host) == len(on_gpu)
    np.testing.assert_allclose(host.xyxy, on_gpu.xyxy, atol=2.0)
    np.testing.assert_array_equal(host.class_id, on_gpu.class_id)
