"""``with`` a background server starts it, and closes it on the way out even when the body fails."""

from __future__ import annotations

import pytest

from anjian.service.benchmarks.background_server import BackgroundServer


class _Recorder(BackgroundServer):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


class _HoldsAFolder(_Recorder):
    def close(self) -> None:
        super().close()
        self.calls.append("remove folder")


def test_with_starts_the_server_and_stops_it_after_a_failing_body() -> None:
    server = _Recorder()
    with pytest.raises(RuntimeError, match="body failed"), server as entered:
        assert entered is server and server.calls == ["start"]
        raise RuntimeError("body failed")
    assert server.calls == ["start", "stop"]


def test_a_server_that_holds_more_closes_it_on_the_way_out() -> None:
    with _HoldsAFolder() as server:
        pass
    assert server.calls == ["start", "stop", "remove folder"]
