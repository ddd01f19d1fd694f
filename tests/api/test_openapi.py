"""The OpenAPI document tells the truth: real responses with the error envelope, the key
schemes, the shape of the upload's `metadata`; OPTIONS and 405 list every method of a path."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from viewfinder.api.openapi import OPERATIONS
from viewfinder.api.upload_form import MAX_URL_CHARS

pytestmark = pytest.mark.embedded_only  # the document is the same on every store

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }


def test_every_operation_lists_its_real_errors_with_the_envelope(document: dict[str, Any]) -> None:
    ops = operations(document)
    assert set(ops) == set(OPERATIONS), "list each operation's errors in api/openapi.py"
    for where, op in ops.items():
        responses = op["responses"]
        assert "422" not in responses, where  # the server answers 400, never 422
        errors = {int(s) for s in responses if s != "200"}
        assert errors == set(OPERATIONS[where].errors), where
        for status in errors:
            assert responses[str(status)]["content"] == {"application/json": {"schema": ERROR_REF}}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"type", "message"}
    assert "rate_limit_error" in detail["properties"]["type"]["enum"]


def test_key_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {
        **schemes["ApiKeyHeader"],
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
    }
    assert schemes["BearerKey"]["scheme"] == "bearer"
    for (method, path), op in operations(document).items():
        if path.startswith("/files/"):
            assert op["security"] == [], path  # the signature in the URL is the credential
        else:
            assert op["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}], (method, path)


def test_upload_metadata_is_a_json_string_with_a_schema(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/images/upload"]["post"]["requestBody"]["content"]
    form_ref = body["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    models = document["components"]["schemas"]
    fields = models[form_ref]["properties"]
    assert fields["metadata"]["type"] == "string"
    assert fields["metadata"]["contentMediaType"] == "application/json"
    assert fields["metadata"]["contentSchema"] == {"$ref": "#/components/schemas/UploadMetadata"}
    assert fields["images"]["items"]["format"] == "binary"
    shape = models["UploadMetadata"]["properties"]
    assert shape["image_urls"]["items"] == {"type": "string", "maxLength": MAX_URL_CHARS}
    assert shape["requests"]["items"] == {"$ref": "#/components/schemas/UploadRequestItem"}
    item = models["UploadRequestItem"]["properties"]
    assert item["metadata"]["type"] == "object"
    assert item["indexing_config"] == {"$ref": "#/components/schemas/IndexingConfig"}


def test_byte_routes_document_image_bodies(document: dict[str, Any]) -> None:
    original = document["paths"]["/files/{image_id}"]["get"]["responses"]["200"]["content"]
    assert "image/png" in original and "image/jpeg" in original
    assert "application/json" not in original
    thumb = document["paths"]["/v1/images/{image_id}/thumbnail"]["get"]["responses"]["200"]
    assert list(thumb["content"]) == ["image/jpeg"]


@pytest.mark.parametrize(
    ("method", "path", "status", "headers", "kwargs"),
    [
        ("get", "/v1/images", 401, {}, {}),
        ("get", "/v1/status", 401, {"Authorization": "Bearer nope"}, {}),
        ("get", "/v1/images", 400, None, {"params": {"limit": 0}}),
        ("get", "/v1/images/{image_id}", 404, None, {}),
        ("delete", "/v1/images/{image_id}", 404, None, {}),
        ("post", "/v1/images/search", 400, None, {"json": {"query": ""}}),
        ("post", "/v1/images/upload", 400, None, {"data": {"metadata": "{"}}),
        ("get", "/files/{image_id}", 403, {}, {"params": {"expires": 1, "sig": "x"}}),
    ],
)
def test_the_server_answers_what_the_document_says(
    client: TestClient,
    auth: dict[str, str],
    document: dict[str, Any],
    method: str,
    path: str,
    status: int,
    headers: dict[str, str] | None,
    kwargs: dict[str, Any],
) -> None:
    url = path.replace("{image_id}", "0b6f0d1c-0000-4000-8000-000000000000")
    response = client.request(method, url, headers=auth if headers is None else headers, **kwargs)
    assert response.status_code == status
    assert str(status) in document["paths"][path][method]["responses"]
    error = response.json()["error"]
    assert set(error) <= {"type", "message", "param"} and error["message"]


def test_options_lists_get_and_delete(client: TestClient) -> None:
    response = client.options("/v1/images/some-id")
    assert response.status_code == 204
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"
    assert client.options("/v1/status").headers["allow"] == "GET, OPTIONS"
    assert client.options("/no/such/path").status_code == 404


def test_405_lists_every_method_of_the_path(client: TestClient, auth: dict[str, str]) -> None:
    response = client.put("/v1/images/some-id", headers=auth)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"
    assert response.json()["error"]["type"] == "validation_error"
    assert "allowed: DELETE, GET, OPTIONS" in response.json()["error"]["message"]
