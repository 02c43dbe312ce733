"""The nodes benchmark kills a real node process and times a live node taking its cameras over."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from anjian.service.benchmarks.nats_servers import nats_server_available
from anjian.service.benchmarks.nodes import TakeOverRound, format_takeover_report, run_takeover_bench
from anjian.service.cli import app


@pytest.mark.slow
def test_nodes_bench_times_the_take_over_of_a_killed_node() -> None:
    if not nats_server_available():
        pytest.skip("nats-server is not installed (apt install nats-server)")

    (measured,) = run_takeover_bench(rounds=1, cameras=4, lease_ttl_s=3.0, renew_interval_s=1.0)

    assert measured.taken_after_s is not None and measured.taken_after_s > 0


def test_nodes_report_gives_rounds_median_max_and_the_bound() -> None:
    rounds = [TakeOverRound(0.0, 14.0), TakeOverRound(1.0, 16.0), TakeOverRound(2.0, None)]

    report = format_takeover_report(rounds, lease_ttl_s=15, renew_interval_s=3)

    assert "lease_ttl_s 15, renew_interval_s 3 (bound 18 s)" in report
    assert "round 3: not taken within 120 s" in report
    assert "15.0 s (median), 16.0 s (max)" in report and "1 round(s) not taken over" in report


def test_bench_nodes_refuses_timings_a_site_would_refuse() -> None:
    result = CliRunner().invoke(app, ["bench", "nodes", "--lease-ttl-s", "6", "--renew-interval-s", "3"])

    assert result.exit_code == 2 and "must be at most a third" in result.output
