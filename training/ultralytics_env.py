"""Import ultralytics so that it never reaches the network, and run it on every CPU core.

anjian trains on machines without internet access. ultralytics, left alone, downloads
fonts, weights (the AMP check fetches ``yolo11n.pt``) and datasets, and pip-installs
missing requirements. :func:`offline_ultralytics` sets ``YOLO_OFFLINE=1`` and
``YOLO_AUTOINSTALL=false`` *before* the first import, points ``YOLO_CONFIG_DIR`` at a
private folder, and serves the one font its dataset check wants (``Arial.ttf``) from
matplotlib's bundled DejaVu Sans. Training calls must still pass ``amp=False`` (no AMP
check download) and ``plots=False``; :data:`OFFLINE_TRAIN_ARGS` holds those.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["OFFLINE_TRAIN_ARGS", "offline_ultralytics", "use_all_cores"]

logger = logging.getLogger(__name__)

OFFLINE_TRAIN_ARGS: dict[str, Any] = {"amp": False, "plots": False, "device": "cpu"}
"""Keyword arguments every ``YOLO.train`` call needs to stay offline on a CPU machine."""


def _provide_font(config_dir: Path) -> None:
    """Put a font where ultralytics' dataset check looks for Arial, so it never downloads one."""
    import matplotlib

    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = config_dir / name
        if not target.exists():
            shutil.copyfile(bundled, target)


def offline_ultralytics() -> ModuleType:
    """Configure the environment for an offline ultralytics and import it.

    Returns:
        The ``ultralytics`` module.
    """
    if "ultralytics" in sys.modules and os.environ.get("YOLO_OFFLINE") != "1":
        logger.warning("ultralytics was imported before the offline settings; they may not apply")
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    if "YOLO_CONFIG_DIR" not in os.environ:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        os.environ["YOLO_CONFIG_DIR"] = str(cache / "anjian")
    import ultralytics
    from ultralytics.utils import USER_CONFIG_DIR

    _provide_font(Path(USER_CONFIG_DIR))
    return ultralytics


def use_all_cores(model: Any) -> int:
    """Make a ``YOLO`` model's CPU training use every core this process may run on.

    ultralytics pins CPU training to ``cpu_count - 1`` torch threads (one of two cores
    here); a callback resets it once the trainer is set up. ``ANJIAN_TRAIN_THREADS`` caps it:
    on a machine shared with other jobs, one thread per training run avoids the OpenMP
    threads of one run spinning while they wait for each other (several times slower).

    Returns:
        The thread count training will use.
    """
    import torch

    threads = max(1, len(os.sched_getaffinity(0)))
    if (cap := os.environ.get("ANJIAN_TRAIN_THREADS", "").strip()).isdigit() and int(cap) > 0:
        threads = min(threads, int(cap))
    model.add_callback("on_pretrain_routine_end", lambda trainer: torch.set_num_threads(threads))
    return threads
