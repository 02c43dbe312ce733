"""Serving a built runtime: a camera pipeline that cannot load stops the server and is reported; all is stopped."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest

from anjian.models.config import DetectorConfig
from anjian.service.bus.config import BusConfig
from anjian.service.config import AnjianConfig
from anjian.service.node_config import NodeConfig, NodesConfig
from anjian.service.runtime import build_pipeline_runtime, build_runtime
from anjian.service.serve import reload_cameras_on_sighup, serve_runtime
from tests.service.conftest import make_config
from tests.support.receiver import unused_port
from tests.support.waiting import wait_for


def _site(tmp_path: Path, model: str) -> AnjianConfig:
    """A site whose cameras are never opened (the pipeline does not get that far)."""
    return make_config(tmp_path / "data", model=DetectorConfig(path=model))


def test_a_pipeline_that_cannot_load_stops_the_server_and_is_returned(tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    runtime = build_runtime(_site(tmp_path, str(model)), with_pipeline=True, is_pipeline_deferred=True)
    assert runtime.parts is not None
    sighup = signal.getsignal(signal.SIGHUP)
    try:
        error = serve_runtime(runtime, host="127.0.0.1", port=unused_port())
    finally:
        signal.signal(signal.SIGHUP, sighup)

    assert error is not None and "broken.onnx" in str(error)
    assert runtime.runner is None
    assert not runtime.parts.dispatcher.is_running, "the runtime is stopped when the server ends"


def test_a_pipeline_only_runtime_has_nothing_to_serve(tmp_path: Path) -> None:
    runtime = build_pipeline_runtime(
        _site(tmp_path, "builtin:anjian-demo"), service_url="http://127.0.0.1:9", token="anj_x"
    )
    try:
        with pytest.raises(ValueError, match="pipeline-only runtime has no HTTP app"):
            serve_runtime(runtime, host="127.0.0.1", port=unused_port())
    finally:
        runtime.stop()


def test_sighup_on_a_pipeline_node_leaves_its_cameras_to_its_leases(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = NodesConfig(members=[NodeConfig(name="line-a", cameras=["cam-1", "cam-2"])])
    site = make_config(tmp_path / "data", bus=BusConfig(url=f"nats://127.0.0.1:{unused_port()}"), nodes=nodes)
    runtime = build_runtime(site, with_pipeline=True, is_pipeline_deferred=True, node="line-a")
    assert runtime.node is not None and runtime.control is None, "a node's cameras come from its leases"
    sighup = signal.getsignal(signal.SIGHUP)
    try:
        reload_cameras_on_sighup(runtime)
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler), "reload_cameras_on_sighup installs a SIGHUP handler"
        with caplog.at_level(logging.WARNING, logger="anjian.service.serve"):
            # The installed handler, called as the interpreter calls it on SIGHUP: a real signal sent to
            # the test process would land on whichever of the suite's C threads (decoders, OpenVINO) runs.
            handler(signal.SIGHUP, None)
            assert wait_for(lambda: "a pipeline node runs the cameras it leases" in caplog.text, timeout_s=10)
    finally:
        signal.signal(signal.SIGHUP, sighup)
        runtime.stop()
