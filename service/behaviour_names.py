"""What each behaviour is called in Chinese and in English, for the messages and reports people read.

The one table of these names: the robots' cards, e-mails and the shift report read it here, and the
two dashboards (the control room's ``i18n.js`` and behaviour filter, the hub's ``hub.js``) read it
from ``behaviours.js``, a script the service makes from it (``anjian.service.api.dashboard``), so a
behaviour named here shows by its name everywhere; a code missing here (a newer plant's) is shown
as it is.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BEHAVIOUR_NAMES", "behaviour_names", "bilingual_behaviour"]

BEHAVIOUR_NAMES: Final[dict[str, tuple[str, str]]] = {
    "smoking": ("吸烟", "Smoking"),
    "open_flame": ("明火", "Open flame"),
    "blocked_exit": ("安全出口堵塞", "Blocked exit"),
    "fallen_person": ("人员倒地", "Fallen person"),
    "uncleaned_dust": ("粉尘未清理", "Uncleaned dust"),
    "absence_from_post": ("脱岗", "Absence from post"),
    "overcrowding": ("人员聚集", "Overcrowding"),
    "camera_fault": ("摄像头故障", "Camera fault"),
    "sensor_threshold": ("传感器超限", "Sensor threshold"),
    "sensor_rate_of_rise": ("传感器快速上升", "Sensor rate of rise"),
    "sensor_fault": ("传感器故障", "Sensor fault"),
}
"""Behaviour code to ``(Chinese, English)``."""


def behaviour_names(code: str) -> tuple[str, str]:
    """``(Chinese, English)`` of a behaviour code; the code itself twice when it has none."""
    return BEHAVIOUR_NAMES.get(code, (code, code))


def bilingual_behaviour(code: str) -> str:
    """``"明火 Open flame"``: both names, as the report and the cards show them."""
    chinese, english = behaviour_names(code)
    return chinese if chinese == english else f"{chinese} {english}"
