"""The web page in a real headless Chromium against a real server: sign in, upload, see it
indexed, search, open the detail view, delete; many uploads; a phone-sized screen; the API docs
with no way out to the internet.

One server and one browser serve the whole module; each test signs in as its own tenant.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server
from tests.exif_images import jpeg_with_exif
from viewfinder.domain.keys import KeyRing
from viewfinder.stores.sqlite_metadata import SqliteMetadataStore

pytestmark = pytest.mark.e2e

CHROMIUM = (
    os.environ.get("VIEWFINDER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# CI (VIEWFINDER_TEST_REQUIRE_SERVICES=1) installs Chromium: there a missing one is a failure
if not Path(CHROMIUM).exists():
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("VIEWFINDER_TEST_REQUIRE_SERVICES"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# Drop a file on the drop zone the way a browser does: a DataTransfer holding a File.
_DROP = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], "green.png", { type: "image/png" }));
  return dt;
}"""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("web") / "data"
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
    with Server(data_dir, env) as server:
        yield server


@pytest.fixture
def server(running: Server, request: pytest.FixtureRequest) -> tuple[Server, str]:
    """The module's server and a key of a tenant of this test's own."""
    store = SqliteMetadataStore(running.data_dir / "viewfinder.db")
    try:
        key = KeyRing(store).create(re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60])
    finally:
        store.close()
    return running, key.secret


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _new_page(browser: Any, width: int, height: int) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
    finally:
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from _new_page(browser, 1280, 900)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    yield from _new_page(browser, 375, 812)


