"""``anjian bench service`` runs end to end on small loads and reports its figures next to the baselines."""

from __future__ import annotations

import pytest

from anjian.service.benchmarks.crash import run_crash_bench
from anjian.service.benchmarks.ingest import BASELINE, BATCHED, PIPELINE_BATCHES
from anjian.service.benchmarks.service import run_service_bench
from anjian.service.benchmarks.soak import run_soak_bench


@pytest.mark.slow
def test_service_bench_measures_bursts_and_ingest_against_the_baselines() -> None:
    report = run_service_bench(
        events=40, workers=2, claim_batch=8, ingest_rates_per_s=(20.0,), ingest_seconds=1.0
    )

    assert (report.events, report.workers, report.claim_batch) == (40, 2, 8)
    assert report.database == "SQLite (WAL)"
    assert 0 < report.latency_p50_s <= report.latency_p95_s <= report.latency_max_s
    assert report.burst_drain_s > 0 and report.one_by_one_drain_s > 0 and report.one_by_one_p50_s > 0
    assert [run.path for run in report.ingest] == [PIPELINE_BATCHES, BATCHED, BASELINE]
    for run in report.ingest:
        assert run.ok == 20 and run.errors == {}, run
        assert 0 < run.latency_p50_s <= run.latency_p95_s and run.achieved_per_s > 0
    text = report.render()
    assert "claiming 8 at a time" in text and "claiming 1 at a time" in text
    assert (
        "ingest: 20 events/s offered for 1 s" in text
        and "pipeline batches = " in text
        and "batched = " in text
    )


@pytest.mark.slow
def test_crash_bench_kills_the_service_and_loses_nothing() -> None:
    report = run_crash_bench(rounds=1, rate_per_s=10.0, min_run_s=1.0, max_run_s=1.5)

    assert report.rounds == 1 and len(report.restart_s) == 2
    assert report.acknowledged > 0 and report.unacknowledged == 0
    assert report.lost == 0, "every acknowledged event was delivered after the restart"
    assert report.posts == report.delivered + report.duplicates
    assert "kill -9 rounds: 1" in report.render()


@pytest.mark.parametrize(
    "kwargs",
    [{"events": 0}, {"ingest_rates_per_s": ()}, {"ingest_rates_per_s": (0.0,)}, {"ingest_seconds": 0.0}],
    ids=["no-events", "no-rates", "zero-rate", "zero-seconds"],
)
def test_service_bench_refuses_an_empty_load(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="expected events >= 1"):
        run_service_bench(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_soak_bench_samples_the_service_rss_under_load_and_idle() -> None:
    report = run_soak_bench(seconds=6.0, rate_per_s=10.0, warmup_s=2.0, sample_s=2.0, idle_s=1.0)

    assert report.events_ok == 60 and report.errors == 0
    assert report.webhooks > 0 and report.live_messages > 0
    assert len(report.rss_mb) == 3 and all(mb > 20 for _, mb in report.rss_mb) and report.idle_rss_mb > 20
    assert "service RSS after 2 s warm-up" in report.render()


def test_soak_bench_refuses_a_warmup_longer_than_the_load() -> None:
    with pytest.raises(ValueError, match="expected 0 < warmup_s < seconds"):
        run_soak_bench(seconds=10.0, warmup_s=10.0)


def test_crash_bench_refuses_zero_rounds() -> None:
    with pytest.raises(ValueError, match="expected rounds >= 1"):
        run_crash_bench(rounds=0)
