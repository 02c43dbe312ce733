"""NVDEC decoding with frames kept on the GPU as torch tensors (via DLPack).

Used only by cameras configured with ``decode_device: cuda``. torch is imported
lazily, inside these functions, so the CPU path never loads it. When FFmpeg has
no CUDA device type, torch is missing or no NVIDIA GPU is visible,
``cuda_hwaccel()`` returns ``None`` and the camera decodes on the CPU instead.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import av
import av.codec.hwaccel

__all__ = ["cuda_decode_unavailable_reason", "cuda_hwaccel", "hw_frame_to_bgr_tensor", "nv12_to_bgr"]

logger = logging.getLogger(__name__)

# Limited-range YUV -> RGB coefficients (r_v, g_u, g_v, b_u) per colour standard.
_BT601 = (1.596, 0.392, 0.813, 2.017)
_BT709 = (1.793, 0.213, 0.533, 2.112)
_AVCOL_SPC_BT709 = 1


@functools.cache
def cuda_decode_unavailable_reason() -> str | None:
    """Return why NVDEC decoding into torch tensors cannot run here, or ``None`` if it can."""
    if "cuda" not in av.codec.hwaccel.hwdevices_available():
        return "FFmpeg has no CUDA device type"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no NVIDIA GPU visible to torch"
    return None


def cuda_hwaccel() -> av.codec.hwaccel.HWAccel | None:
    """Return an NVDEC ``HWAccel`` keeping frames on the GPU, or ``None`` when unavailable.

    Software fallback stays allowed, so a codec NVDEC cannot handle still decodes
    (on the CPU, frames then arrive in system memory).
    """
    if cuda_decode_unavailable_reason() is not None:
        return None
    return av.codec.hwaccel.HWAccel("cuda", allow_software_fallback=True, is_hw_owned=True)


def nv12_to_bgr(y: Any, uv: Any, *, is_bt709: bool) -> Any:
    """Convert limited-range NV12 planes to a BGR image, on whatever device they live.

    Args:
        y: ``(h, w) uint8`` luma tensor.
        uv: ``(h/2, w/2, 2) uint8`` interleaved chroma tensor (``(h/2, w)`` is accepted too).
        is_bt709: Use BT.709 coefficients (HD streams) instead of BT.601.

    Returns:
        ``(h, w, 3) uint8`` BGR tensor on the planes' device.
    """
    import torch

    height, width = int(y.shape[0]), int(y.shape[1])
    uv = uv.reshape(height // 2, width // 2, 2)
    r_v, g_u, g_v, b_u = _BT709 if is_bt709 else _BT601
    luma = (y.to(torch.float32) - 16.0) * 1.164
    chroma = uv.to(torch.float32) - 128.0
    chroma = chroma.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)[:height, :width]
    u, v = chroma[..., 0], chroma[..., 1]
    bgr = torch.stack((luma + b_u * u, luma - g_u * u - g_v * v, luma + r_v * v), dim=-1)
    return bgr.round_().clamp_(0, 255).to(torch.uint8)


def hw_frame_to_bgr_tensor(frame: av.VideoFrame) -> Any:
    """Turn an NVDEC frame (format ``cuda``, NV12 underneath) into a ``(h, w, 3) uint8`` CUDA tensor."""
    from torch.utils.dlpack import from_dlpack

    y = from_dlpack(frame.planes[0])[: frame.height, : frame.width]
    uv = from_dlpack(frame.planes[1])[: frame.height // 2, : frame.width]
    return nv12_to_bgr(y, uv, is_bt709=int(frame.colorspace) == _AVCOL_SPC_BT709)
