"""Property-based fuzzing of the whole API from its OpenAPI document (Schemathesis): no request may get a 5xx.

Every operation is called with generated parameters and bodies (valid and not),
with an admin token, so the code behind authentication is reached too. The
example count per operation is bounded to keep the run near a minute on 2 cores.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from anjian.service.app import create_app
from anjian.service.composition import build_service_parts
from anjian.service.webhooks import WebhookDispatcher
from tests.factories import make_event
from tests.service.conftest import make_config

pytestmark = pytest.mark.slow

# Schemathesis reads the schema when the module is collected, so the service is built then; its folder goes
# when the run ends (collected but deselected too: it was left in /tmp by every run).
_FOLDER = Path(tempfile.mkdtemp(prefix="anjian-fuzz-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
_CONFIG = make_config(_FOLDER / "data")
# Parts passed in are not started and stopped by the app's lifespan, which Schemathesis runs per call.
_PARTS = build_service_parts(
    _CONFIG, make_dispatcher=lambda store, metrics: WebhookDispatcher(store, workers=1, metrics=metrics)
)
_STORE = _PARTS.store
_PARTS.dispatcher.start()  # so /readyz may answer 200
_APP = create_app(_CONFIG, _PARTS)
_STORE.upsert_event(make_event(id="evt-1"))
_ADMIN = _STORE.tokens.create("fuzzer", "admin")[1]


@pytest.fixture(scope="module", autouse=True)
def _stop_the_service() -> Iterator[None]:
    """Stops the dispatcher and closes the store after the module's tests."""
    yield
    _PARTS.close()


schema = schemathesis.openapi.from_asgi("/openapi.json", _APP).exclude(
    path="/stream"
)  # the live feed never ends


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {_ADMIN}"})

    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    )
