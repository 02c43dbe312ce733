"""Camera ingest: decode streams with PyAV, sample, reconnect, report health.

The names in ``__init__.pyi`` load on first use (lazy_loader), so importing one light module
(``anjian.cameras.config``, ``anjian.cameras.url``) does not pull in PyAV and NumPy.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
