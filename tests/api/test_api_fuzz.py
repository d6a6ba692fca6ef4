"""Property-based fuzzing from the OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.main import create_app
from api.settings import Settings

# The schema does not depend on the models; requests go to `fuzz_app` (real tiny models).
# (schemathesis.pytest.from_fixture does not work with pytest 9: Function has no _nodeid.)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(offline=True)))


@pytest.fixture
def fuzz_app(make_app) -> FastAPI:
    app = make_app()
    app.state.service.scan()  # what the lifespan does; schemathesis calls the app directly
    return app


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_causes_a_server_error(case, fuzz_app: FastAPI) -> None:
    case.call_and_validate(app=fuzz_app, checks=[not_a_server_error])
