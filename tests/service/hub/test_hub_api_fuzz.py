"""Property-based fuzzing of the hub's API from its OpenAPI document (Schemathesis): no request may get a 500.

The supervising office's API takes ids in paths, filters in queries and remarks in bodies from
browsers of many plants' supervisors; each operation is called with generated parameters and
bodies (valid and not) with a supervisor token of every plant, so the code behind authentication
is reached. A 5xx other than 500 passes only where the operation documents it (the clip endpoint's
503 and 504 while no plant can be asked): a documented refusal, not a crash.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from anjian.service.config import StorageConfig
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.config import HubConfig, PlantConfig
from anjian.service.hub.store import HubStore
from tests.factories import make_event
from tests.service.conftest import FakeClock
from tests.service.hub.conftest import PlantRecorder

pytestmark = pytest.mark.slow

# Schemathesis reads the schema when the module is collected, so the hub is built then; its folder goes
# when the run ends.
_FOLDER = Path(tempfile.mkdtemp(prefix="anjian-hub-fuzz-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
_CLOCK = FakeClock()
_CONFIG = HubConfig(
    storage=StorageConfig(dir=_FOLDER / "hub"),
    plants=[PlantConfig(id="dust-1", group="dust"), PlantConfig(id="cold-1", group="ammonia")],
)
_STORE = HubStore.from_config(_CONFIG.storage, clock=_CLOCK)
atexit.register(_STORE.close)
for _plant in _CONFIG.plants:
    _recorder = PlantRecorder(_plant.id, _FOLDER / f"{_plant.id}.db", _CLOCK)
    _STORE.apply([_recorder.raise_event(make_event(id=f"evt-{_plant.id}"))])
    _recorder.store.close()
_SUPERVISOR = _STORE.tokens.create("fuzzer", "supervisor", "all")[1]
_APP = create_hub_app(_CONFIG, _STORE, clock=_CLOCK)

schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {_SUPERVISOR}"})

    documented = {str(code) for code in case.operation.definition.raw.get("responses", {})}
    failure = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    assert response.status_code != 500, failure
    assert response.status_code < 500 or str(response.status_code) in documented, failure
