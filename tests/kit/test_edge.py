"""The HTTP edge: uniform errors, body limit, malformed JSON, request ids, security headers."""

from __future__ import annotations

import httpx

LOGIN = "/api/v1/auth/login"


def assert_error_body(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


async def test_unknown_route_gets_the_uniform_error(client: httpx.AsyncClient) -> None:
    assert_error_body(await client.get("/api/v1/nothing-here"), 404, "not_found")


async def test_wrong_method_gets_the_uniform_error(client: httpx.AsyncClient) -> None:
    assert_error_body(await client.delete("/healthz"), 405, "method_not_allowed")


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        LOGIN,
        content=b'{"email": "a@b.de", "password": ',
        headers={"content-type": "application/json"},
    )
    error = assert_error_body(response, 422, "validation_error")
    assert "JSON" in error["message"]


async def test_wrong_type_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, json={"email": "a@b.de", "password": 12})
    error = assert_error_body(response, 422, "validation_error")
    assert error["details"][0]["field"] == "password"


async def test_oversized_body_is_413_by_declared_length(
    client: httpx.AsyncClient, settings
) -> None:  # type: ignore[no-untyped-def]
    body = b"x" * (settings.max_body_bytes + 1)
    response = await client.post(LOGIN, content=body, headers={"content-type": "application/json"})
    assert_error_body(response, 413, "payload_too_large")
    assert response.headers["x-request-id"]


async def test_oversized_streamed_body_is_413(client: httpx.AsyncClient, settings) -> None:  # type: ignore[no-untyped-def]
    chunk = b"x" * 65536
    chunks = settings.max_body_bytes // len(chunk) + 2

    async def stream():  # type: ignore[no-untyped-def]
        for _ in range(chunks):
            yield chunk

    response = await client.post(
        LOGIN, content=stream(), headers={"content-type": "application/json"}
    )
    assert_error_body(response, 413, "payload_too_large")


async def test_request_id_is_generated_or_kept(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    kept = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert unsafe.headers["x-request-id"] != "<script>"


async def test_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers
    behind_tls = await client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert behind_tls.headers["strict-transport-security"].startswith("max-age=")


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["info"]["title"] == "Demandly API"
    assert (await client.get("/api/docs")).status_code == 200


async def test_nul_byte_in_a_query_filter_is_422_naming_the_parameter(
    client: httpx.AsyncClient, world
) -> None:  # type: ignore[no-untyped-def]
    # PostgreSQL refuses NUL in text: without the edge guard this filter was a 500.
    headers = world.a.headers("agency_owner")
    response = await client.get("/api/v1/events?type=%00x&limit=5", headers=headers)
    error = assert_error_body(response, 422, "validation_error")
    assert error["details"][0]["field"] == "query.type"
    assert (await client.get("/api/v1/events?type=x&limit=5", headers=headers)).status_code == 200


async def test_nul_byte_in_a_path_is_422(client: httpx.AsyncClient, world) -> None:  # type: ignore[no-untyped-def]
    headers = world.a.headers("agency_owner")
    response = await client.get("/api/v1/clients/cli_%00", headers=headers)
    error = assert_error_body(response, 422, "validation_error")
    assert error["details"][0]["field"] == "path"
