"""Requests generated from the served OpenAPI document (valid and invalid ones): none may cause a server error.

Drives schemathesis' strategies with plain hypothesis: its pytest plugin (`from_fixture`) does not work under
pytest 9 (AttributeError '_nodeid'), and the schema only exists once the server runs.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.servers import Server

EXAMPLES_PER_OPERATION = 25  # bounded: the suite must stay fast on 2 cores


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_server_error(server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert "POST /classify" in labels and "GET /model" in labels, labels
    failures: list[str] = []
    exercised: set[str] = set()

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:
            response = case.call(base_url=server.url, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.path} {case.body!r:.200} -> {response.status_code}: {response.text[:200]}"
                )

        try:
            check()
            exercised.add(operation.label)
        except Unsatisfiable:
            # Negative mode has nothing to break in an operation without parameters or body (GET /livez).
            assert mode is GenerationMode.NEGATIVE and operation.label.startswith("GET "), operation.label
    assert "POST /classify" in exercised
    assert not failures, "\n".join(failures[:10])
