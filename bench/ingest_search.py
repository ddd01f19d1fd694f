"""End-to-end benchmark: ingest throughput over HTTP and search latency at 10,000 vectors.

    python bench/ingest_search.py [--model builtin] [--images 480] [--rounds 5] [--vectors 10000]

Starts a real `viewfinder serve` process. Ingest: uploads images (coco_mini when present,
else generated photos-like noise) in requests of 16 from 4 client threads and times until
every one is indexed. The request bodies are encoded before the clock starts: the client
shares this machine's cores with the server, where a real client is elsewhere.

The bare model loop (decode and embed the same images in batches of 16, in this process,
nothing else) is timed in the same run, before and after each of --rounds HTTP ingests into
the same server (the server idles meanwhile); each round's HTTP rate is reported as a share of
the mean of the loops either side, and the medians over the rounds, so a machine whose speed
drifts (a shared host) skews the share less. Every round is in the results file.

Search: seeds the store up to --vectors indexed images (random unit vectors, inserted through
the store protocols), then times --queries searches over HTTP.
Prints the figures and writes bench/results/ingest_search.json.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server, cli  # noqa: E402
from viewfinder.bootstrap import build_service  # noqa: E402
from viewfinder.config import Settings  # noqa: E402
from viewfinder.domain.ingest import IngestLimits, decode_for_model  # noqa: E402
from viewfinder.domain.records import ImageRecord, IndexingStatus  # noqa: E402
from viewfinder.embedders.base import l2_normalize, min_image_side  # noqa: E402
from viewfinder.embedders.factory import load_embedder  # noqa: E402
from viewfinder.embedders.tags import TagLimits, embed_and_tag  # noqa: E402

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
    "an airplane in the sky",
    "a kitchen with a stove",
]


def photos(n: int) -> list[bytes]:
    files = sorted(COCO.glob("*.jpg")) if COCO.exists() else []
    if files:
        return [files[i % len(files)].read_bytes() for i in range(n)]
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.effect_noise((640, 480), 10 + i % 50).convert("RGB").save(buf, "JPEG")
        out.append(buf.getvalue())
    return out


def bare_loop(settings: Settings, payloads: list[bytes]) -> tuple[float, float]:
    """Images/s and CPU ms an image (this process's) of decode + embed (with tags, as the
    worker does) in batches of 16."""
    embedder = load_embedder(settings)
    limits = IngestLimits()
    side = min_image_side(embedder)
    decode = [lambda b=b: decode_for_model(b, limits, side) for b in payloads]  # as the worker
    embed_and_tag(embedder, [decode[0]()], TagLimits())  # warm-up: load the model
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(decode), 16):
        images = [d() for d in decode[start : start + 16]]
        embed_and_tag(embedder, images, TagLimits())
    rate = len(payloads) / (time.perf_counter() - started)
    cpu_ms = 1000 * (time.process_time() - cpu) / len(payloads)
    close = getattr(embedder, "close", None)
    if close is not None:
        close()
    return rate, cpu_ms


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_all_indexed(url: str, headers: dict[str, str], total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, headers=headers) as client:
        while time.monotonic() < deadline:
            s = client.get("/v1/status").json()
            if s["indexed"] + s["failed"] >= total:
                return
            time.sleep(0.1)
    raise SystemExit("indexing did not finish in time")


def seed_vectors(settings: Settings, tenant: str, count: int) -> None:
    service = build_service(settings)
    service.start()
    have = service.metadata.count_images(IndexingStatus.INDEXED, tenant)
    need = max(0, count - have)
    rng = np.random.default_rng(0)
    for start in range(0, need, 1000):
        n = min(1000, need - start)
        ids = [str(uuid.uuid4()) for _ in range(n)]
        records = [
            ImageRecord(
                image_id=i,
                tenant=tenant,
                status=IndexingStatus.INDEXED,
                upload_timestamp=time.time(),
                metadata={"seeded": True},
            )
            for i in ids
        ]
        service.metadata.insert_images(records)
        vectors = l2_normalize(rng.standard_normal((n, service.embedder.dim)))
        service.vectors.upsert(ids, [tenant] * n, vectors)
    service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("VIEWFINDER_MODEL", "builtin"))
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument(
        "--workers", type=int, default=0, help="VIEWFINDER_WORKERS (0: the default)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="HTTP ingests, each between two bare loops"
    )
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "ingest_search.json"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        env = {"VIEWFINDER_MODEL": args.model, "VIEWFINDER_LOG_LEVEL": "warning"}
        if args.workers:
            env["VIEWFINDER_WORKERS"] = str(args.workers)
        key = cli(data_dir, "keys", "create", "bench", env=env).strip()
        headers = {"X-Api-Key": key}
        payloads = photos(args.images)
        batches = [payloads[i : i + 16] for i in range(0, len(payloads), 16)]

        def encode(batch: list[bytes]) -> tuple[bytes, dict[str, str]]:
            files = [("images", (f"{n}.jpg", b, "image/jpeg")) for n, b in enumerate(batch)]
            request = httpx.Request("POST", "http://bench/", headers=headers, files=files)
            return request.read(), {**headers, "Content-Type": request.headers["Content-Type"]}

        bodies = [encode(b) for b in batches]

        def send(body: tuple[bytes, dict[str, str]]) -> None:
            # the standard library's client sends a ready body in one write: httpx spent
            # about 3 ms of this machine's CPU an image sending the same bytes
            where = urllib.parse.urlsplit(url)
            conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=120)
            try:
                conn.request("POST", "/v1/images/upload", body=body[0], headers=body[1])
                reply = conn.getresponse()
                text = reply.read()
            finally:
                conn.close()
            if reply.status != 200:
                raise SystemExit(f"upload failed: {reply.status} {text[:200]!r}")

        settings = Settings(data_dir=data_dir, model=args.model)
        bare = [bare_loop(settings, payloads)]
        rounds: list[dict[str, float]] = []
        with Server(data_dir, env) as server:
            url = server.url
            send(encode(batches[0][:1]))  # warm up the model and the connection
            wait_all_indexed(url, headers, 1, 300)
            assert server.proc is not None
            for n in range(args.rounds):
                server_cpu = cpu_seconds(server.proc.pid)
                client_cpu = time.process_time()
                started = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(send, bodies))
                uploaded = time.perf_counter() - started
                wait_all_indexed(url, headers, (n + 1) * args.images + 1, 3600)
                ingest_s = time.perf_counter() - started
                server_cpu = cpu_seconds(server.proc.pid) - server_cpu
                client_cpu = time.process_time() - client_cpu
                idle = cpu_seconds(server.proc.pid)
                bare.append(bare_loop(settings, payloads))  # the server idles meanwhile
                idle = cpu_seconds(server.proc.pid) - idle
                rate = args.images / ingest_s
                rounds.append(
                    {
                        "images_per_s": round(rate, 2),
                        "upload_s": round(uploaded, 2),
                        "to_indexed_s": round(ingest_s, 2),
                        "bare_before_after": [round(bare[n][0], 2), round(bare[n + 1][0], 2)],
                        "share_of_bare": round(rate / ((bare[n][0] + bare[n + 1][0]) / 2), 3),
                        "server_cpu_ms_per_image": round(1000 * server_cpu / args.images, 1),
                        "server_cores": round(server_cpu / ingest_s, 2),
                        "client_cpu_s": round(client_cpu, 2),
                        # what the idle server took during the bare loop after (should be ~0)
                        "server_cpu_s_during_bare_loop": round(idle, 2),
                    }
                )
                print(f"round {n + 1}: {rounds[-1]}", flush=True)

        seed_vectors(settings, "bench", args.vectors)

        with Server(data_dir, env) as server:
            url = server.url
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                for q in QUERIES:  # warm-up
                    client.post("/v1/images/search", json={"query": q})
                latencies = []
                for n in range(args.queries):
                    t = time.perf_counter()
                    r = client.post(
                        "/v1/images/search",
                        json={"query": QUERIES[n % len(QUERIES)], "max_results": 10},
                    )
                    latencies.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                status = client.get("/v1/status").json()

    lat = sorted(latencies)

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 3)

    result = {
        "model": status["model_id"],
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "ingest_images": args.images,
        # medians over the rounds; each round's share is against the bare loops either side
        "ingest_images_per_s": median("images_per_s"),
        "bare_loop_images_per_s": round(statistics.median(b[0] for b in bare), 2),
        "ingest_share_of_bare": median("share_of_bare"),
        "bare_loop_cpu_ms_per_image": round(statistics.median(b[1] for b in bare), 1),
        # CPU the server used while ingesting (cores: its average over the run) and what this
        # benchmark's own client took of the same cores
        "ingest_server_cpu_ms_per_image": median("server_cpu_ms_per_image"),
        "ingest_server_cores": median("server_cores"),
        "ingest_rounds": rounds,
        "indexed_vectors": status["indexed"],
        "search_queries": args.queries,
        "search_p50_ms": round(statistics.median(lat), 2),
        "search_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        if k != "ingest_rounds":
            print(f"{k:>30}: {v}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
