"""Soak: many clients mixing search, list, get and upload against one real server for a while.

    python bench/soak.py [--seconds 60] [--clients 16] [--model builtin|fake]

Starts a real `viewfinder serve` process on a fresh data directory, uploads a few seed images,
then runs --clients client threads for --seconds, each picking its next request at random:
search (45 %), list (20 %), get (20 %), upload (15 %, one or two photos). Prints the errors,
p50/p95/p99 latency per operation and the server's peak resident memory, and writes
bench/results/soak.json. An error is any answer other than 200 (or a failed connection).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server, cli  # noqa: E402

COCO = ROOT.parent / "shared" / "data" / "coco_mini" / "images"
QUERIES = [
    "a dog playing in the snow",
    "a red car parked at night",
    "people eating pizza",
    "a cat on a sofa",
    "a man riding a surfboard",
    "a plate of food",
    "a city street",
    "a train at a station",
]
MIX = (("search", 45), ("list", 20), ("get", 20), ("upload", 15))


def photos(n: int) -> list[bytes]:
    """coco_mini photos when present, else generated JPEGs of photo size."""
    files = sorted(COCO.glob("*.jpg")) if COCO.exists() else []
    if files:
        return [files[i % len(files)].read_bytes() for i in range(n)]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.effect_noise((640, 480), 10 + i % 50).convert("RGB").save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


@dataclass
class Tally:
    """What the clients saw, per operation."""

    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)  # one error message per kind
    image_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.latencies_ms[op].append(ms)
            if error is not None:
                self.errors[op] += 1
                self.samples.setdefault(f"{op}: {error[:60]}", error[:300])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class RssWatch:
    """Samples a process's resident memory; `peak_mb` is the most seen (or the kernel's
    high-water mark, where Linux keeps one)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sampled_peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _status(self, name: str) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(name + ":"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            rss = self._status("VmRSS")
            if rss is not None:
                self.sampled_peak_kb = max(self.sampled_peak_kb, rss)

    def start(self) -> RssWatch:
        self._thread.start()
        return self

    def stop(self) -> float | None:
        """Peak RSS in MB so far (None where /proc is missing: see `children_peak_mb`)."""
        self._stop.set()
        self._thread.join()
        hwm = self._status("VmHWM")
        peak_kb = max(hwm or 0, self.sampled_peak_kb)
        return round(peak_kb / 1024, 1) if peak_kb else None


def children_peak_mb() -> float:
    """Largest peak RSS of any finished child process (macOS reports bytes, Linux KB)."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def client_loop(url: str, headers: dict[str, str], stop_at: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    pictures = photos(8)
    ops = [op for op, weight in MIX for _ in range(weight)]
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        while time.monotonic() < stop_at:
            op = rng.choice(ops)
            started = time.perf_counter()
            error: str | None = None
            try:
                if op == "search":
                    r = http.post(
                        "/v1/images/search",
                        json={"query": rng.choice(QUERIES), "max_results": 10},
                    )
                elif op == "list":
                    r = http.get("/v1/images", params={"limit": 20, "offset": rng.randrange(50)})
                elif op == "get":
                    with tally.lock:
                        image_id = rng.choice(tally.image_ids)
                    r = http.get(f"/v1/images/{image_id}")
                else:
                    files = [
                        ("images", (f"{n}.jpg", rng.choice(pictures), "image/jpeg"))
                        for n in range(rng.randint(1, 2))
                    ]
                    r = http.post("/v1/images/upload", files=files)
                    if r.status_code == 200:
                        with tally.lock:
                            tally.image_ids += [x["image_id"] for x in r.json()["results"]]
                if r.status_code != 200:
                    error = f"HTTP {r.status_code}: {r.text}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            tally.record(op, (time.perf_counter() - started) * 1000, error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--model", default=os.environ.get("VIEWFINDER_MODEL", "builtin"))
    parser.add_argument("--seed-images", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args()

    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = {"VIEWFINDER_MODEL": args.model, "VIEWFINDER_LOG_LEVEL": "warning"}
        key = cli(data_dir, "keys", "create", "soak", env=env).strip()
        headers = {"X-Api-Key": key}
        with Server(data_dir, env) as server:
            assert server.proc is not None
            watch = RssWatch(server.proc.pid).start()
            seeds = photos(args.seed_images)
            for start in range(0, len(seeds), 8):
                files = [
                    ("images", (f"{n}.jpg", b, "image/jpeg"))
                    for n, b in enumerate(seeds[start : start + 8])
                ]
                r = httpx.post(
                    f"{server.url}/v1/images/upload", headers=headers, files=files, timeout=120
                )
                r.raise_for_status()
                tally.image_ids += [x["image_id"] for x in r.json()["results"]]
            started = time.monotonic()
            stop_at = started + args.seconds
            clients = [
                threading.Thread(target=client_loop, args=(server.url, headers, stop_at, n, tally))
                for n in range(args.clients)
            ]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            elapsed = time.monotonic() - started
            status = httpx.get(f"{server.url}/v1/status", headers=headers, timeout=30).json()
            peak_mb = watch.stop()
        peak_mb = peak_mb if peak_mb is not None else children_peak_mb()

    operations = {}
    for op, _ in MIX:
        lat = tally.latencies_ms.get(op, [])
        operations[op] = {
            "requests": len(lat),
            "errors": tally.errors[op],
            "per_s": round(len(lat) / elapsed, 1),
            "p50_ms": round(percentile(lat, 0.50), 1) if lat else None,
            "p95_ms": round(percentile(lat, 0.95), 1) if lat else None,
            "p99_ms": round(percentile(lat, 0.99), 1) if lat else None,
        }
    result = {
        "model": status["model_id"],
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "seconds": round(elapsed, 1),
        "clients": args.clients,
        "requests": sum(o["requests"] for o in operations.values()),
        "errors": sum(tally.errors.values()),
        "error_samples": list(tally.samples.values())[:10],
        "operations": operations,
        "images_at_end": {k: status[k] for k in ("stored", "queued", "indexed", "failed")},
        "server_peak_rss_mb": peak_mb,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['model']} on {result['machine']}: {args.clients} clients for {elapsed:.0f} s")
    heads = (
        ("requests", 9),
        ("errors", 7),
        ("per s", 7),
        ("p50 ms", 8),
        ("p95 ms", 8),
        ("p99 ms", 8),
    )
    print(f"{'operation':>10} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for op, o in operations.items():
        print(
            f"{op:>10} {o['requests']:>9} {o['errors']:>7} {o['per_s']:>7} "
            f"{o['p50_ms']!s:>8} {o['p95_ms']!s:>8} {o['p99_ms']!s:>8}"
        )
    print(f"errors: {result['errors']}")
    for sample in result["error_samples"]:
        print(f"  {sample}")
    print(f"images at the end: {result['images_at_end']}")
    print(f"server peak RSS: {peak_mb} MB")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
