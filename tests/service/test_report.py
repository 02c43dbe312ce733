"""Shift reports: the figures of a window from the store (SQLite and PostgreSQL), the HTML page, the PDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.service.config import AnjianConfig
from anjian.service.report import build_figures, html_to_pdf, render_report_html
from anjian.service.report.pdf import find_chromium
from anjian.service.store import EventStore
from tests.factories import make_event
from tests.service.conftest import FakeClock

T0 = 1_800_000_000.0  # the window starts here; the clock runs inside it


def _site(tmp_path: Path) -> AnjianConfig:
    return AnjianConfig.model_validate(
        {
            "site": {
                "id": "site-1",
                "name": "华东抛光厂",
                "timezone": "Asia/Shanghai",
                "workshops": [
                    {
                        "id": "polishing-1",
                        "name": "一号抛光车间",
                        "cameras": [
                            {"id": "cam-1", "name": "抛光线东侧", "url": "rtsp://127.0.0.1:9/a"},
                            {"id": "cam-2", "url": "rtsp://127.0.0.1:9/b"},
                        ],
                    }
                ],
            },
            "storage": {"dir": str(tmp_path / "data")},
            "sla": {"red_s": 300, "orange_s": 900},
        }
    )


def _raise(store: EventStore, clock: FakeClock, at: float, **fields: object) -> str:
    clock.now = at
    event = make_event(started_at=at, last_seen_at=at + 1, **fields)
    store.upsert_event(event)
    return event.id


def _shift(store: EventStore, clock: FakeClock) -> dict[str, str]:
    """Five alerts over three hours: worked, false alarms, one left open; a camera down for 30 min."""
    fire, smoking, fault = Behaviour.OPEN_FLAME, Behaviour.SMOKING, Behaviour.CAMERA_FAULT
    red, orange, yellow = RiskLevel.RED, RiskLevel.ORANGE, RiskLevel.YELLOW
    shift: dict[
        str, tuple[float, str, Behaviour, RiskLevel, float | None]
    ] = {  # start, camera, what, colour, end
        "fire": (T0 + 600, "cam-1", fire, red, None),
        "glare": (T0 + 3_700, "cam-1", fire, red, None),
        "smoke": (T0 + 3_800, "cam-2", smoking, orange, None),
        "drill": (T0 + 7_300, "cam-2", smoking, orange, None),
        "fault": (T0 + 7_400, "cam-2", fault, yellow, T0 + 9_200),
    }
    ids = {
        name: _raise(store, clock, at, camera_id=camera, behaviour=what, severity=colour, ended_at=end)
        for name, (at, camera, what, colour, end) in shift.items()
    }
    clock.now = T0 + 600 + 120  # acknowledged after 2 min, resolved after 10
    store.transition(ids["fire"], "acknowledge", actor="op")
    clock.now = T0 + 600 + 600
    store.transition(ids["fire"], "resolve", actor="op", note="extinguished")
    clock.now = T0 + 3_700 + 60  # a one-step false alarm after a minute, then closed
    store.transition(ids["glare"], "false_alarm", actor="op", note="reflection: sun on the drum")
    store.transition(ids["glare"], "close", actor="supervisor")
    clock.now = T0 + 3_800 + 1_200  # acknowledged after 20 min: past the orange SLA
    store.transition(ids["smoke"], "acknowledge", actor="op")
    store.transition(ids["smoke"], "false_alarm", actor="op", note="test")
    return ids


def test_the_figures_count_time_and_judge_a_shift(
    store: EventStore, clock: FakeClock, tmp_path: Path
) -> None:
    config = _site(tmp_path)
    ids = _shift(store, clock)

    figures = build_figures(store, config, T0, T0 + 4 * 3600)

    assert figures.total == 5
    assert figures.by_behaviour == {"open_flame": 2, "smoking": 2, "camera_fault": 1}
    assert figures.by_hour == [1, 2, 2, 0]
    assert figures.by_colour == {"red": 2, "orange": 2, "yellow": 1, "blue": 0}
    assert (figures.acknowledge.count, figures.acknowledge.p50_s, figures.acknowledge.p90_s) == (
        3,
        120.0,
        1_200.0,
    )
    assert figures.acknowledge.within_sla == pytest.approx(2 / 3)
    assert (figures.settle.count, figures.settle.p50_s) == (3, 600.0)
    assert figures.false_alarms_by_behaviour["open_flame"] == (1, 2)
    assert figures.false_alarms_by_behaviour["smoking"] == (1, 2)
    assert figures.false_alarm_reasons == {
        "reflection": 1,
        "person misread": 0,
        "camera fault": 0,
        "test": 1,
        "other": 0,
    }
    assert [(u.camera_id, u.down_s) for u in figures.uptime] == [("cam-1", 0.0), ("cam-2", 1_800.0)]
    assert [e.id for e in figures.open_at_handover] == [ids["drill"], ids["fault"]]


def test_what_started_before_the_shift_and_lasts_into_it_is_carried_over(
    store: EventStore, clock: FakeClock, tmp_path: Path
) -> None:
    config = _site(tmp_path)
    fault, fire = Behaviour.CAMERA_FAULT, Behaviour.OPEN_FLAME
    dark = _raise(store, clock, T0 - 60, camera_id="cam-2", behaviour=fault, severity=RiskLevel.ORANGE)
    back = _raise(store, clock, T0 - 3_600, camera_id="cam-1", behaviour=fault, ended_at=T0 + 600)
    over = _raise(store, clock, T0 - 7_200, camera_id="cam-1", behaviour=fault, ended_at=T0 - 3_600)
    unseen = _raise(store, clock, T0 - 600, camera_id="cam-1", behaviour=fire, severity=RiskLevel.RED)
    settled = _raise(store, clock, T0 - 900, camera_id="cam-1", behaviour=fire, severity=RiskLevel.RED)
    store.transition(settled, "false_alarm", actor="op", note="test")
    store.transition(over, "acknowledge", actor="op")
    store.transition(over, "resolve", actor="op")

    figures = build_figures(store, config, T0, T0 + 4 * 3600)

    assert figures.total == 0, "carried over, not alerts of this shift"
    assert [(u.camera_id, u.down_s, u.uptime) for u in figures.uptime] == [
        ("cam-1", 600.0, pytest.approx(1 - 600 / 14_400)),
        ("cam-2", 14_400.0, 0.0),
    ]
    open_ids = [e.id for e in figures.open_at_handover]
    assert open_ids == [back, unseen, dark], "red before orange, oldest first; settled ones are not open"
    assert settled not in open_ids and over not in open_ids


def test_open_at_hand_over_is_the_state_at_the_windows_end_when_the_report_is_written_later(
    store: EventStore, clock: FakeClock, tmp_path: Path
) -> None:
    """A report written the next morning listed today's state: an alert open at hand-over and settled by
    the night shift was missing, and the count said the shift handed over nothing."""
    config = _site(tmp_path)
    end = T0 + 4 * 3600
    during = _raise(store, clock, T0 + 600, camera_id="cam-1", severity=RiskLevel.RED)
    before = _raise(store, clock, T0 - 600, camera_id="cam-2", behaviour=Behaviour.SMOKING)
    clock.now = T0 + 900
    store.transition(during, "acknowledge", actor="day shift")
    clock.now = end + 5_400  # the night shift settles both after the hand-over
    store.transition(during, "resolve", actor="night shift")
    store.transition(before, "false_alarm", actor="night shift", note="test")

    figures = build_figures(store, config, T0, end)  # written the next morning

    handed = {e.id: e.state.value for e in figures.open_at_handover}
    assert handed == {during: "acknowledged", before: "raised"}  # as they stood at the hand-over


def test_a_reversed_window_is_refused(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        build_figures(store, _site(tmp_path), T0, T0)


def test_the_page_has_charts_names_and_local_times(
    store: EventStore, clock: FakeClock, tmp_path: Path
) -> None:
    config = _site(tmp_path)
    _shift(store, clock)

    html = render_report_html(build_figures(store, config, T0, T0 + 4 * 3600), config)

    assert html.count("<svg") == 8
    assert "华东抛光厂" in html and "抛光线东侧" in html and "明火 Open flame" in html
    assert "2027-01-15 16:00" in html, "the window starts at T0 in Asia/Shanghai"
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.slow
def test_the_report_prints_to_pdf(store: EventStore, clock: FakeClock, tmp_path: Path) -> None:
    if find_chromium() is None:
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    config = _site(tmp_path)
    _shift(store, clock)
    html = render_report_html(build_figures(store, config, T0, T0 + 86_400), config)

    pdf = html_to_pdf(html, tmp_path / "report.pdf")

    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


def test_the_page_declares_the_bundled_cjk_font_so_chinese_needs_no_system_font(
    store: EventStore, tmp_path: Path
) -> None:
    from noto_cjk_sans_otc import FONT_PATH

    html = render_report_html(build_figures(store, _site(tmp_path), T0, T0 + 3600), _site(tmp_path))

    assert f'url("{Path(str(FONT_PATH)).resolve().as_uri()}")' in html
    assert 'font-family: "Anjian Noto Sans CJK"' in html


@pytest.mark.slow
def test_the_pdf_embeds_noto_cjk_on_a_machine_without_cjk_fonts(
    store: EventStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if find_chromium() is None:
        pytest.skip("Debian chromium is not installed (apt install chromium)")
    latin_only = [
        d
        for d in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation")
        if Path(d).is_dir()
    ]
    fonts_conf = tmp_path / "fonts.conf"  # what `apt install chromium` alone brings: DejaVu, Liberation
    fonts_conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        + "".join(f"<dir>{d}</dir>" for d in latin_only)
        + f"<cachedir>{tmp_path / 'fontcache'}</cachedir></fontconfig>",
        encoding="utf-8",
    )
    monkeypatch.setenv("FONTCONFIG_FILE", str(fonts_conf))
    config = _site(tmp_path)
    _shift(store, clock)
    html = render_report_html(build_figures(store, config, T0, T0 + 4 * 3600), config)

    pdf = html_to_pdf(html, tmp_path / "report.pdf").read_bytes()

    fonts = set(re.findall(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z0-9-]+)", pdf))
    assert any(name.startswith(b"NotoSansCJK") for name in fonts), fonts


def _site_file(tmp_path: Path) -> Path:
    import yaml

    config = _site(tmp_path).model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def test_the_cli_writes_a_report_of_the_window_and_refuses_bad_input_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anjian.service.cli import app

    site = _site_file(tmp_path)
    runner = CliRunner()
    missing = runner.invoke(app, ["report", "--config", str(site), "--out", str(tmp_path / "r.html")])
    assert missing.exit_code == 2 and "no event database" in missing.output

    clock = FakeClock()
    store = EventStore.from_config(_site(tmp_path).storage, clock=clock)
    _shift(store, clock)
    store.close()
    done = runner.invoke(
        app,
        [
            "report",
            "--config",
            str(site),
            "--from",
            "2027-01-15T16:00",
            "--to",
            "2027-01-15T20:00",
            "--out",
            str(tmp_path / "r.html"),
        ],
    )
    bad = runner.invoke(app, ["report", "--config", str(site), "--from", "yesterday"])
    reversed_window = runner.invoke(
        app, ["report", "--config", str(site), "--from", "2027-01-15T20:00", "--to", "2027-01-15T16:00"]
    )

    assert done.exit_code == 0, done.output
    assert (
        "<svg" in (tmp_path / "r.html").read_text()
        and "5</b>告警 alerts" in (tmp_path / "r.html").read_text()
    )
    assert bad.exit_code == 2 and "'yesterday' is not an ISO 8601 time" in bad.output
    assert reversed_window.exit_code == 2 and "must end after it starts" in reversed_window.output


def test_the_cli_refuses_an_unwritable_out_path_and_a_window_over_a_year_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from anjian.service.cli import app

    site = _site_file(tmp_path)
    EventStore.from_config(_site(tmp_path).storage, clock=FakeClock()).close()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    runner = CliRunner()
    window = ["--from", "2027-01-15T16:00", "--to", "2027-01-15T20:00"]

    unwritable = runner.invoke(
        app, ["report", "--config", str(site), *window, "--out", str(a_file / "r.html")]
    )
    typo = runner.invoke(
        app,
        [
            "report",
            "--config",
            str(site),
            "--from",
            "0227-01-15",
            "--to",
            "2027-01-15",
            "--out",
            str(tmp_path / "r.html"),
        ],
    )

    assert unwritable.exit_code == 2 and "Traceback" not in unwritable.output
    assert f"cannot write the report to {a_file / 'r.html'}: File exists: {a_file}" in unwritable.output
    assert typo.exit_code == 2 and "657,437 days long; at most 366" in typo.output
    assert not (tmp_path / "r.html").exists()


def test_a_window_over_a_year_is_refused(store: EventStore, tmp_path: Path) -> None:
    build_figures(store, _site(tmp_path), T0, T0 + 366 * 86_400)  # a leap year: fine
    with pytest.raises(ValueError, match="367 days long; at most 366"):
        build_figures(store, _site(tmp_path), T0, T0 + 367 * 86_400)


def test_the_default_report_file_is_named_in_the_sites_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default name took this host's zone: on a UTC server (as here and in CI) a 16:00 Shanghai shift
    was report-...-0800."""
    from typer.testing import CliRunner

    from anjian.service.cli import app

    site = _site_file(tmp_path)
    EventStore.from_config(_site(tmp_path).storage, clock=FakeClock()).close()
    monkeypatch.chdir(tmp_path)

    done = CliRunner().invoke(
        app, ["report", "--config", str(site), "--from", "2027-01-15T16:00", "--to", "2027-01-15T20:00"]
    )

    assert done.exit_code == 0, done.output
    assert (tmp_path / "report-20270115-1600.html").is_file()
