"""Letterbox and NMS in torch, for frames that already live on the GPU.

Frames decoded by NVDEC arrive as ``(h, w, 3) uint8`` CUDA tensors
(``anjian.cameras.gpu``). These functions letterbox them into the model's input batch and
decode the model's output on the same device, so only the small result arrays
(boxes, scores, classes) ever cross to the host. torch and torchvision are imported
inside the functions: the CPU path never loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from anjian.models.preprocess import PAD_VALUE, LetterboxTransform, letterbox_shape

__all__ = ["decode_yolo_output_torch", "letterbox_tensors"]


def letterbox_tensors(
    images: Sequence[Any], size_hw: tuple[int, int], *, stride: int | None, dtype: Any = None
) -> tuple[Any, list[LetterboxTransform]]:
    """Letterbox ``(h, w, 3) uint8`` BGR CUDA tensors into one ``(b, 3, H, W)`` RGB batch in ``[0, 1]``.

    Same geometry as ``anjian.models.preprocess.letterbox_batch`` (bilinear resize, grey 114
    padding, centred), computed on the images' device.

    Args:
        images: BGR tensors on one CUDA device, any sizes.
        size_hw: The model's nominal input ``(height, width)``.
        stride: For dynamic-shape models, pad only to this multiple.
        dtype: Batch dtype (``torch.float16`` for fp16 engines); float32 by default.

    Returns:
        The batch tensor (on the images' device) and one transform per image.
    """
    import torch
    import torch.nn.functional as F

    dtype = dtype or torch.float32
    device = images[0].device
    batch_hw = letterbox_shape([(int(im.shape[1]), int(im.shape[0])) for im in images], size_hw, stride)
    batch = torch.full((len(images), 3, *batch_hw), PAD_VALUE / 255.0, dtype=dtype, device=device)
    transforms: list[LetterboxTransform] = []
    for i, image in enumerate(images):
        h, w = int(image.shape[0]), int(image.shape[1])
        scale = min(size_hw[0] / h, size_hw[1] / w)
        new_w, new_h = min(round(w * scale), batch_hw[1]), min(round(h * scale), batch_hw[0])
        left = round((batch_hw[1] - new_w) / 2 - 0.1)
        top = round((batch_hw[0] - new_h) / 2 - 0.1)
        chw = image.permute(2, 0, 1).flip(0).unsqueeze(0).to(torch.float32)  # BGR -> RGB, (1, 3, h, w)
        if (new_h, new_w) != (h, w):
            chw = F.interpolate(chw, size=(new_h, new_w), mode="bilinear", align_corners=False)
        batch[i, :, top : top + new_h, left : left + new_w] = (chw[0] / 255.0).to(dtype)
        transforms.append(LetterboxTransform(scale=scale, pad_xy=(float(left), float(top))))
    return batch, transforms


def decode_yolo_output_torch(
    output: Any, confidence_threshold: float, iou_threshold: float, max_detections: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode a batch of ultralytics detect-head outputs on their device, then download the survivors.

    Args:
        output: ``(b, 4 + nc, anchors)`` tensor: ``cx, cy, w, h`` in input pixels, then
            one score per class.
        confidence_threshold: Minimum class score.
        iou_threshold: Class-aware NMS overlap threshold.
        max_detections: Maximum boxes kept per image.

    Returns:
        Per image: ``xyxy (k, 4) float32``, ``confidence (k,) float32``,
        ``class_id (k,) int32`` in model-input pixels, best first.
    """
    import torch
    from torchvision.ops import batched_nms

    output = output.float()
    scores_all, class_ids_all = output[:, 4:].max(dim=1)  # (b, anchors)
    results = []
    for boxes_cxcywh, scores, class_ids in zip(output[:, :4], scores_all, class_ids_all, strict=True):
        keep = scores >= confidence_threshold
        cxcywh, scores, class_ids = boxes_cxcywh[:, keep].T, scores[keep], class_ids[keep]
        xyxy = torch.cat((cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2), dim=1)
        kept = batched_nms(xyxy, scores, class_ids, iou_threshold)[:max_detections]  # sorted by score
        results.append(
            (
                xyxy[kept].cpu().numpy().astype(np.float32),
                scores[kept].cpu().numpy().astype(np.float32),
                class_ids[kept].cpu().numpy().astype(np.int32),
            )
        )
    return results
