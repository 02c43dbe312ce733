"""Per-camera settings of the inference engine: object tracking and motion gating.

In the site YAML, under a camera:

.. code-block:: yaml

    engine:
      tracking: {lost_track_s: 3.0}
      motion_gate: {enabled: true, max_skip_s: 5.0}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from anjian.cameras.fields import Fraction, GreyLevel, Score, ShortDurationS

__all__ = ["EngineConfig", "MotionGateConfig", "TrackingConfig"]


class _EngineModel(BaseModel):
    """Base of the engine config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackingConfig(_EngineModel):
    """ByteTrack over one camera's detections, so rules can follow one person or object over time."""

    enabled: bool = Field(True, description="Give detections track ids (rules keyed by track need it).")
    lost_track_s: float = Field(
        3.0, gt=0, le=600, description="Keep a track this long without a matching detection before ending it."
    )
    activation_confidence: Score = Field(
        0.35, description="A detection must score at least this to start a new track."
    )
    high_confidence: Score = Field(
        0.5, description="Detections above are matched first; those below only extend tracks."
    )
    min_consecutive_frames: int = Field(
        2, ge=1, le=30, description="Analysed frames a new track needs before it gets an id (-1 until then)."
    )
    min_iou: Score = Field(0.1, description="Least box overlap to match a detection to a track.")


class MotionGateConfig(_EngineModel):
    """Skip inference on frames where nothing moved since the last inferred frame.

    A skipped frame still reaches the tracker and the rules, with the detections of
    the last inferred frame: the scene is unchanged, so they still hold. By default only
    an empty scene is skipped (``skip_occupied``): a quiet camera at night costs little,
    a still person is still sampled on every frame.
    """

    enabled: bool = Field(False, description="Gate inference on motion (saves compute on quiet cameras).")
    pixel_delta: GreyLevel = Field(
        18.0, description="Grey-level change (0-255) for a pixel to count as changed."
    )
    min_changed_fraction: Fraction = Field(
        0.002, description="Share of changed pixels (of a ~160 px wide thumbnail) that is motion."
    )
    max_skip_s: ShortDurationS = Field(5.0, description="Infer at least this often even on a still scene.")
    skip_occupied: bool = Field(
        False,
        description=(
            "Also skip still frames when the last inferred one found something, reusing its detections. "
            "Off: only an empty still scene is skipped. A detector's scores on a still person vary from "
            "frame to frame and the rules vote over those samples: frozen on one, a fall can go unreported."
        ),
    )


class EngineConfig(_EngineModel):
    """How the engine treats one camera's frames before its rules see them."""

    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    motion_gate: MotionGateConfig = Field(default_factory=MotionGateConfig)