def _sign_in(page: Any, base: str, key: str) -> None:
    page.goto(base + "/")
    page.fill("#key-input", key)
    page.click("#sign-in")
    sync_api.expect(page.locator("#app")).to_be_visible()


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("VIEWFINDER_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


def test_sign_in_upload_search_detail_delete(
    server: tuple[Server, str], page: Any, tmp_path: Path
) -> None:
    running, key = server
    expect = sync_api.expect
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(running.url + "/")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#key-input", "vf_wrong")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_contain_text("invalid API key")
    page.fill("#key-input", key)
    page.click("#sign-in")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No images yet")

    # One file picked; once it is in, one dropped: a new batch on the same summary line.
    page.set_input_files(
        "#file-input",
        files=[{"name": "red.png", "mimeType": "image/png", "buffer": png_bytes((255, 0, 0))}],
    )
    expect(page.locator("#upload-summary")).to_have_text("1 of 1 uploaded")
    expect(page.locator("#uploads li")).to_have_count(1)
    drop = page.evaluate_handle(_DROP, base64.b64encode(png_bytes((0, 255, 0))).decode())
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": drop})
    expect(page.locator('#uploads li[data-name="green.png"]')).to_have_count(1)
    expect(page.locator("#uploads li")).to_have_count(1)
    expect(page.locator("#upload-summary")).to_have_text("1 of 1 uploaded")
    # each file has its own progress bar (behind "Details"), full once its upload is answered
    page.click("#upload-toggle")
    row = page.locator('#uploads li[data-name="green.png"]')
    expect(row.locator(".state")).to_have_text("uploaded")
    assert row.locator("progress").evaluate("bar => bar.value") == 100

    red_card = page.locator(".card", has_text="red.png")
    expect(red_card.locator(".badge")).to_have_text("indexed")
    expect(page.locator(".card", has_text="green.png").locator(".badge")).to_have_text("indexed")
    thumb = red_card.locator("img.thumb")
    expect(thumb).to_have_attribute("src", _thumbnail_src(running.url))
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    expect(page.locator("#counts")).to_contain_text("2 indexed")
    _shot(page, tmp_path, "gallery")

    # The min score starts at the calibrated 0.5, said in one line; only the red image passes.
    expect(page.locator("#threshold")).to_have_value("0.5")
    expect(page.locator("#threshold-value")).to_have_text("0.50")
    expect(page.locator("#threshold-hint")).to_have_text("as likely a match as not")
    page.fill("#search-input", "red")
    with page.expect_request("**/v1/images/search") as sent:
        page.click("#search-button")
    assert sent.value.post_data_json["threshold"] == 0.5
    expect(page.locator("#grid-title")).to_have_text("1 result for “red”")
    hit = page.locator(".card").first
    expect(hit).to_contain_text("red.png")
    score = float(hit.locator(".score").inner_text())
    assert 0.5 <= score <= 1.0
    _shot(page, tmp_path, "search")

    # The detail view shows the file name and the rest; delete removes the image everywhere.
    hit.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("red.png")
    expect(page.locator("#detail-fields dt").first).to_have_text("File")
    expect(page.locator("#detail-fields dd").first).to_have_text("red.png")
    expect(page.locator("#detail-fields")).to_contain_text("64 × 48 px")
    image_id = page.locator(".card").first.get_attribute("data-id")
    _shot(page, tmp_path, "detail")
    page.once("dialog", lambda d: d.accept())
    page.click("#delete-button")
    expect(detail).to_be_hidden()
    expect(page.locator(".card")).to_have_count(0)
    gone = httpx.get(f"{running.url}/v1/images/{image_id}", headers={"X-Api-Key": key})
    assert gone.status_code == 404

    page.click("#show-all")
    expect(page.locator(".card")).to_have_count(1)
    expect(page.locator(".card")).to_contain_text("green.png")

    # The key survives a reload (kept in the browser); signing out forgets it.
    page.reload()
    expect(page.locator("#app")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()

    outside = [u for u in requested if not u.startswith(running.url + "/")]
    assert not outside, f"the page reached outside its server: {outside}"


def _thumbnail_src(base: str) -> re.Pattern[str]:
    return re.compile(re.escape(base) + r"/files/[0-9a-f-]+/thumbnail\?.*size=256")


def test_tags_on_cards_and_exif_in_the_detail(
    server: tuple[Server, str], page: Any, tmp_path: Path
) -> None:
    running, key = server
    expect = sync_api.expect
    _sign_in(page, running.url, key)
    photo = {"name": "camera.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_exif()}
    page.set_input_files("#file-input", files=[photo])
    card = page.locator(".card", has_text="camera.jpg")
    expect(card.locator(".badge")).to_have_text("indexed")
    expect(card.locator(".tag").first).to_have_text("red")  # the fake model names colours
    expect(card.locator(".taken")).to_contain_text("2023")  # the capture date, from EXIF
    card.click()
    fields = page.locator("#detail-fields")
    expect(fields).to_contain_text("Canon EOS R5")
    expect(fields).to_contain_text("48.858369, -2.294467")
    expect(fields.locator("dt", has_text="Taken")).to_have_count(1)
    expect(fields).to_contain_text("2023")
    expect(fields.locator("dd .tag").first).to_have_text("red")
    _shot(page, tmp_path, "detail-exif")


def test_similar_from_the_detail_and_the_duplicates_view(
    server: tuple[Server, str], page: Any, tmp_path: Path
) -> None:
    from tests.unit.client.test_similar_duplicates import COPY, PICTURE

    running, key = server
    expect = sync_api.expect
    _sign_in(page, running.url, key)
    files = [
        ("red.png", png_bytes((255, 0, 0))),
        ("dark.png", png_bytes((200, 20, 0))),
        ("blue.png", png_bytes((0, 0, 255))),
        ("picture.png", PICTURE),
        ("copy.jpg", COPY),
    ]
    page.set_input_files(
        "#file-input",
        files=[{"name": n, "mimeType": "image/png", "buffer": b} for n, b in files],
    )
    expect(page.locator(".card .badge", has_text="indexed")).to_have_count(len(files))
    page.locator(".card", has_text="red.png").click()
    with page.expect_request("**/v1/images/search") as sent:
        page.click("#similar-button")
    assert "image_id" in sent.value.post_data_json
    expect(page.locator("#grid-title")).to_contain_text("for “like red.png”")
    expect(page.locator(".card").first).to_contain_text("dark.png")
    expect(page.locator(".card", has_text="red.png")).to_have_count(0)  # itself left out
    page.click("#duplicates-button")
    first = page.locator(".dup-group").first
    expect(first.locator(".card")).to_have_count(2)  # uploaded concurrently: either order
    expect(first.locator(".card", has_text="picture.png")).to_have_count(1)
    expect(first.locator(".card", has_text="copy.jpg")).to_have_count(1)
    _shot(page, tmp_path, "duplicates")


def test_many_uploads_are_one_line_with_details(
    server: tuple[Server, str], page: Any, tmp_path: Path
) -> None:
    running, key = server
    expect = sync_api.expect
    _sign_in(page, running.url, key)
    files = [
        {
            "name": f"photo-{n:02}.png",
            "mimeType": "image/png",
            "buffer": png_bytes((n * 6, 90, 200)),
        }
        for n in range(38)
    ]
    files.append({"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"})
    page.set_input_files("#file-input", files=files)

    status, rows = page.locator("#upload-status"), page.locator("#uploads")
    expect(status).to_be_visible()
    expect(rows).to_be_hidden()  # collapsed: one line, not 39
    box = status.bounding_box()
    assert box is not None and box["height"] < 60, box
    title = page.locator("#grid-title").bounding_box()
    assert title is not None and title["y"] + title["height"] < 900, "gallery pushed below the fold"
    expect(page.locator("#upload-summary")).to_have_text("38 of 39 uploaded · 1 failed")
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 100
    expect(page.locator(".card")).to_have_count(39)
    expect(page.locator(".card", has_text="photo-07.png")).to_have_count(1)
    _shot(page, tmp_path, "uploads-collapsed")

    # The list opens on request, scrolls inside itself, and keeps every row (none vanish).
    page.click("#upload-toggle")
    expect(rows).to_be_visible()
    expect(page.locator("#upload-toggle")).to_have_attribute("aria-expanded", "true")
    expect(rows.locator("li")).to_have_count(39)
    expect(rows.locator('li[data-name="notes.png"] .state')).to_have_text("refused")
    expect(rows.locator("li .state", has_text="uploaded")).to_have_count(38)
    opened = rows.bounding_box()
    assert opened is not None and opened["height"] <= 0.4 * 900 + 1, opened
    page.click("#upload-toggle")
    expect(rows).to_be_hidden()

    # The next batch starts afresh, but a failure stays listed until dismissed.
    more = [{"name": "late.png", "mimeType": "image/png", "buffer": png_bytes((1, 2, 3))}]
    page.set_input_files("#file-input", files=more)
    expect(rows.locator("li")).to_have_count(2)
    expect(page.locator("#upload-summary")).to_have_text("1 of 2 uploaded · 1 failed")
    page.click("#upload-dismiss")
    expect(status).to_be_hidden()
    expect(rows.locator("li")).to_have_count(0)


def test_phone_two_columns_and_a_reachable_close(
    server: tuple[Server, str], phone: Any, tmp_path: Path
) -> None:
    running, key = server
    expect = sync_api.expect
    files = [
        ("images", (f"{name}.png", png_bytes(colour), "image/png"))
        for name, colour in [("red", (255, 0, 0)), ("lime", (0, 255, 0)), ("blue", (0, 0, 255))]
    ]
    r = httpx.post(f"{running.url}/v1/images/upload", headers={"X-Api-Key": key}, files=files)
    assert r.status_code == 200, r.text
    _sign_in(phone, running.url, key)
    cards = phone.locator(".card")
    expect(cards).to_have_count(3)
    expect(phone.locator(".card", has_text="lime.png")).to_have_count(1)  # names in the gallery
    boxes = [cards.nth(n).bounding_box() for n in range(3)]
    first, second, third = boxes
    assert first and second and third
    assert abs(first["y"] - second["y"]) < 1, "the first two photos share a row"
    assert second["x"] >= first["x"] + first["width"], boxes
    assert second["x"] + second["width"] <= 375 and first["x"] >= 0, boxes
    assert first["width"] > 120, "two columns, not tiny ones"
    assert third["y"] >= first["y"] + first["height"], "the third starts the next row"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375, "no sideways scroll"
    _shot(phone, tmp_path, "phone-gallery")

    cards.first.click()
    expect(phone.locator("#detail")).to_be_visible()
    close = phone.locator("#detail-close").bounding_box()
    assert close is not None
    assert close["x"] >= 0 and close["x"] + close["width"] <= 375, close
    assert close["y"] >= 0 and close["y"] + close["height"] <= 812, close
    _shot(phone, tmp_path, "phone-detail")
    phone.locator("#detail-img").scroll_into_view_if_needed()
    phone.locator("#delete-button").scroll_into_view_if_needed()
    close = phone.locator("#detail-close").bounding_box()
    assert close is not None and 0 <= close["y"] <= 812 - close["height"], "Close scrolled away"
    phone.click("#detail-close")
    expect(phone.locator("#detail")).to_be_hidden()


def test_api_docs_work_without_internet(running: Server, page: Any) -> None:
    expect = sync_api.expect
    blocked: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(running.url + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(running.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible()  # Swagger UI rendered the API
    expect(page.locator("#swagger-ui")).to_contain_text("/v1/images/search")
    page.goto(running.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("Viewfinder")  # ReDoc rendered it
    expect(page.locator("body")).to_contain_text("/v1/images/search")
    assert not blocked, f"the docs reached outside the server: {blocked}"


def test_filter_chips_narrow_the_gallery_and_search(
    server: tuple[Server, str], page: Any, tmp_path: Path
) -> None:
    running, key = server
    expect = sync_api.expect
    files = [
        ("images", ("red.png", png_bytes((255, 0, 0)), "image/png")),
        ("images", ("blue.png", png_bytes((0, 0, 255)), "image/png")),
    ]
    meta = json.dumps({"requests": [{"metadata": {"album": "trip"}}, {"metadata": {}}]})
    r = httpx.post(
        f"{running.url}/v1/images/upload",
        headers={"X-Api-Key": key},
        files=files,
        data={"metadata": meta},
    )
    assert r.status_code == 200, r.text
    _sign_in(page, running.url, key)
    cards = page.locator(".card")
    expect(cards.locator(".badge", has_text="indexed")).to_have_count(2)  # tags come with it

    page.fill("#filter-value", "blue")  # a tag (the default kind)
    page.click("#filter-add")
    expect(page.locator("#filter-chips li")).to_have_text(["tag: blue×"])
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("blue.png")
    page.fill("#search-input", "red")
    page.eval_on_selector(
        "#threshold", "e => { e.value = '0'; e.dispatchEvent(new Event('input')) }"
    )
    page.click("#search-button")
    expect(page.locator("#grid-title")).to_have_text("1 result for “red”")  # only what passes
    expect(cards.first).to_contain_text("blue.png")

    page.click("#filter-chips .chip-remove")
    expect(page.locator("#filter-chips li")).to_have_count(0)
    page.select_option("#filter-kind", "meta")
    page.fill("#filter-value", "album=trip")
    page.press("#filter-value", "Enter")
    expect(page.locator("#filter-chips li")).to_have_text(["album = trip×"])
    expect(page.locator("#grid-title")).to_have_text("1 result for “red”")
    expect(cards.first).to_contain_text("red.png")

    page.select_option("#filter-kind", "uploaded-to")  # a date: nothing uploaded before 2001
    assert page.get_attribute("#filter-value", "type") == "date"
    page.fill("#filter-value", "2000-12-31")
    page.click("#filter-add")
    expect(page.locator("#grid-title")).to_have_text("0 results for “red”")
    _shot(page, tmp_path, "filter-chips")
