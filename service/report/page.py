"""A shift or daily report as one self-contained HTML page (inline CSS and SVG charts), in Chinese and English.

The page needs nothing from the network, so it opens from a file, prints to PDF
(:mod:`anjian.service.report.pdf`) and can be mailed as it is. Times are in the site's
time zone; names come from the site YAML where it gives them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from anjian.service.behaviour_names import bilingual_behaviour
from anjian.service.config import AnjianConfig
from anjian.service.report.charts import hbar_chart, vbar_chart
from anjian.service.report.figures import Percentiles, ReportFigures
from anjian.service.report.fonts import FONT_STACK, cjk_font_face_css

__all__ = ["render_report_html"]

_COLOURS = {
    "red": ("红色 red", "#d32f2f"),
    "orange": ("橙色 orange", "#ef6c00"),
    "yellow": ("黄色 yellow", "#f9a825"),
    "blue": ("蓝色 blue", "#1565c0"),
}
_STATES = {
    "raised": "待确认 raised",
    "acknowledged": "已确认 acknowledged",
    "dispatched": "已派单 dispatched",
}
_REASONS = {
    "reflection": "反光或灯光 reflection",
    "person misread": "误识别 misread",
    "camera fault": "摄像头故障 camera fault",
    "test": "测试 test",
    "other": "其他 other",
}

_STYLE = """
body { font-family: FONT_STACK; color: #222; margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 22px 0 6px; border-bottom: 1px solid #ccc; }
.muted { color: #666; font-size: 12px; } table { border-collapse: collapse; font-size: 12px; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; } th { color: #555; font-weight: normal; }
.tiles { display: flex; gap: 12px; flex-wrap: wrap; } .tile { border: 1px solid #ccc; border-radius: 4px; padding: 6px 12px; }
.tile b { display: block; font-size: 20px; } .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 24px; }
@media print { body { margin: 0; } h2 { break-after: avoid; } svg, table { break-inside: avoid; } }
""".replace("FONT_STACK", FONT_STACK)


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


def _timing_row(name: str, figures: Percentiles, has_sla: bool) -> str:
    within = f"<td>{_share(figures.within_sla)}</td>" if has_sla else "<td>–</td>"
    return (
        f"<tr><td>{escape(name)}</td><td>{figures.count}</td><td>{_minutes(figures.p50_s)}</td>"
        f"<td>{_minutes(figures.p90_s)}</td>{within}</tr>"
    )


def render_report_html(figures: ReportFigures, config: AnjianConfig, *, title: str = "") -> str:
    """The report page for ``figures`` of ``config``'s site.

    Args:
        figures: From :func:`anjian.service.report.figures.build_figures`.
        config: The site (names, time zone, SLA).
        title: Heading; by default "安全监控报告 Safety report" with the site's name.
    """
    zone = ZoneInfo(config.site.timezone)

    def local(epoch: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return datetime.fromtimestamp(epoch, UTC).astimezone(zone).strftime(fmt)

    cameras = {camera.id: camera.name or camera.id for _, camera in config.cameras()}
    workshops = {workshop.id: workshop.name or workshop.id for workshop in config.site.workshops}
    site_name = config.site.name or config.site.id
    heading = title or f"安全监控报告 Safety report · {site_name}"
    hour_labels = [local(figures.since + 3600 * i, "%H:%M") for i in range(len(figures.by_hour))]
    colour_rows = [(_COLOURS[c][0], float(n)) for c, n in figures.by_colour.items()]
    colour_fill = [_COLOURS[c][1] for c in figures.by_colour]
    fa_behaviour = [
        (bilingual_behaviour(b), round(100.0 * fa / n, 1))
        for b, (fa, n) in figures.false_alarms_by_behaviour.items()
    ]
    fa_camera = [
        (cameras.get(c, c), round(100.0 * fa / n, 1)) for c, (fa, n) in figures.false_alarms_by_camera.items()
    ]
    open_rows = "".join(
        f"<tr><td>{escape(_COLOURS[e.severity.value][0])}</td><td>{escape(bilingual_behaviour(e.behaviour.value))}</td>"
        f"<td>{escape(workshops.get(e.workshop_id, e.workshop_id))} · {escape(cameras.get(e.camera_id, e.camera_id))}</td>"
        f"<td>{escape(_STATES.get(e.state.value, e.state.value))}</td><td>{local(e.started_at)}</td>"
        f"<td>{escape(e.assignee or '')}</td></tr>"
        for e in figures.open_at_handover
    )
    uptime_rows = [
        (cameras.get(u.camera_id, u.camera_id), round(100.0 * u.uptime, 1)) for u in figures.uptime
    ]
    tiles = [
        ("告警 alerts", str(figures.total)),
        ("未关闭 open at hand-over", str(len(figures.open_at_handover))),
        ("升级 escalated", str(figures.escalated)),
        ("确认 p50 acknowledge", _minutes(figures.acknowledge.p50_s)),
        ("确认及时率 within SLA", _share(figures.acknowledge.within_sla)),
    ]
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(heading)}</title><style>{cjk_font_face_css()}{_STYLE}</style></head>
<body>
<h1>{escape(heading)}</h1>
<p class="muted">{local(figures.since)} – {local(figures.until)} ({escape(config.site.timezone)}) ·
生成 generated {local(datetime.now(UTC).timestamp())}</p>
<div class="tiles">{"".join(f'<div class="tile"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in tiles)}</div>

<h2>每小时告警 Alerts per hour</h2>
{vbar_chart(figures.by_hour, hour_labels)}

<div class="grid">
<div><h2>按行为 By behaviour</h2>
{hbar_chart([(bilingual_behaviour(b), float(n)) for b, n in figures.by_behaviour.items()])}</div>
<div><h2>按等级 By colour (as detected)</h2>{hbar_chart(colour_rows, colours=colour_fill)}</div>
<div><h2>按摄像头 By camera</h2>
{hbar_chart([(cameras.get(c, c), float(n)) for c, n in figures.by_camera.items()])}</div>
<div><h2>摄像头在线率 Camera uptime</h2>{hbar_chart(uptime_rows, unit=" %")}</div>
</div>

<h2>响应时间 Response times (from the alert reaching the control room)</h2>
<table><tr><th></th><th>次数 n</th><th>中位 p50</th><th>p90</th><th>SLA 内 within SLA</th></tr>
{_timing_row("确认 Acknowledge", figures.acknowledge, True)}
{_timing_row("处置或判误报 Settle (resolve or false alarm)", figures.settle, False)}
</table>
<p class="muted">SLA: red {config.sla.red_s / 60:g} min, orange {config.sla.orange_s / 60:g} min,
yellow {config.sla.yellow_s / 60:g} min, blue {config.sla.blue_s / 60:g} min to acknowledge.</p>

<div class="grid">
<div><h2>误报率（按行为） False alarms by behaviour</h2>{hbar_chart(fa_behaviour, unit=" %")}</div>
<div><h2>误报率（按摄像头） False alarms by camera</h2>{hbar_chart(fa_camera, unit=" %")}</div>
<div><h2>误报原因 False-alarm reasons</h2>
{hbar_chart([(_REASONS.get(r, r), float(n)) for r, n in figures.false_alarm_reasons.items()])}</div>
</div>

<h2>交班时未关闭 Open at hand-over ({len(figures.open_at_handover)})</h2>
<table><tr><th>等级 colour</th><th>行为 behaviour</th><th>地点 place</th><th>状态 state</th><th>开始 started</th>
<th>处置人 assignee</th></tr>{open_rows or '<tr><td colspan="6">无 none</td></tr>'}</table>
</body></html>
"""
