"""Event texts in English and Chinese: every key formats in both, the rules write the site's language."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from anjian.pipeline.config import OpenFlameConfig
from anjian.pipeline.messages import _TEXTS, text
from anjian.pipeline.rules.open_flame import OpenFlameRule
from tests.pipeline.rules.test_open_flame import CONTEXT, FIRE, NONE, _run

_VALUES = {
    "sensor": "nh3-1",
    "quantity": "ammonia",
    "value": 62.5,
    "unit": "ppm",
    "colour": "red",
    "limit": 50.0,
    "peak": 80.0,
    "low": 0.0,
    "high": 1000.0,
    "zone": "打磨工位",
    "count": 1,
    "need": 2,
    "seconds": 65.4,
    "share": 0.42,
    "where": "",
    "hits": 3,
    "frames": 5,
    "why": "x",
    "score": 0.71,
    "camera": "抛光线东侧",
    "state": "offline",
    "reason": "timeout",
    "what": "black",
    "mean": 3.2,
    "std": 0.4,
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("key", sorted(_TEXTS))
def test_every_text_formats_in_both_languages(key: str) -> None:
    english, chinese = text(key, "en", **_VALUES), text(key, "zh-CN", **_VALUES)

    assert english and not _CJK.search(english.replace("打磨工位", "").replace("抛光线东侧", ""))
    assert _CJK.search(chinese.replace("打磨工位", "").replace("抛光线东侧", "")), chinese


def test_a_language_anjian_does_not_have_falls_back_to_english() -> None:
    assert text("camera.frozen", "fr", camera="cam-1") == "Camera cam-1 image is frozen (no pixel change)"


def test_the_open_flame_rule_writes_the_sites_language() -> None:
    config = OpenFlameConfig(k=3, n=5, update_interval_s=100, clear_after_s=100)
    english = _run(OpenFlameRule(config, CONTEXT), [FIRE, NONE, FIRE, FIRE])[0][1].event.message
    chinese = _run(OpenFlameRule(config, replace(CONTEXT, language="zh-CN")), [FIRE, NONE, FIRE, FIRE])[0][1]

    assert english == "Open flame seen in 3 of the last 4 frames"
    assert chinese.event.message == "发现明火：最近 4 帧中有 3 帧"
