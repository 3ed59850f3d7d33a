"""The OpenAPI document says what the server does: schemathesis generates requests from
/openapi.json (valid and invalid ones) for every operation and runs all its checks — no 5xx,
documented status codes, content types, headers and response bodies, valid data accepted,
invalid data refused. Bounded: a fixed number of derandomised examples per operation (about a
minute on two CPU cores)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.chat.support import sign_up

pytestmark = [pytest.mark.slow]
EXAMPLES = 15
# Where the schema cannot say which values will be accepted, "schema-valid data is accepted"
# (ST202) is not asked; every other check still runs there. A password must be the right one, a
# cursor or resume position one the server issued, an upload a real image, a completion a user
# message with content, an email address one that email-validator takes (no reserved domains).
STATEFUL = {
    "POST /api/v1/auth/signup",
    "DELETE /api/v1/users/me", "POST /api/v1/users/me/password", "GET /api/v1/conversations",
    "GET /api/v1/conversations/{conversation_id}/messages", "GET /api/v1/messages/{message_id}/events",
    "POST /api/v1/images", "POST /v1/chat/completions",
}


def _check(operation: Any, base: str, headers: dict[str, str]) -> None:
    excluded = [positive_data_acceptance] if operation.label in STATEFUL else []

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base, headers=headers, timeout=60, excluded_checks=excluded)

    check()


def test_the_api_does_what_its_schema_says(worker_urls: list[str]) -> None:
    base = worker_urls[0]
    account = sign_up(base)
    created = account.client.post("/api/v1/tokens", json={"name": "schemathesis"})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation raises here, failing the test
        try:
            _check(operation, base, headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # every operation's failures, together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
