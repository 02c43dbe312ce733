"""Every behaviour has a Chinese and an English name for the cards, e-mails and reports."""

from __future__ import annotations

from anjian.pipeline.event import Behaviour
from anjian.service.behaviour_names import BEHAVIOUR_NAMES, bilingual_behaviour


def test_every_behaviour_anjian_raises_has_both_names() -> None:
    """The report had no name for overcrowding and printed its code."""
    missing = [b.value for b in Behaviour if b.value not in BEHAVIOUR_NAMES]
    assert missing == []
    assert bilingual_behaviour("overcrowding") == "人员聚集 Overcrowding"


def test_a_code_without_a_name_is_shown_as_it_is() -> None:
    assert bilingual_behaviour("forklift_speeding") == "forklift_speeding"
