"""Run a test helper's loop (a fake camera, a silent server) in a thread for the length of a block."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["in_background"]


@contextmanager
def in_background(work: Callable[[], None], *, stop: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` in a daemon thread while the block runs; then ``stop()`` it and wait for it (5 s at most).

    Example:
        >>> with in_background(feed, stop=stopping.set):
        ...     assert wait_for(lambda: view.frame("cam-1") is not None)
    """
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(5)
