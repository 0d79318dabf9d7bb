"""Schemathesis over the OpenAPI document the server itself serves: every operation,
with a real API key, on SQLite and on PostgreSQL (the ``server`` fixture runs each
test on both). No input may earn a 5xx, and every answer must be one the document
declares (status code, content type, body schema).

The examples are derandomized and bounded per operation, so a run is repeatable and
quick; a failure prints the request that caused it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server import ServerProcess

# Examples per operation and mode (valid and invalid inputs). Enough to reach every
# field of every body a few times; small enough for a busy CI machine.
EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The workspace stream never ends (it is meant to stay open), so a fuzzer's call to
# it would never return; its inputs are the job stream's, which is fuzzed.
SKIP = {"workspace_events"}
ADMIN_ONLY = {"retry_job"}

pytestmark = pytest.mark.timeout(240)


def _operations(server: ServerProcess) -> list[Any]:
    spec = httpx.get(server.url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    found = {op.definition.raw.get("operationId") for op in operations}
    assert {"create_job", "get_file", "redeliver_webhook"} <= found, found
    return [op for op in operations if op.definition.raw.get("operationId") not in SKIP]


def _fuzz(operation: Any, server: ServerProcess, key: str) -> list[str]:
    """Every distinct failure of ``operation`` (empty: it passed)."""
    failures: list[str] = []
    session = requests.Session()
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES * 2,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        try:
            case.call_and_validate(
                base_url=server.url,
                session=session,
                headers={"Authorization": f"Bearer {key}"},
                checks=CHECKS,
                timeout=30,
            )
        # A FailureGroup is a BaseExceptionGroup; collect them all, so that one run
        # shows every bug rather than the first.
        except (Exception, BaseExceptionGroup) as error:
            text = f"{case.method} {case.formatted_path}: {error}"
            if text not in failures:
                failures.append(text[:2000])

    run()
    return failures


def test_no_input_earns_a_5xx_or_an_undocumented_answer(
    server: ServerProcess, workspace_key: str
) -> None:
    failures: list[str] = []
    for operation in _operations(server):
        # Requeueing needs an admin key; with a member key every input stops at 403.
        admin = operation.definition.raw.get("operationId") in ADMIN_ONLY
        failures += _fuzz(operation, server, server.admin_key if admin else workspace_key)
    assert not failures, "\n\n".join(failures)
