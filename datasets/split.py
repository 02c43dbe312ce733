"""Split a set into train/val (/test) by group, so augmented copies never straddle splits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from anjian.datasets.labels import DetectionSet, LabelledImage

__all__ = ["split_by_group"]


def _unit(seed: int, key: str) -> float:
    """A stable pseudo-random number in ``[0, 1)`` for a group key."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_group(
    dataset: DetectionSet,
    fractions: Mapping[str, float],
    *,
    seed: int = 0,
    key: Callable[[LabelledImage], str] | None = None,
) -> DetectionSet:
    """Reassign every image to a split, keeping each group (see ``group_key``) together.

    Assignment hashes the group key with the seed, so it is stable: adding images later
    never moves the ones already placed, and the same seed gives the same split.

    Args:
        dataset: The set; its current splits are ignored.
        fractions: Split name to share, e.g. ``{"train": 0.85, "val": 0.15}``; shares must
            be positive and sum to 1.
        seed: Changes the assignment.
        key: The group of an image; ``None``: its augmented-copy group (``LabelledImage.group``).
            Pass ``lambda im: video_key(im.image)`` to keep the frames of one video together.

    Returns:
        A new set with the same images in the new splits.

    Raises:
        ValueError: The fractions are not positive or do not sum to 1.
    """
    if not fractions or any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {dict(fractions)}")
    bounds: list[tuple[float, str]] = []
    total = 0.0
    for name, share in fractions.items():
        total += share
        bounds.append((total, name))

    def assign(group: str) -> str:
        u = _unit(seed, group)
        return next((name for bound, name in bounds if u < bound), bounds[-1][1])

    group_of = key or (lambda item: item.group)
    images = [item.replace(split=assign(f"{item.source}/{group_of(item)}")) for item in dataset.images]
    return DetectionSet(
        name=dataset.name,
        class_names=dataset.class_names,
        images=images,
        issues=list(dataset.issues),
        labelled_classes=dict(dataset.labelled_classes),
    )
