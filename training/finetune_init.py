"""A trainable checkpoint for anjian's classes, initialised from the COCO YOLOv8n.

A few hundred labelled people cannot teach a detector what a person looks like; COCO's
YOLOv8n already knows. :func:`build_finetune_checkpoint` recovers its float weights
(:mod:`anjian.training.coco_init`), builds a YOLOv8n with anjian's classes, transfers the
backbone, neck and box head, and seeds each new class's score row from a COCO class
(``person`` from ``person``; ``fallen_person`` also from ``person``, so it starts by
finding people and only has to learn which ones lie on the floor). Classes without a
COCO counterpart start from ultralytics' usual prior.

Every tensor COCO does not provide (the new class branch's last convolutions) is drawn
from a generator seeded by ``seed``, so two builds with the same seed write the same
checkpoint and a training run started from it is reproducible.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anjian.training.ultralytics_env import offline_ultralytics

__all__ = ["DEFAULT_COCO_ONNX", "DEFAULT_SEEDS", "build_finetune_checkpoint", "write_model_yaml"]

logger = logging.getLogger(__name__)

DEFAULT_COCO_ONNX = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "weights" / "coco_yolov8n_int8.onnx"
)
"""Where the int8 COCO YOLOv8n sits in the workplace: ``shared/`` beside the anjian checkout."""

DEFAULT_SEEDS: dict[str, str] = {"person": "person", "fallen_person": "person"}
"""anjian class to the COCO class its score row starts from."""


def write_model_yaml(path: Path, nc: int, scale: str = "n") -> Path:
    """Write ultralytics' YOLOv8 yaml for ``nc`` classes at one scale (``n``, ``s``, ...)."""
    import yaml

    ultralytics = offline_ultralytics()
    cfg = yaml.safe_load((Path(str(ultralytics.__file__)).parent / "cfg/models/v8/yolov8.yaml").read_text())
    depth, width, max_channels = cfg.pop("scales")[scale]
    cfg.update(nc=nc, depth_multiple=depth, width_multiple=width, max_channels=max_channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _seed_class_rows(model: Any, source: Any, seeds: Mapping[str, str]) -> list[str]:
    """Copy COCO score rows into the new head's rows; returns the classes seeded."""
    import torch

    names = {v: int(k) for k, v in model.names.items()}
    source_names = {v: int(k) for k, v in source.names.items()}
    seeded = []
    head, src_head = model.model[-1], source.model[-1]
    with torch.no_grad():
        for target, coco in seeds.items():
            if target not in names or coco not in source_names:
                continue
            t, s = names[target], source_names[coco]
            for dst, src in zip(head.cv3, src_head.cv3, strict=True):
                if dst[-1].in_channels != src[-1].in_channels:
                    raise ValueError("class branches differ in width; cannot seed score rows")
                dst[-1].weight[t].copy_(src[-1].weight[s])
                dst[-1].bias[t].copy_(src[-1].bias[s])
            seeded.append(target)
    return seeded


def build_finetune_checkpoint(
    coco_onnx: Path,
    class_names: Sequence[str],
    out_pt: Path,
    *,
    seeds: Mapping[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write an ultralytics ``.pt`` for ``class_names`` that starts from the COCO YOLOv8n.

    Train it with ``YOLO(out_pt).train(data=...)`` (``pretrained`` left on): ultralytics
    then transfers every tensor, the seeded score rows included.

    Args:
        coco_onnx: The int8 COCO YOLOv8n ONNX file.
        class_names: anjian's classes, in id order (must match the data yaml).
        out_pt: Where to write the checkpoint.
        seeds: Target class to COCO class whose score row it copies; :data:`DEFAULT_SEEDS` when ``None``.
        seed: Seeds the random initialisation of the tensors COCO does not provide (same
            seed, same checkpoint). The caller's random state is left as it was.

    Returns:
        ``out_pt``.
    """
    offline_ultralytics()
    import torch
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from anjian.training.coco_init import recover_yolov8n_from_int8

    coco = recover_yolov8n_from_int8(Path(coco_onnx))
    yaml_path = write_model_yaml(out_pt.with_suffix(".yaml"), len(class_names))
    with torch.random.fork_rng(devices=[]):  # seeded draws, the caller's generator untouched
        torch.manual_seed(seed)
        model: Any = DetectionModel(str(yaml_path), nc=len(class_names), verbose=False)  # type: ignore[no-untyped-call]
        model.names = dict(enumerate(class_names))
        model.load(coco.model, verbose=False)  # rebuilds the class branch at COCO's width
        wrapper: Any = YOLO(str(yaml_path), task="detect")
    head = model.model[-1]
    for conv, stride in zip((b[-1] for b in head.cv3), head.stride.tolist(), strict=True):
        conv.bias.data[:] = math.log(5 / len(class_names) / (640 / stride) ** 2)
    seeded = _seed_class_rows(model, coco.model, DEFAULT_SEEDS if seeds is None else seeds)
    wrapper.model = model
    out_pt.parent.mkdir(parents=True, exist_ok=True)
    wrapper.save(str(out_pt))
    logger.info(
        "wrote %s: %d classes, score rows seeded from COCO for %s, seed %d",
        out_pt,
        len(class_names),
        seeded,
        seed,
    )
    return out_pt
