"""The REST API over a real `bentoml serve` process: predictions, batching, validation, operations."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from serving.errors import ErrorMessage
from tests.servers import Server, classify

TEXTS = ["这本书很好看", "质量太差了", "", "The book is great 👍", "שלום עולם \u202e", "a\u0000b"]


def test_predictions_equal_the_in_process_predictor(client: httpx.Client, predictor) -> None:
    got = classify(client, TEXTS)
    expected = predictor.predict_with_ids(TEXTS)[0]
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g["score"] == pytest.approx(e["score"], abs=1e-6)
        assert list(g["scores"]) == list(e["scores"])  # label order is the model's
        assert g["scores"] == pytest.approx(e["scores"], abs=1e-6)


def test_readme_example(client: httpx.Client, predictor) -> None:
    response = client.post(
        "/classify",
        content='{"texts": ["这本书很好看", "质量太差了"]}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert [r["label"] for r in response.json()] == [
        r["label"] for r in predictor.predict_with_ids(["这本书很好看", "质量太差了"])[0]
    ]


def test_concurrent_requests_are_batched_and_answered_in_order(server: Server, predictor) -> None:
    # Distinct text lists per request, so a mix-up between requests or within one would show.
    pool = [f"{w}{i}" for i in range(40) for w in ("好看", "太差", "一般", "great", "bad")]
    requests = [pool[i : i + 1 + i % 5] for i in range(0, 150)]
    expected = [predictor.predict_with_ids(texts)[0] for texts in requests]

    async def fire() -> list[list[dict]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            before = batch_counts(await http.get("/metrics"))
            responses = await asyncio.gather(*(http.post("/classify", json={"texts": t}) for t in requests))
            after = batch_counts(await http.get("/metrics"))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        batches, texts = after[0] - before[0], after[1] - before[1]
        assert texts == sum(len(t) for t in requests)
        assert batches < len(requests), f"{len(requests)} concurrent requests ran in {batches} batches"
        return [r.json() for r in responses]

    results = asyncio.run(fire())
    for got, want in zip(results, expected, strict=True):
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-6)


def batch_counts(metrics: httpx.Response) -> tuple[float, float]:
    """(batches, texts in them) the adaptive batcher has run so far."""
    count = re.search(r"^textclf_batch_texts_count (\S+)$", metrics.text, re.M)
    total = re.search(r"^textclf_batch_texts_sum (\S+)$", metrics.text, re.M)
    return (float(count.group(1)) if count else 0.0, float(total.group(1)) if total else 0.0)


LONG = "长" * 2001
BAD_INPUTS = [
    # (what, body bytes, headers, status, text the error message must contain)
    ("empty list", b'{"texts": []}', {}, 400, "texts"),
    ("non-string item", b'{"texts": ["ok", 3]}', {}, 400, "texts[1]"),
    ("object item", b'{"texts": [{"a": 1}]}', {}, 400, "texts[0]"),
    ("null texts", b'{"texts": null}', {}, 400, "texts"),
    ("null body", b"null", {}, 400, "body"),
    ("string instead of list", b'{"texts": "abc"}', {}, 400, "texts"),
    ("missing field", b'{"text": ["abc"]}', {}, 400, "texts"),
    ("list body", b'["abc"]', {}, 400, "body"),
    ("broken JSON", b'{"texts": ["abc"', {}, 400, "body"),
    ("empty body", b"", {}, 400, "body"),
    ("not UTF-8", b'{"texts": ["\xff\xfe"]}', {}, 400, "body"),
    ("lone surrogate", b'{"texts": ["\\ud800"]}', {}, 400, "body"),
    ("too many texts", json.dumps({"texts": ["a"] * 33}).encode(), {}, 400, "at most 32"),
    ("text too long", json.dumps({"texts": ["ok", LONG]}).encode(), {}, 400, "texts[1]"),
    ("wrong content type", b'{"texts": ["abc"]}', {"Content-Type": "text/plain"}, 415, "Content-Type"),
    (
        "form content type",
        b"texts=abc",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type",
    ),
    ("multipart", b"--x--", {"Content-Type": "multipart/form-data; boundary=x"}, 415, "Content-Type"),
    ("body too large", json.dumps({"texts": ["a" * 1000] * 300}).encode(), {}, 413, "body"),
]


@pytest.mark.parametrize(("what", "body", "headers", "status", "names"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_4xx_naming_the_problem(
    client: httpx.Client, what: str, body: bytes, headers: dict, status: int, names: str
) -> None:
    response = client.post("/classify", content=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = ErrorMessage.model_validate(response.json()).error  # the one error model, as documented
    assert names in message
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert client.get("/readyz").status_code == 200


def test_chunked_body_over_the_limit_gets_413(client: httpx.Client) -> None:
    def chunks():
        for _ in range(300):
            yield b"x" * 1000

    response = client.post("/classify", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert client.get("/readyz").status_code == 200


def test_any_unicode_gets_a_prediction(client: httpx.Client) -> None:
    texts = [
        "😀" * 50,
        "\u202eابحث\u202c",
        "\u0000\u0001\u001f",
        "\ufeff\u200b",
        "𠀀𪜀",
        "\U0010ffff",
        "a\r\nb\tc",
    ]
    results = classify(client, texts)
    assert len(results) == len(texts)
    # Escaped surrogate pairs are fine too.
    response = client.post(
        "/classify", content=b'{"texts": ["\\ud83d\\ude00"]}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200


def test_get_on_classify_is_a_4xx(client: httpx.Client) -> None:
    assert 400 <= client.get("/classify").status_code < 500


def test_health_endpoints(client: httpx.Client) -> None:
    for path in ("/livez", "/healthz", "/readyz"):
        assert client.get(path).status_code == 200, path


def test_model_info(client: httpx.Client, bundle) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    info = response.json()
    meta = json.loads((bundle / "meta.json").read_text())
    assert info["model_name"] == meta["model_name"]
    assert info["version"] == meta["version"]
    assert info["labels"] == meta["labels"]
    assert info["metrics"] == meta["metrics"]
    assert info["calibration"] == meta["calibration"]  # what the score means: a temperature fitted on val, ECE
    assert info["limits"]["max_texts"] == 32
    assert info["rollout"]["source"] == str(bundle) and info["rollout"]["following"] is False  # a fixed bundle
    answer = client.post("/classify", json={"texts": ["好"]})
    assert answer.headers["x-model-version"] == meta["version"]


def test_metrics_has_latency_and_predictions_per_label(client: httpx.Client, bundle) -> None:
    results = classify(client, ["这本书很好看", "质量太差了", "一般"])
    text = client.get("/metrics").text
    version = json.loads((bundle / "meta.json").read_text())["version"]
    assert re.search(r'^textclf_request_duration_seconds_count\{status="200"\} [1-9]', text, re.M)
    for label in {r["label"] for r in results}:
        match = re.search(rf'^textclf_predictions_total\{{label="{label}",version="{version}"\}} (\S+)$', text, re.M)
        assert match and float(match.group(1)) >= 1


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    spec = client.get("/docs.json").json()
    for path in ("/classify", "/model", "/livez", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    assert client.get("/").status_code == 200  # the Swagger UI page


def test_openapi_documents_every_status_the_error_model_and_the_labels(client: httpx.Client, predictor) -> None:
    spec = client.get("/docs.json").json()
    statuses = {f"{method.upper()} {path}": sorted(op["responses"])
                for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert statuses["POST /classify"] == ["200", "400", "413", "415", "503"]  # no token set: no 401
    assert statuses["POST /feedback"] == ["200", "400", "404", "413", "415", "422", "503"]
    assert statuses["GET /model"] == statuses["GET /readyz"] == ["200", "503"]
    error = {"$ref": "#/components/schemas/ErrorMessage"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == error, (method, path, status)
    detail = spec["components"]["schemas"]["ErrorMessage"]["properties"]["detail"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/ValidationIssue"}} in detail["anyOf"]
    feedback = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert feedback["properties"]["label"]["enum"] == list(predictor.labels)
