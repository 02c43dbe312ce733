"""The texts the pipeline writes into events, in English and Chinese (``site.language``).

An event's ``message`` reaches the control room, webhooks, robots and reports as written,
so a Chinese plant reads it in Chinese. Each text is one key with both languages side by
side; the rules and the camera-fault monitor ask for a key with its values.

Example:
    >>> text("flame.seen", "zh-CN", hits=3, frames=5, where="")
    '发现明火：最近 5 帧中有 3 帧'
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["LANGUAGES", "Language", "text"]

Language = Literal["en", "zh-CN"]
LANGUAGES: Final[tuple[Language, ...]] = ("en", "zh-CN")

_TEXTS: Final[dict[str, tuple[str, str]]] = {
    "where.zone": (" in zone {zone}", "（区域 {zone}）"),
    "absence.unstaffed": (
        "Post {zone} unstaffed: {count} of {need} required people for {seconds:.0f} s",
        "岗位 {zone} 脱岗：应在岗 {need} 人，实际 {count} 人，已 {seconds:.0f} 秒",
    ),
    "absence.staffed": (
        "Post {zone} staffed again after {seconds:.0f} s unstaffed",
        "岗位 {zone} 已恢复在岗（脱岗 {seconds:.0f} 秒）",
    ),
    "absence.crowded": (
        "Too many people in {zone}: {count} (limit {need}) for {seconds:.0f} s",
        "{zone} 人员超限：{count} 人（上限 {need} 人），已 {seconds:.0f} 秒",
    ),
    "exit.blocked": (
        "Exit {zone} blocked: {share:.0%} of the zone occupied for {seconds:.0f} s",
        "安全出口 {zone} 堵塞：占用 {share:.0%}，已 {seconds:.0f} 秒",
    ),
    "fallen.lying": (
        "Person lying on the floor{where} for {seconds:.0f} s",
        "有人倒地{where}，已 {seconds:.0f} 秒",
    ),
    "flame.seen": (
        "Open flame seen in {hits} of the last {frames} frames{where}",
        "发现明火：最近 {frames} 帧中有 {hits} 帧{where}",
    ),
    "smoking.seen": ("Person smoking{where}", "有人吸烟{where}"),
    "dust.detected": ("a dust detection", "检测到粉尘"),
    "dust.overdue": ("not cleaned in its cleaning window", "清扫时段内未清理"),
    "dust.dirty": (
        "Dust zone {zone} dirty ({why}): score {score:.2f}",
        "粉尘区域 {zone} 未清理（{why}）：评分 {score:.2f}",
    ),
    "camera.no_video": (
        "Camera {camera} delivers no video ({state}): {reason}",
        "摄像头 {camera} 无视频（{state}）：{reason}",
    ),
    "camera.black": ("black", "全黑"),
    "camera.covered": ("uniform (lens covered?)", "单一颜色（镜头被遮挡？）"),
    "camera.blank": (
        "Camera {camera} image is {what} (mean grey {mean:.0f}, std {std:.1f})",
        "摄像头 {camera} 画面{what}（平均灰度 {mean:.0f}，标准差 {std:.1f}）",
    ),
    "sensor.high": (
        "{sensor} {quantity} {value:g} {unit}: at or above the {colour} limit {limit:g} {unit} (peak {peak:g})",
        "{sensor} {quantity} {value:g} {unit}：达到{colour}阈值 {limit:g} {unit}（峰值 {peak:g}）",
    ),
    "sensor.low": (
        "{sensor} {quantity} {value:g} {unit}: at or below the {colour} limit {limit:g} {unit} (lowest {peak:g})",
        "{sensor} {quantity} {value:g} {unit}：低于{colour}阈值 {limit:g} {unit}（最低 {peak:g}）",
    ),
    "sensor.rate": (
        "{sensor} {quantity} rising {value:.3g} {unit}/min (limit {limit:g} {unit}/min)",
        "{sensor} {quantity} 上升过快：每分钟 {value:.3g} {unit}（限值 {limit:g} {unit}/分钟）",
    ),
    "sensor.stale": (
        "Sensor {sensor} sends no data: last reading {seconds:.0f} s ago",
        "传感器 {sensor} 无数据：已 {seconds:.0f} 秒未收到读数",
    ),
    "sensor.flatline": (
        "Sensor {sensor} stuck at {value:g} {unit} for {seconds:.0f} s",
        "传感器 {sensor} 读数停滞在 {value:g} {unit}，已 {seconds:.0f} 秒",
    ),
    "sensor.out_of_range": (
        "Sensor {sensor} reads {value:g} {unit}, outside its physical range {low} to {high}",
        "传感器 {sensor} 读数 {value:g} {unit} 超出量程 {low} 至 {high}",
    ),
    "colour.red": ("red", "红色"),
    "colour.orange": ("orange", "橙色"),
    "colour.yellow": ("yellow", "黄色"),
    "colour.blue": ("blue", "蓝色"),
    "camera.frozen": (
        "Camera {camera} image is frozen (no pixel change)",
        "摄像头 {camera} 画面冻结（像素无变化）",
    ),
    "camera.not_analysed": (
        "Camera {camera} delivers video but is not analysed: the detector fails ({reason})",
        "摄像头 {camera} 有视频但未被分析：检测模型运行失败（{reason}）",
    ),
}


def text(key: str, language: str, **values: object) -> str:
    """The text ``key`` in ``language`` (English for a language anjian does not have), filled with ``values``.

    Raises:
        KeyError: No text has this key (a programming error, caught by the tests).
    """
    english, chinese = _TEXTS[key]
    template = chinese if language == "zh-CN" else english
    return template.format(**values)
