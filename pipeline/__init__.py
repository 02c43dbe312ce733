"""Analysis: batch frames across cameras, detect, apply behaviour rules, emit events.

The names in ``__init__.pyi`` load on first use (lazy_loader), so importing ``anjian.pipeline.config`` (the site
YAML's camera sections) does not pull in the runner, tracking and its SciPy/supervision.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
