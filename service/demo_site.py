"""Set up the demo plant on disk: its generated footage (once) and its site config.

``anjian demo`` calls :func:`prepare_demo_site`, then serves the config like any site's.
The footage is rendered on first use (about a minute on a laptop) and kept, so a
second start is immediate.
"""

from __future__ import annotations

from pathlib import Path

from anjian.datasets.synthetic import PLANT_CAMERAS, write_plant_footage

__all__ = ["DEMO_SCRIPT", "prepare_demo_site"]

_TEMPLATE = Path(__file__).parent / "demo" / "site.yaml"

DEMO_SCRIPT: tuple[str, ...] = tuple(f"{camera.camera_id}: {camera.script}" for camera in PLANT_CAMERAS)
"""What each demo camera shows, and when, for the banner of ``anjian demo``."""


def prepare_demo_site(directory: Path, size_wh: tuple[int, int] = (640, 360)) -> Path:
    """Write the demo plant's footage (if missing) and its site config into ``directory``.

    Args:
        directory: The demo's folder: ``footage/`` (one clip per camera), ``data/`` (the
            store) and ``site.yaml`` go in it.
        size_wh: Frame size of newly written footage (tests use a quarter of the default:
            the demo model sees 320 pixels across either way).

    Returns:
        The path of the written ``site.yaml``.
    """
    directory = directory.resolve()
    footage = directory / "footage"
    clips = {camera.camera_id: footage / f"{camera.camera_id}.mp4" for camera in PLANT_CAMERAS}
    if not all(clip.is_file() for clip in clips.values()):
        clips = write_plant_footage(footage, size_wh=size_wh)
    text = _TEMPLATE.read_text(encoding="utf-8").replace("{storage}", str(directory / "data"))
    for camera_id, clip in clips.items():
        text = text.replace(f"{{video:{camera_id}}}", str(clip))
    site = directory / "site.yaml"
    site.write_text(text, encoding="utf-8")
    return site
