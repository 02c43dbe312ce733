"""Detectors: load models, letterbox, infer, decode boxes, NMS.

The names in ``__init__.pyi`` load on first use (lazy_loader), so importing ``anjian.models.config`` or
``anjian.models.errors`` does not pull in ONNX Runtime or OpenVINO.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
