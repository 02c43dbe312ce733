"""The demo plant: its footage and site config raise each scripted behaviour once, and end it.

Two detectors run the site's real pipeline (``replay_video``, the rules and trackers a site
runs) over the generated clips:

- the labels the renderer drew (a perfect detector): proves the script, the zones and the
  rule settings of ``service/demo/site.yaml`` give one incident per behaviour, in time, ended;
- the shipped demo model through the one loader: what ``make demo`` shows a user.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from anjian.datasets.synthetic import CLASS_NAMES, PLANT_LOOP_S, plant_scene_spec, render_scene
from anjian.datasets.synthetic.specs import SceneSpec
from anjian.models.detections import Detections
from anjian.models.loader import load_detector
from anjian.pipeline.event import Event
from anjian.pipeline.replay import replay_video
from anjian.service.config import AnjianConfig, load_config
from anjian.service.demo_site import prepare_demo_site

pytestmark = pytest.mark.slow

SCRIPT: dict[str, dict[str, tuple[float, float]]] = {
    # camera -> behaviour -> (earliest, latest) second of the clip its condition may start at (an
    # incident's started_at is when the condition began, not when it was confirmed and raised)
    "polishing-1-cam-1": {
        "smoking": (15.0, 25.0),
        "open_flame": (60.0, 68.0),
        "uncleaned_dust": (100.0, 135.0),
    },
    "polishing-1-cam-2": {"blocked_exit": (38.0, 50.0)},
    "refrigeration-1-cam-1": {"absence_from_post": (48.0, 60.0)},
    "refrigeration-1-cam-2": {"fallen_person": (140.0, 152.0)},
}


class RenderedTruthDetector:
    """Satisfies ``models.Detector``: frame ``i`` gets the labels the renderer drew at ``i / fps``."""

    def __init__(self, spec: SceneSpec, fps: float) -> None:
        self.class_names = dict(enumerate(CLASS_NAMES))
        self.version = "rendered-truth@1"
        self.class_thresholds: dict[str, float] = {}
        self._spec, self._fps, self._frame = spec, fps, 0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """The drawn boxes of the next frames, scaled to each image."""
        out = []
        for image in images:
            _, boxes = render_scene(self._spec, self._frame / self._fps)
            self._frame += 1
            sx = image.shape[1] / self._spec.size_wh[0]
            sy = image.shape[0] / self._spec.size_wh[1]
            xyxy = np.array([[b.xyxy[0] * sx, b.xyxy[1] * sy, b.xyxy[2] * sx, b.xyxy[3] * sy] for b in boxes])
            out.append(
                Detections(
                    xyxy.reshape(-1, 4).astype(np.float32),
                    np.full(len(boxes), 0.9, np.float32),
                    np.array([b.class_id for b in boxes], np.int32),
                    self.class_names,
                )
            )
        return out


@dataclass
class Incident:
    behaviour: str
    started_s: float
    ended_s: float | None


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> AnjianConfig:
    # a quarter of the demo's 640x360: four times cheaper to render, and the demo model sees 320
    # pixels across either way (it letterboxes 640x360 down to 320x180)
    return load_config(prepare_demo_site(tmp_path_factory.mktemp("demo"), size_wh=(320, 180)))


def _incidents(config: AnjianConfig, camera_id: str, detector: object) -> list[Incident]:
    """Replay one demo camera's clip through its site pipeline; the incidents it raised."""
    [(workshop, camera)] = [(w, c) for w, c in config.cameras() if c.id == camera_id]
    events: dict[str, list[Event]] = defaultdict(list)
    replay_video(
        Path(camera.url.get_secret_value()),
        camera,
        detector,  # type: ignore[arg-type]
        io.StringIO(),
        site_id=config.site.id,
        workshop_id=workshop.id,
        time_zone=config.site.timezone,
        start_at=0.0,
        on_event=lambda e: events[e.id].append(e),
    )
    return [
        Incident(revs[-1].behaviour.value, revs[0].started_at, revs[-1].ended_at)
        for revs in sorted(events.values(), key=lambda r: r[0].started_at)
    ]


@pytest.mark.parametrize("camera_id", list(SCRIPT))
def test_the_script_raises_each_behaviour_once_and_ends_it(demo_site: AnjianConfig, camera_id: str) -> None:
    """With a detector that sees exactly what is drawn, each scripted behaviour is one ended incident, in time."""
    spec = plant_scene_spec(camera_id, (320, 180))
    incidents = _incidents(demo_site, camera_id, RenderedTruthDetector(spec, fps=5.0))
    assert sorted(i.behaviour for i in incidents) == sorted(SCRIPT[camera_id]), incidents
    for incident in incidents:
        earliest, latest = SCRIPT[camera_id][incident.behaviour]
        assert earliest <= incident.started_s <= latest, incident
        assert incident.ended_s is not None and incident.ended_s < PLANT_LOOP_S, incident


def test_the_demo_model_shows_five_of_six_behaviours_within_four_minutes(demo_site: AnjianConfig) -> None:
    """What ``make demo`` shows: the shipped demo model, loaded as a site loads it, over all four cameras.

    At least five of the six behaviours are raised within the first loop (200 s); none is raised
    on a camera whose script does not have it (a false alarm); each raised incident ends.
    """
    detector = load_detector(demo_site.model.path, demo_site.model)
    raised: set[str] = set()
    for camera_id, script in SCRIPT.items():
        incidents = _incidents(demo_site, camera_id, detector)
        unexpected = [i for i in incidents if i.behaviour not in script]
        assert not unexpected, f"{camera_id}: false alarms {unexpected}"
        assert all(i.ended_s is not None for i in incidents), incidents
        raised |= {i.behaviour for i in incidents if i.started_s <= 240.0}
    assert len(raised) >= 5, f"raised only {sorted(raised)}"
