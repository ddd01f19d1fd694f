"""What hostile or careless uploads cost a real server: memory, and the other clients' latency.

    python bench/hostile_uploads.py [--huge 10] [--side 7000] [--budget-mb 512]

Starts a real `viewfinder serve` (fake model) on a fresh data directory and, while one client
polls `GET /v1/status` every 50 ms, runs three scenarios in turn:

- huge pixels: --huge concurrent uploads of a small PNG of --side x --side pixels
  (49 Mpx by default: a 190 KB file that decodes to 196 MB);
- declared work: an upload whose `metadata` lists 200,000 `requests` entries;
- anonymous bulk: a 150 MB upload with no API key.

Prints, per scenario, the server's peak RSS growth and what it kept afterwards, the answer,
how long it took, and p50/p95/max of the status polls meanwhile; writes
bench/results/hostile_uploads.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server, cli  # noqa: E402


def rss(pid: int, field: str) -> int:
    """A /proc/PID/status memory figure, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


class Poller:
    """GET /v1/status every 50 ms; the latencies of the polls."""

    def __init__(self, url: str, key: str) -> None:
        self._url, self._key = url, key
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=60) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                http.get("/v1/status", headers={"X-Api-Key": self._key})
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(0.05)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, float]:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        return {
            "polls": len(ms),
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
            "max_ms": round(ms[-1], 1),
        }


def measured(server: Server, key: str, run: Callable[[], str]) -> dict[str, Any]:
    """Run one scenario; peak RSS growth (from a reset high-water mark) and what stayed."""
    assert server.proc is not None
    pid = server.proc.pid
    time.sleep(0.5)
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = rss(pid, "VmRSS")
    with Poller(server.url, key) as poller:
        started = time.perf_counter()
        answer = run()
        seconds = time.perf_counter() - started
        time.sleep(0.3)
    time.sleep(1.0)
    return {
        "answer": answer,
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before / 2**20),
        "peak_growth_mb": round((rss(pid, "VmHWM") - before) / 2**20),
        "kept_after_mb": round((rss(pid, "VmRSS") - before) / 2**20),
        "status_while": poller.figures(),
    }


def huge_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (30, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


def chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = b"\0" * size
    for _ in range(total // size):
        yield block


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--huge", type=int, default=10, help="concurrent huge-pixel uploads")
    ap.add_argument("--side", type=int, default=7000, help="side of the huge PNG, pixels")
    ap.add_argument("--budget-mb", type=int, default=512, help="VIEWFINDER_DECODE_MEMORY_BYTES")
    args = ap.parse_args()

    env = {
        "VIEWFINDER_MODEL": "fake",
        "VIEWFINDER_DECODE_MEMORY_BYTES": str(args.budget_mb * 2**20),
    }
    png = huge_png(args.side)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        key = cli(data_dir, "keys", "create", "acme", env=env).strip()
        headers = {"X-Api-Key": key}
        with Server(data_dir, env) as server, httpx.Client(base_url=server.url, timeout=600) as h:
            no_index = json.dumps({"requests": [{"indexing_config": {"index": False}}]})

            def upload_huge(_: int) -> int:
                files = [("images", ("huge.png", png, "image/png"))]
                r = h.post(
                    "/v1/images/upload", headers=headers, files=files, data={"metadata": no_index}
                )
                return r.status_code

            def huge() -> str:
                with ThreadPoolExecutor(args.huge) as pool:
                    codes = list(pool.map(upload_huge, range(args.huge)))
                return f"{codes.count(200)}/{len(codes)} answered 200"

            def declared() -> str:
                meta = json.dumps({"requests": [{}] * 200_000})
                files = [("images", ("a.png", huge_png(8), "image/png"))]
                r = h.post(
                    "/v1/images/upload", headers=headers, files=files, data={"metadata": meta}
                )
                return f"{r.status_code} {r.text[:90]}"

            def anonymous() -> str:
                boundary = "b0undary"
                body = [
                    f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
                    'filename="x.png"\r\nContent-Type: image/png\r\n\r\n'.encode(),
                    *chunks(150 * 2**20),
                    f"\r\n--{boundary}--\r\n".encode(),
                ]
                try:
                    r = h.post(
                        "/v1/images/upload",
                        content=iter(body),
                        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                    )
                except httpx.HTTPError as exc:  # the server may close before taking it all
                    return f"connection closed early ({type(exc).__name__})"
                return f"{r.status_code} {r.json()['error']['type']}"

            h.post(
                "/v1/images/upload",
                headers=headers,
                files=[("images", ("w.png", huge_png(64), "image/png"))],
            )
            for name, run in (
                ("huge_pixels", huge),
                ("declared_work", declared),
                ("anonymous_bulk", anonymous),
            ):
                results[name] = measured(server, key, run)
                print(name, json.dumps(results[name]))

    out = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "huge": {"uploads": args.huge, "side": args.side, "png_bytes": len(png)},
        "decode_memory_mb": args.budget_mb,
        "results": results,
    }
    path = ROOT / "bench" / "results" / "hostile_uploads.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
