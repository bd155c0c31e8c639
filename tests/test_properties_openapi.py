"""schemathesis against the live OpenAPI document (GET /api/v1/openapi.json): every documented operation, with
generated valid and invalid inputs, answers no 5xx and only documented statuses, content types and bodies.
Example counts are bounded so the run stays well under a minute; `HYPOTHESIS_PROFILE=deep` runs more."""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_headers_conformance,
                                 response_schema_conformance, status_code_conformance)

from tests.test_properties import live  # noqa: F401 - the live server fixture

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES = 1000 if os.environ.get("HYPOTHESIS_PROFILE") == "deep" else 25


@pytest.fixture(scope="module")
def openapi_schema(live):  # noqa: F811
    return schemathesis.openapi.from_url(live.base + "/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("openapi_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much])
def test_live_api_conforms_to_its_openapi_document(case, live):  # noqa: F811
    """0 server errors and 0 mismatches with the document, for every operation it describes."""
    case.call_and_validate(base_url=live.base, checks=CHECKS)
