"""The web page, its static files and the thumbnail endpoints (in process; the browser test
is tests/e2e/test_web.py)."""

from __future__ import annotations

import errno
import io
import re
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import png_bytes
from viewfinder.config import Settings
from viewfinder.domain.keys import KeyRing
from viewfinder.domain.service import ImageService

WEB = Path(__file__).resolve().parents[2] / "viewfinder" / "web"


def _put(client: TestClient, auth: dict[str, str], data: bytes, name: str = "x.png") -> dict:
    files = [("images", (name, data, "application/octet-stream"))]
    return client.post("/v1/images/upload", headers=auth, files=files).json()["results"][0]


def _thumb_url(image_url: str, size: int = 256) -> str:
    path, _, query = image_url.partition("?")
    return f"{path}/thumbnail?{query}&size={size}"


def _rotated_jpeg() -> bytes:
    """A 60x20 landscape JPEG whose EXIF says "rotate 90° clockwise to view" (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), (200, 30, 30)).save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_page_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/app.js"' in page.text
    # a file picker that offers phone photos too (some systems give HEIC no image/* type)
    assert 'accept="image/*,.heic,.heif,.avif"' in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/secret_key").status_code == 404
    assert client.get("/static/..%2Fapi%2Fweb.py").status_code == 404
    assert client.get("/docs").status_code == 200


def test_the_page_names_no_other_origin() -> None:
    for name in ("index.html", "app.js", "app.css"):
        text = (WEB / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name


def test_thumbnail_with_the_key(
    client: TestClient, auth: dict[str, str], service: ImageService
) -> None:
    image = _put(client, auth, png_bytes((0, 0, 255), size=(600, 300)))
    url = f"/v1/images/{image['image_id']}/thumbnail"
    assert client.get(url).status_code == 401
    r = client.get(url, headers=auth, params={"size": 100})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-ratelimit-requests-limit"]
    assert Image.open(io.BytesIO(r.content)).size == (128, 64)  # rounded up to 128
    default = Image.open(io.BytesIO(client.get(url, headers=auth).content))
    assert default.size == (256, 128)
    assert client.get(url, headers=auth, params={"size": 0}).status_code == 400
    assert client.get(url, headers=auth, params={"size": 5000}).status_code == 400
    other = {"X-Api-Key": KeyRing(service.metadata).create("other").secret}
    assert client.get(url, headers=other).status_code == 404
    assert "/v1/images/{image_id}/thumbnail" in client.get("/openapi.json").json()["paths"]


def test_signed_thumbnail_is_cached_and_upright(
    client: TestClient, auth: dict[str, str], settings: Settings
) -> None:
    image = _put(client, auth, _rotated_jpeg(), "rotated.jpg")
    r = client.get(_thumb_url(image["image_url"]))
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).size == (20, 60)  # EXIF orientation applied
    cached = list((settings.data_dir / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1
    cached[0].write_bytes(b"cached")  # a second request is served from the cache
    assert client.get(_thumb_url(image["image_url"])).content == b"cached"

    tampered = _thumb_url(image["image_url"]).replace("sig=", "sig=0")
    assert client.get(tampered).status_code == 403


def test_delete_removes_thumbnails_unless_shared(
    client: TestClient, auth: dict[str, str], settings: Settings, service: ImageService
) -> None:
    data = png_bytes((0, 255, 0))
    first, second = _put(client, auth, data), _put(client, auth, data)
    assert client.get(_thumb_url(first["image_url"])).status_code == 200
    assert client.get(_thumb_url(first["image_url"], 64)).status_code == 200
    thumbs = settings.data_dir / "thumbnails"
    assert len(list(thumbs.rglob("*.jpg"))) == 2

    client.delete(f"/v1/images/{first['image_id']}", headers=auth)
    assert len(list(thumbs.rglob("*.jpg"))) == 2  # the second image has the same bytes
    assert client.get(_thumb_url(first["image_url"])).status_code == 404
    client.delete(f"/v1/images/{second['image_id']}", headers=auth)
    assert list(thumbs.rglob("*.jpg")) == []


def test_a_refused_image_has_no_thumbnail(client: TestClient, auth: dict[str, str]) -> None:
    image = _put(client, auth, b"not an image")
    assert image["indexing_status"] == 3
    r = client.get(f"/v1/images/{image['image_id']}/thumbnail", headers=auth)
    assert r.status_code == 404 and "no stored bytes" in r.json()["error"]["message"]


def test_a_thumbnail_is_served_when_the_disk_is_too_full_to_cache_it(
    client: TestClient, auth: dict[str, str], settings: Settings, monkeypatch
) -> None:
    image = _put(client, auth, png_bytes((0, 200, 0), size=(300, 150)))

    def full(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    r = client.get(_thumb_url(image["image_url"], 128))
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (128, 64)
    assert list((settings.data_dir / "thumbnails").rglob("*.jpg")) == []  # served, not cached
