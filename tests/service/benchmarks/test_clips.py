"""The one synthetic-clip writer: test clips and camera-like bench clips, checked by decoding them with PyAV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from anjian.service.benchmarks.clips import write_synthetic_clip


def _decoded(path: Path) -> tuple[list[bool], list[np.ndarray]]:
    """Each frame's keyframe flag and RGB image."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.key_frame for f in frames], [f.to_ndarray(format="rgb24") for f in frames]


def test_keyframes_come_every_interval_and_never_between(tmp_path: Path) -> None:
    clip = write_synthetic_clip(tmp_path / "c.mp4", seconds=4, fps=10, keyframe_interval_s=2.0)

    keyframes, _ = _decoded(clip)

    assert len(keyframes) == 40 and [i for i, key in enumerate(keyframes) if key] == [0, 20]


def test_sensor_noise_makes_a_static_scene_change_from_frame_to_frame(tmp_path: Path) -> None:
    clean = _decoded(write_synthetic_clip(tmp_path / "clean.mp4", seconds=1, fps=5, pattern="static"))[1]
    noisy = _decoded(
        write_synthetic_clip(
            tmp_path / "noisy.mp4", seconds=1, fps=5, pattern="static", sensor_noise=8, encoding="camera"
        )
    )[1]

    def change(frames: list[np.ndarray]) -> float:
        return float(np.abs(frames[1].astype(int) - frames[2].astype(int)).mean())

    assert change(noisy) > change(clean) + 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sensor_noise": 65}, "sensor_noise"),
        ({"keyframe_interval_s": 0}, "keyframe_interval_s"),
        ({"encoding": "lossless"}, "encoding"),
        ({"pattern": "stripes"}, "pattern"),
        ({"size_wh": (15, 16)}, "size_wh"),
        ({"codec": "vp9"}, "codec"),
    ],
    ids=["noise", "keyframes", "encoding", "pattern", "odd-size", "codec"],
)
def test_bad_arguments_are_refused_by_name(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_synthetic_clip(tmp_path / "x.mp4", seconds=1, fps=5, **kwargs)
