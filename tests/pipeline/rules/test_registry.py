"""The rule registry: every behaviour is one spec, and a new one is one module.

The toy ``head_count`` behaviour below (a head-count limit per room, raising overcrowding)
is defined here and nowhere else: a registry with its spec parses its YAML section and its
zone kind, checks the zones it names, and builds and runs its rule.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import Field, ValidationError

from anjian.cameras.frame import Frame
from anjian.models.detections import Detections
from anjian.pipeline.camera_config import (
    BehavioursConfig,
    CameraPipelineConfig,
    ZoneConfig,
    camera_config_model,
)
from anjian.pipeline.config import RuleConfig
from anjian.pipeline.event import Behaviour, RiskLevel
from anjian.pipeline.incidents import EventContext, IncidentUpdate
from anjian.pipeline.rules import REGISTRY, BehaviourRegistry, BehaviourSpec, build_rules
from anjian.pipeline.rules.base import BaseRule, RuleEnvironment, boxes_of, select
from anjian.pipeline.rules.open_flame import OpenFlameRule
from anjian.pipeline.rules.registry import classes_not_detected
from tests.pipeline.scripted import CONTEXT, dets, kinds, run


class HeadCountConfig(RuleConfig):
    """Head-count limit: more than ``max_people`` in a room zone."""

    severity: RiskLevel = Field(RiskLevel.ORANGE, description="Risk colour of the event.")
    max_people: int = Field(..., ge=0, le=10_000, description="More people than this in a room raises.")
    person_classes: list[str] = Field(["person"], min_length=1, description="Classes counted as people.")
    rooms: list[str] = Field(
        default_factory=list, description="Room zones to count; empty: every 'room' zone."
    )

    def named_zones(self) -> list[tuple[str, list[str], str]]:
        """The room zones counted."""
        return [("rooms", self.rooms, "room")]


class HeadCountRule(BaseRule):
    """Raises ``overcrowding`` per room while more than ``max_people`` stand in it."""

    behaviour = Behaviour.OVERCROWDING

    def __init__(self, config: HeadCountConfig, env: RuleEnvironment | EventContext) -> None:
        super().__init__(config, env)
        self.config: HeadCountConfig = config
        self._rooms = self.env.zones.of_kind("room", config.rooms)

    def process(self, frame: Frame, detections: Detections) -> list[IncidentUpdate]:
        """Count the people standing in each room."""
        cfg, wh = self.config, frame.resolution_wh
        people = select(detections, cfg.person_classes, self.floors(cfg.person_classes))
        points = self.env.zones.anchors_norm(people.xyxy, people.names(), wh)
        updates = []
        for room in self._rooms:
            inside = room.contains(points)
            count = int(inside.sum())
            over = count > cfg.max_people
            update = self.book.observe(
                room.id,
                now=frame.captured_at,
                is_confirmed=over,
                is_present=over,
                confidence=float(people.confidence[inside].max()) if over else 0.0,
                boxes=boxes_of(people.filter(inside), wh) if over else (),
                zone_id=room.id,
                message=f"{count} people in {room.id} (limit {cfg.max_people})",
            )
            if update is not None:
                updates.append(update)
        return updates


HEAD_COUNT = BehaviourSpec(
    key="head_count",
    config=HeadCountConfig,
    rule=HeadCountRule,
    description="More people in a room than its limit.",
    raises=(Behaviour.OVERCROWDING,),
    zone_kinds=("room",),
)

WITH_HEAD_COUNT = REGISTRY.with_spec(HEAD_COUNT)
CAMERA_YAML = """
id: cam
url: x.mp4
zones:
  - {id: canteen, kind: room, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
  - {id: corridor, polygon: [[0, 0], [0.1, 0], [0.1, 0.1]]}
behaviours:
  open_flame: {k: 2, n: 3}
  head_count: {max_people: 2, rooms: [canteen]}
"""
PERSON = ("person", (10, 10, 30, 90))


def _camera(**changes: Any) -> dict[str, Any]:
    camera: dict[str, Any] = yaml.safe_load(CAMERA_YAML)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = camera
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    return camera


def test_a_new_behaviour_parses_from_yaml_and_builds_its_rule_after_the_shipped_ones() -> None:
    camera = camera_config_model(WITH_HEAD_COUNT).model_validate(_camera())
    head_count = camera.behaviours.head_count
    assert isinstance(head_count, HeadCountConfig) and head_count.max_people == 2
    assert camera.zones[0].kind == "room"
    rules = build_rules(camera, CONTEXT)
    assert [type(rule) for rule in rules] == [OpenFlameRule, HeadCountRule]
    updates = run(rules[1], [dets(PERSON, PERSON)] * 2 + [dets(PERSON, PERSON, PERSON)] * 2)
    assert kinds(updates) == [(2, "opened")]
    event = updates[0][1].event
    assert event.behaviour is Behaviour.OVERCROWDING and event.zone_id == "canteen"
    assert event.message == "3 people in canteen (limit 2)"


def test_a_disabled_new_behaviour_builds_no_rule() -> None:
    camera = camera_config_model(WITH_HEAD_COUNT).model_validate(
        _camera(behaviours__head_count={"max_people": 2, "enabled": False})
    )
    assert [type(rule) for rule in build_rules(camera, CONTEXT)] == [OpenFlameRule]


@pytest.mark.parametrize(
    ("changes", "loc", "message"),
    [
        (
            {"behaviours__head_count": {"max_people": 2, "max_peple": 3}},
            ("behaviours", "head_count", "max_peple"),
            "Extra inputs",
        ),
        (
            {"behaviours__head_count": {"max_people": -1}},
            ("behaviours", "head_count", "max_people"),
            "greater than or equal to 0",
        ),
        (
            {"behaviours__head_count": {"max_people": 2, "rooms": ["corridor"]}},
            (),
            "behaviours.head_count.rooms: zone 'corridor' is of kind 'generic', expected 'room'",
        ),
        (
            {"behaviours__head_count": {"max_people": 2, "rooms": ["lobby"]}},
            (),
            "behaviours.head_count.rooms: no zone 'lobby' on camera 'cam'",
        ),
        ({"zones__0__kind": "rooom"}, ("zones", 0, "kind"), "'dust', 'post', 'room' or 'exclusion'"),
    ],
    ids=["typo-in-its-key", "out-of-bounds", "zone-of-another-kind", "unknown-zone", "typo-in-zone-kind"],
)
def test_a_new_behaviours_config_errors_name_the_field(
    changes: dict[str, Any], loc: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        camera_config_model(WITH_HEAD_COUNT).model_validate(_camera(**changes))
    (error,) = info.value.errors()
    assert error["loc"] == loc and message in error["msg"]


def test_the_shipped_registry_does_not_know_the_new_behaviour_or_its_zone_kind() -> None:
    with pytest.raises(ValidationError) as info:
        CameraPipelineConfig.model_validate(_camera())
    locs = {error["loc"]: error["type"] for error in info.value.errors()}
    assert locs == {("zones", 0, "kind"): "literal_error", ("behaviours", "head_count"): "extra_forbidden"}


def test_the_new_behaviour_appears_in_the_json_schema() -> None:
    assert camera_config_model(REGISTRY) is CameraPipelineConfig
    assert camera_config_model(REGISTRY.with_spec(HEAD_COUNT)) is camera_config_model(WITH_HEAD_COUNT)
    schema = camera_config_model(WITH_HEAD_COUNT).model_json_schema()
    behaviours = schema["$defs"]["BehavioursConfig"]
    assert behaviours["additionalProperties"] is False
    assert list(behaviours["properties"]) == [*BehavioursConfig.model_fields, "head_count"]
    head_count = behaviours["properties"]["head_count"]
    assert head_count["description"] == "More people in a room than its limit."
    assert head_count["anyOf"] == [{"$ref": "#/$defs/HeadCountConfig"}, {"type": "null"}]
    assert "room" in schema["$defs"]["ZoneConfig"]["properties"]["kind"]["enum"]


def test_every_wire_behaviour_but_camera_faults_is_raised_by_a_registered_rule() -> None:
    raised = [behaviour for spec in REGISTRY.specs for behaviour in spec.raises]
    cameras_and_sensors = {Behaviour.CAMERA_FAULT} | {b for b in Behaviour if b.is_sensor}
    assert sorted(raised) == sorted(set(Behaviour) - cameras_and_sensors)
    for spec in REGISTRY.specs:
        assert spec.key == spec.raises[0].value
        assert isinstance(spec.rule, type) and issubclass(spec.rule, BaseRule)
        assert spec.rule.behaviour is spec.raises[0]


def test_the_site_yaml_keeps_its_behaviour_sections_zone_kinds_and_exclusions() -> None:
    shipped = ("open_flame", "smoking", "fallen_person", "blocked_exit", "uncleaned_dust")
    shipped += ("absence_from_post",)
    assert tuple(BehavioursConfig.model_fields) == shipped
    kinds_ = ZoneConfig.model_json_schema()["properties"]["kind"]
    assert kinds_["default"] == "generic"
    assert sorted(kinds_["enum"]) == sorted(["generic", "post", "exit", "dust", "no_smoking", "exclusion"])
    excludes = ZoneConfig.model_json_schema()["properties"]["excludes"]["items"]["enum"]
    assert excludes == [*shipped, "overcrowding"]
    with pytest.raises(ValidationError, match=r"behaviours\.open_flam\n\s+Extra inputs are not permitted"):
        CameraPipelineConfig.model_validate({"id": "c", "url": "x.mp4", "behaviours": {"open_flam": {}}})


def test_a_registry_refuses_two_behaviours_under_one_key() -> None:
    with pytest.raises(ValueError, match="behaviour keys must be unique"):
        BehaviourRegistry((*REGISTRY.specs, REGISTRY.specs[0]))
    with pytest.raises(ValueError, match="lower-case identifier"):
        BehaviourSpec(
            key="Head count",
            config=HeadCountConfig,
            rule=HeadCountRule,
            description="",
            raises=(Behaviour.OVERCROWDING,),
        )


@pytest.mark.parametrize("spec", REGISTRY.specs, ids=lambda spec: spec.key)
def test_every_rule_bounds_its_timing_fields_alike(spec: BehaviourSpec[Any]) -> None:
    """Each rule's clear-after and re-publish intervals take the shared field types: over 0, up to a day."""
    properties = spec.config.model_json_schema()["properties"]
    for field in ("clear_after_s", "update_interval_s"):
        assert (properties[field]["exclusiveMinimum"], properties[field]["maximum"]) == (0, 86_400), field


def test_the_classes_enabled_rules_name_that_a_model_does_not_detect_are_listed_per_rule_and_class() -> None:
    """A model without 'fire' leaves open_flame blind: nothing said so (a retrain that renamed the class)."""
    fire_and_smoke = CameraPipelineConfig.model_validate(
        {"id": "cam-1", "url": "rtsp://h/1", "behaviours": {"open_flame": {"classes": ["fire", "smoke"]}}}
    )
    fire_off = CameraPipelineConfig.model_validate(
        {"id": "cam-2", "url": "rtsp://h/2", "behaviours": {"open_flame": {"enabled": False}}}
    )
    smoking = CameraPipelineConfig.model_validate(
        {"id": "cam-3", "url": "rtsp://h/3", "behaviours": {"smoking": {}, "open_flame": {}}}
    )

    missing = classes_not_detected([fire_and_smoke, fire_off, smoking], ["flame", "smoke", "person"])

    assert missing == {("open_flame", "fire"): ["cam-1", "cam-3"], ("smoking", "cigarette"): ["cam-3"]}
    assert classes_not_detected([fire_and_smoke, smoking], ["fire", "smoke", "person", "cigarette"]) == {}
