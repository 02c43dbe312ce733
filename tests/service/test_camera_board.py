"""CameraHealthBoard: this process's cameras and the nodes' reports in one list; a silent node's cameras go stale."""

from __future__ import annotations

from anjian.cameras.health import CameraHealth, CameraState
from anjian.service.camera_board import CameraHealthBoard
from tests.service.conftest import FakeClock


def _health(camera_id: str, state: CameraState = CameraState.ONLINE, fps: float = 5.0) -> CameraHealth:
    return CameraHealth(camera_id=camera_id, state=state, since=1_000.0, fps=fps)


def _shown(board: CameraHealthBoard) -> list[tuple[str, str | None, str]]:
    return [(h.camera_id, h.node, h.state.value) for h in board()]


def test_the_local_and_remote_cameras_are_listed_in_the_sites_order_with_their_nodes() -> None:
    local = [_health("cam-c")]
    board = CameraHealthBoard(lambda: local, local_node="node-a", camera_order=["cam-a", "cam-b", "cam-c"])

    board.record("node-b", 2.0, [_health("cam-b"), _health("cam-a")])

    assert _shown(board) == [
        ("cam-a", "node-b", "online"),
        ("cam-b", "node-b", "online"),
        ("cam-c", "node-a", "online"),
    ]


def test_a_silent_nodes_cameras_turn_stale_after_three_intervals_and_keep_their_last_figures(
    clock: FakeClock,
) -> None:
    board = CameraHealthBoard(clock=clock)
    board.record("node-b", 2.0, [_health("cam-b", fps=7.5)])
    reported_at = clock.now

    clock.now += 6.0
    assert _shown(board) == [("cam-b", "node-b", "online")]
    clock.now += 0.5
    (stale,) = board()

    assert (stale.state, stale.fps, stale.since, stale.node) == (
        CameraState.STALE,
        0.0,
        reported_at,
        "node-b",
    )
    assert stale.last_error is not None and "node node-b has not reported it since" in stale.last_error
    assert "last state: online" in stale.last_error


def test_the_newer_report_wins_when_another_node_takes_the_camera_over(clock: FakeClock) -> None:
    board = CameraHealthBoard(clock=clock)
    board.record("node-b", 2.0, [_health("cam-b")])
    clock.now += 30.0
    assert _shown(board) == [("cam-b", "node-b", "stale")]

    board.record("node-c", 2.0, [_health("cam-b", CameraState.CONNECTING)])

    assert _shown(board) == [("cam-b", "node-c", "connecting")]


def test_a_camera_its_node_stops_listing_is_stale_at_once_until_a_node_reports_it(clock: FakeClock) -> None:
    board = CameraHealthBoard(clock=clock)
    board.record("node-b", 2.0, [_health("cam-a"), _health("cam-b")])

    board.record("node-b", 2.0, [_health("cam-a")])  # it handed cam-b over

    assert _shown(board) == [("cam-a", "node-b", "online"), ("cam-b", "node-b", "stale")]
    (_, stale) = board()
    assert stale.last_error is not None and "node node-b no longer runs it" in stale.last_error


def test_this_processs_cameras_win_over_a_report_and_go_stale_when_its_node_hands_them_over(
    clock: FakeClock,
) -> None:
    local = [_health("cam-a")]
    board = CameraHealthBoard(lambda: local, local_node="node-a", clock=clock)
    board.record("node-b", 2.0, [_health("cam-a", CameraState.OFFLINE)])
    assert _shown(board) == [("cam-a", "node-a", "online")]

    local.clear()  # node-a handed cam-a over: stale until its new node reports it
    assert _shown(board) == [("cam-a", "node-a", "stale")]
    board.record("node-b", 2.0, [_health("cam-a", CameraState.OFFLINE)])
    assert _shown(board) == [("cam-a", "node-b", "offline")]


def test_a_camera_removed_from_a_lone_process_is_dropped_as_before() -> None:
    local = [_health("cam-1"), _health("cam-2")]
    board = CameraHealthBoard(lambda: local)
    assert _shown(board) == [("cam-1", None, "online"), ("cam-2", None, "online")]

    del local[1]  # a camera reload removed it

    assert _shown(board) == [("cam-1", None, "online")]


def test_lone_pipelines_do_not_release_each_others_cameras(clock: FakeClock) -> None:
    board = CameraHealthBoard(clock=clock)
    board.record(None, 5.0, [_health("cam-1")])

    board.record(None, 5.0, [_health("cam-2")])  # another pipeline without --node

    assert _shown(board) == [("cam-1", None, "online"), ("cam-2", None, "online")]
    clock.now += 16.0
    assert _shown(board) == [("cam-1", None, "stale"), ("cam-2", None, "stale")]
