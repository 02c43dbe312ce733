"""SubscriptionSpec: built from the site YAML, the API body or a channel, its filters kept as tuples of str."""

from __future__ import annotations

from anjian.pipeline.event import Behaviour
from anjian.service.config import WebhookConfig
from anjian.service.subscriptions import SubscriptionSpec

HOOK = "http://receiver.example/hook"


def test_a_spec_keeps_filter_lists_and_enums_as_tuples_of_str() -> None:
    spec = SubscriptionSpec(url=HOOK, kinds=["event.created"], behaviours=[Behaviour.SMOKING])  # type: ignore[arg-type]

    assert (spec.kinds, spec.behaviours) == (("event.created",), ("smoking",))
    assert type(spec.behaviours[0]) is str


def test_a_webhook_of_the_site_yaml_becomes_its_spec() -> None:
    webhook = WebhookConfig(
        url=HOOK,
        secret="a-secret-of-16-chars",  # type: ignore[arg-type]
        timeout_s=3.0,
        max_attempts=7,
        kinds=["event.created"],
        camera_ids=["cam-1"],
        behaviours=["open_flame"],
    )

    assert SubscriptionSpec.from_config(webhook) == SubscriptionSpec(
        url=HOOK,
        secret="a-secret-of-16-chars",
        description="from the site config",
        timeout_s=3.0,
        max_attempts=7,
        kinds=("event.created",),
        camera_ids=("cam-1",),
        behaviours=("open_flame",),
    )
