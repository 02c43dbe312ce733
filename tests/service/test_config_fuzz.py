"""Any site or hub YAML, however mangled, loads or is refused with a ``ConfigError``, never another exception.

A config is written by hand; whatever is wrong in it must be named (file, field, what was
expected) and the command must not end in a traceback. Hypothesis mangles a full site (a workshop
with cameras, zones and behaviours, sensors of both kinds with their connections, a webhook, every
other section with its defaults written out) and a full hub (plants in groups with leaf passwords,
every section written out): values replaced by any YAML value, fields dropped, fields added, the
text cut short. It found a ``workshops:`` or ``cameras:`` that is not a list, and lists nested
hundreds deep, ending in a ``TypeError`` and a ``RecursionError``: ``test_config.py`` keeps both.
"""

from __future__ import annotations

import copy
import enum
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from anjian.service.config import AnjianConfig, load_config
from anjian.service.errors import ConfigError
from anjian.service.hub.config import HubConfig, load_hub_config
from tests.service.test_sensor_config import SITE
from tests.support.mutation import any_value, mangled

_FOLDER = Path(tempfile.mkdtemp(prefix="anjian-config-fuzz-"))


def _plain(value: Any) -> Any:
    """A validated config's dump as YAML can hold it: secrets revealed, paths and enums as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _full_site() -> dict[str, Any]:
    """The sensors test's site with a zone, a webhook, robots and e-mail, two nodes on a bus and the storage
    folder, every default written out."""
    site = copy.deepcopy(SITE)
    camera = site["site"]["workshops"][0]["cameras"][0]
    camera["zones"] = [{"id": "exit-1", "kind": "exit", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    site["webhooks"] = [
        {"url": "https://hooks.example.com/anjian", "secret": "whsec_c2VjcmV0c2VjcmV0c2VjcmV0"}
    ]
    site["storage"] = {"dir": str(_FOLDER / "data")}
    site["site"]["workshops"][0]["cameras"].append({"id": "cam-2", "url": "rtsp://u:p@10.0.0.6/stream1"})
    site["channels"] = {
        "public_url": "https://anjian.plant.example.cn",
        "robots": [
            {
                "name": "leaders",
                "kind": "dingtalk",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=abc123",
                "secret": "SECabcdefabcdef",
                "colours": ["red", "orange"],
                "workshop_ids": ["freezing-1"],
            },
            {
                "name": "duty",
                "kind": "feishu",
                "url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc",
                "kinds": ["event.created", "event.resolved"],
            },
        ],
        "email": [
            {
                "name": "office",
                "host": "smtp.example.cn",
                "port": 587,
                "security": "starttls",
                "username": "anjian",
                "password": "mail-pass",
                "sender": "anjian@example.cn",
                "to": ["duty@example.cn"],
            }
        ],
    }
    site["bus"] = {"url": "nats://10.0.0.2:4222"}
    site["nodes"] = {
        "members": [{"name": "line-a", "cameras": ["cam-1"]}, {"name": "line-b", "cameras": ["cam-2"]}]
    }
    document = _plain(AnjianConfig.model_validate(site).model_dump(mode="python"))
    AnjianConfig.model_validate(document)  # the dump reads back as it is
    return dict(document)


def _full_hub() -> dict[str, Any]:
    """A hub of three plants in two groups with leaf passwords, every default written out."""
    plants = [
        {"id": plant_id, "group": group, "leaf_password": f"{plant_id}-leaf-password-0123"}
        for plant_id, group in (("dust-1", "dust"), ("dust-2", "dust"), ("cold-1", "ammonia"))
    ]
    hub = {"plants": plants, "storage": {"dir": str(_FOLDER / "hub")}}
    document = _plain(HubConfig.model_validate(hub).model_dump(mode="python"))
    HubConfig.model_validate(document)
    return dict(document)


_FULL_SITE = _full_site()
_FULL_HUB = _full_hub()
_EDGES: st.SearchStrategy[Any] = st.sampled_from(
    [-1, 0, 1e308, 2**64, "", "x" * 300, "rtsp://", [], {}, None, True, "..", "/"]
)
"""Values at a field's limits, and shapes where a field wants another (a list, a mapping, nothing)."""


@st.composite
def _mangled_yaml(draw: st.DrawFn, full: dict[str, Any]) -> str:
    """``full`` mangled, as YAML, now and then cut short (a cut text rarely gets past the YAML parser)."""
    text = str(yaml.safe_dump(draw(mangled(full, any_value(_EDGES))), allow_unicode=True))
    is_cut_short = draw(st.sampled_from([False] * 5 + [True]))
    return text[: draw(st.integers(0, len(text)))] if is_cut_short else text


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _loads_or_is_refused_by_name(load: Callable[[Path], object], text: str) -> None:
    path = _FOLDER / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load(path)
    except ConfigError as error:
        assert str(error).startswith(str(path))  # names the file, then what is wrong


@_SETTINGS
@given(text=_mangled_yaml(_FULL_SITE))
def test_a_mangled_site_config_loads_or_is_refused_by_name(text: str) -> None:
    _loads_or_is_refused_by_name(load_config, text)


@_SETTINGS
@given(text=_mangled_yaml(_FULL_HUB))
def test_a_mangled_hub_config_loads_or_is_refused_by_name(text: str) -> None:
    _loads_or_is_refused_by_name(load_hub_config, text)
