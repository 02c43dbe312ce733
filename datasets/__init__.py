"""Labelled detection sets: import (YOLO, COCO), validate, merge by class map, split, stats, harvest.

The names in ``__init__.pyi`` load on first use (lazy_loader), so ``anjian --help`` and commands that
need one module (``anjian.datasets.cli``) do not pull in OpenCV with every other one.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
