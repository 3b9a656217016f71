"""The served OpenAPI document is true: schemathesis, with every check it has, finds no failure against a real
`bentoml serve`.

Runs the schemathesis CLI (`--checks all`: status codes, content types, response schemas and headers, negative
data rejected, positive data accepted, unsupported methods, ...) over all its phases (examples, coverage, fuzzing),
so it checks exactly what a user running it by hand would. Its pytest plugin does not work under pytest 9
(AttributeError '_nodeid'), and the schema only exists once the server runs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.servers import VENV_BIN, start_server

EXAMPLES_PER_OPERATION = 30  # bounded: each run stays around ten seconds on 2 cores


@pytest.mark.parametrize("env", [{}, {"TEXTCLF_API_TOKEN": "s3cret"}], ids=["open", "token"])
def test_schemathesis_finds_no_failure(bundle: Path, tmp_path: Path, env: dict[str, str]) -> None:
    # Default limits, as `make serve` runs it: every body the schema allows (32 texts of 2000 characters, even
    # \u-escaped) fits in the default TEXTCLF_MAX_BODY_BYTES, so a 413 never meets a schema-valid body.
    # With a token and none sent, every answer must be the documented 401.
    server = start_server(bundle, tmp_path / "serve.log", env=env)
    try:
        run = subprocess.run(
            [str(VENV_BIN / "schemathesis"), "run", f"{server.url}/docs.json", "--checks", "all",
             "--max-examples", str(EXAMPLES_PER_OPERATION), "--workers", "1", "--generation-database", "none",
             "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )
    finally:
        server.stop()
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-8000:]
    # Every operation exercised, every case passed (with a token and none sent it warns that all were 401s).
    total, tested = re.search(r"Selected: \d+/(\d+)", output), re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated, (\d+) passed\n", output)
    assert total and tested and tested.group(1) == total.group(1), output[-8000:]
    assert cases and cases.group(1) == cases.group(2), output[-8000:]
    assert "Traceback" not in server.log()
