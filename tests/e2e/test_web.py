"""The web page in a real headless Chromium against a real server: sign in, upload, see it
indexed, search, open the detail view, delete."""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import png_bytes
from tests.e2e.server import Server, cli

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path / "data"
    key = cli(data_dir, "keys", "create", "acme", env={"VIEWFINDER_MODEL": "fake"}).strip()
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_POLL_INTERVAL_S": "0.05"}
    with Server(data_dir, env) as running:
        yield running, key


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


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
    page.set_default_timeout(30_000)

    page.goto(running.url + "/")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#key-input", "vf_wrong")
    page.click("#sign-in")
    expect(page.locator("#login-error")).to_contain_text("invalid API key")
    page.fill("#key-input", key)
    page.click("#sign-in")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No images yet")

    # One file picked, one dropped.
    page.set_input_files(
        "#file-input",
        files=[{"name": "red.png", "mimeType": "image/png", "buffer": png_bytes((255, 0, 0))}],
    )
    drop = page.evaluate_handle(_DROP, base64.b64encode(png_bytes((0, 255, 0))).decode())
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": drop})
    expect(page.locator("#uploads li")).to_have_count(2)
    # each file has its own progress bar, full once its upload is answered
    for name in ("red.png", "green.png"):
        row = page.locator(f'#uploads li[data-name="{name}"]')
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

    # Search with a threshold: only the red image passes.
    page.fill("#search-input", "red")
    page.locator("#threshold").fill("0.5")
    page.click("#search-button")
    expect(page.locator("#grid-title")).to_have_text("1 result for “red”")
    hit = page.locator(".card").first
    expect(hit).to_contain_text("red.png")
    score = float(hit.locator(".score").inner_text())
    assert 0.5 <= score <= 1.0
    _shot(page, tmp_path, "search")

    # The detail view shows the metadata; delete removes the image everywhere.
    hit.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#detail-metadata")).to_contain_text('"file_name": "red.png"')
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
