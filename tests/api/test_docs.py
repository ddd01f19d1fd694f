"""/docs and /redoc load only this server's own copies of Swagger UI and ReDoc (offline docs)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.embedded_only  # no store is involved

_REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize(
    ("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_docs_pages_reference_only_local_assets(client: TestClient, page: str, script: str) -> None:
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    # and the browser is told to load nothing from elsewhere, whatever the bundles name
    assert "default-src 'self'" in html.headers["content-security-policy"]
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text, re.I), html.text
    refs = {a or b for a, b in _REFERENCE.findall(html.text)}
    assert f"/docs-assets/{script}" in refs and "/openapi.json" in refs
    for ref in refs:
        assert ref.startswith("/"), ref
        got = client.get(ref)
        assert got.status_code == 200, ref
        assert len(got.content) > 1000, ref
    bundle = client.get(f"/docs-assets/{script}")
    assert bundle.headers["content-type"].startswith("text/javascript")


def test_swagger_ui_asks_no_online_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_unknown_docs_asset_is_404(client: TestClient) -> None:
    assert client.get("/docs-assets/core.py").status_code == 404
    assert client.get("/docs-assets/..%2F__init__.py").status_code == 404
    assert client.get("/docs/oauth2-redirect").status_code == 200
