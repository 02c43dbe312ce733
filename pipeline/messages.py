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
    "camera.frozen": (
        "Camera {camera} image is frozen (no pixel change)",
        "摄像头 {camera} 画面冻结（像素无变化）",
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
