"""Every README example works on a machine with no network, unless it says it needs one."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
# a host on the internet: a dotted name with a letters-only last label (not 127.0.0.1, not
# a service name such as `minio` or `db` of a self-hosted deployment)
_REMOTE = re.compile(r"\bhttps?://(?!127\.0\.0\.1|localhost)([a-z0-9-]+\.)+[a-z]{2,}\b", re.I)


def _code_lines(text: str) -> list[tuple[int, str]]:
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append((number, line))
    return lines


def test_examples_that_reach_the_internet_say_so() -> None:
    text = README.read_text()
    all_lines = text.splitlines()
    unmarked = []
    for number, line in _code_lines(text):
        if not _REMOTE.search(line):
            continue
        near = " ".join(all_lines[max(0, number - 3) : number]).lower()
        if "needs a network" not in near and "need a network" not in near:
            unmarked.append(f"README.md:{number}: {line.strip()}")
    assert not unmarked, "examples that need a network without saying so:\n" + "\n".join(unmarked)


def test_the_check_sees_a_remote_url() -> None:
    assert _REMOTE.search('"image_urls": ["https://example.com/photo.jpg"]')
    assert not _REMOTE.search("curl -s http://127.0.0.1:8000/v1/status")
    assert not _REMOTE.search("VIEWFINDER_S3_ENDPOINT_URL=http://minio:9000")
