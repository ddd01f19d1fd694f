"""Start-up time and memory of an API process against a large shared store.

    python bench/api_startup.py [--rows 1000000] [--vectors milvus|none] [--model fake]
                                 [--milvus-url milvus://HOST:19530/PREFIX]

Starts a throwaway PostgreSQL (and the Milvus Lite gRPC server, the suite's stand-in for a
Milvus server), seeds `--rows` indexed image rows directly with COPY (and as many vectors,
keyed by the same ids, so that nothing needs repairing), then starts a real
`viewfinder serve --workers 0` and measures the time from process start to the first
`/readyz` 200, and the process's RSS then (and its peak, VmHWM). The same is measured on an
empty database for comparison. With vectors, it then times `--queries` searches over HTTP
(p50/p95, the fake model's query embedding included), `/v1/status`, and measures recall@10 of
what the server answers against an exact numpy top-10 over the very vectors it seeded (Milvus
searches its HNSW index: `VIEWFINDER_MILVUS_INDEX_TYPE`, default HNSW).
With `--vectors none` the vectors are an empty embedded index instead (the metadata side
alone: indexed rows whose vectors are missing get re-queued, so that run writes too).
Prints the figures and writes bench/results/api_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.contract.services import MilvusServer, PostgresServer, free_port  # noqa: E402
from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.stores.factory import open_metadata, open_vectors  # noqa: E402

DIM = 32  # the fake model's: the bench is about the stores, not the model
CHUNK = 50_000


def image_id(n: int) -> str:
    return str(uuid.UUID(int=n))


def seed_rows(url: str, rows: int) -> float:
    """COPY `rows` indexed images (one tenant) into a migrated database; returns seconds."""
    import psycopg

    started = time.perf_counter()
    columns = (
        "image_id, tenant, status, upload_ts, metadata, sha256, content_type, size_bytes, "
        "width, height, file_name"
    )
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY images ({columns}) FROM STDIN") as copy:
            for n in range(rows):
                copy.write_row(
                    (
                        image_id(n), "acme", 2, 1.7e9 + n, '{"caption": "a photo"}',
                        f"{n:064x}", "image/jpeg", 123456, 640, 480, f"img{n}.jpg",
                    )
                )  # fmt: skip
        cur.execute("ANALYZE images")
    return time.perf_counter() - started


def seeded_vectors(rows: int) -> np.ndarray:
    """The vectors `seed_vectors` writes, in id order (the same generator, chunk by chunk)."""
    rng = np.random.default_rng(0)
    parts = [
        l2_normalize(rng.standard_normal((min(CHUNK, rows - s), DIM)).astype(np.float32))
        for s in range(0, rows, CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, DIM), np.float32)


QUERIES = [f"query number {n}: a photo of something" for n in range(100)]


def search_figures(url: str, key: str, rows: int, queries: int) -> dict[str, Any]:
    """Search latency and recall@10 over HTTP against the exact top-10 of the seeded vectors."""
    from viewfinder.config import Settings  # noqa: PLC0415
    from viewfinder.embedders.factory import load_embedder  # noqa: PLC0415

    texts = [QUERIES[n % len(QUERIES)] for n in range(queries)]
    embedder = load_embedder(Settings(data_dir=Path(tempfile.mkdtemp()), model="fake"))
    wanted = {}
    vectors = seeded_vectors(rows)
    for text, q in zip(QUERIES, l2_normalize(embedder.embed_texts(QUERIES)), strict=True):
        top = np.argpartition(-(vectors @ q), 10)[:10]
        wanted[text] = {image_id(int(n)) for n in top}
    del vectors
    latencies, status, hits = [], [], 0.0
    with httpx.Client(base_url=url, headers={"X-Api-Key": key}, timeout=60) as client:
        for text in QUERIES[:5]:  # warm-up
            client.post("/v1/images/search", json={"query": text, "max_results": 10})
        for text in texts:
            started = time.perf_counter()
            answer = client.post("/v1/images/search", json={"query": text, "max_results": 10})
            latencies.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            got = {r["image_id"] for r in answer.json()["results"]}
            hits += len(got & wanted[text]) / 10
        for _ in range(50):
            started = time.perf_counter()
            client.get("/v1/status").raise_for_status()
            status.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "search_p50_ms": round(float(np.median(latencies)), 2),
        "search_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "recall10": round(hits / len(texts), 4),
        "status_p50_ms": round(float(np.median(status)), 2),
    }


def seed_vectors(url: str, rows: int) -> float:
    """Upsert `rows` vectors keyed like the image rows; returns seconds."""
    started = time.perf_counter()
    index = open_vectors(url)
    index.open("fake-32", DIM, "fake")
    rng = np.random.default_rng(0)
    try:
        for start in range(0, rows, CHUNK):
            ids = [image_id(n) for n in range(start, min(rows, start + CHUNK))]
            vectors = l2_normalize(rng.standard_normal((len(ids), DIM)).astype(np.float32))
            index.upsert(ids, ["acme"] * len(ids), vectors)
            print(f"  vectors: {start + len(ids)}/{rows}", file=sys.stderr)
    finally:
        index.close()
    return time.perf_counter() - started


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def start_api(
    env: dict[str, str],
    data_dir: Path,
    timeout_s: float,
    measure: Callable[[str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Start `serve --workers 0`, wait for /readyz 200, measure (then `measure(url)`), stop."""
    port = free_port()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"api-{port}.log"
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "viewfinder.cli", "serve", "--workers", "0", "--port",
             str(port), "--data-dir", str(data_dir)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
        )  # fmt: skip
    try:
        deadline = started + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited:\n{log.read_text()[-3000:]}")
            if time.perf_counter() > deadline:
                rss, peak = memory_mb(proc.pid)
                return {"ready_s": None, "gave_up_after_s": timeout_s, "rss_mb": round(rss, 1),
                        "peak_rss_mb": round(peak, 1)}  # fmt: skip
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        ready_s = time.perf_counter() - started
        rss, peak = memory_mb(proc.pid)
        found = {
            "ready_s": round(ready_s, 2),
            "rss_mb": round(rss, 1),
            "peak_rss_mb": round(peak, 1),
        }
        if measure is not None:
            found["search"] = measure(f"http://127.0.0.1:{port}")
            found["search"]["rss_mb_after"] = round(memory_mb(proc.pid)[0], 1)
        return found
    finally:
        proc.terminate()
        proc.wait(60)


ID_SCAN = """
import json, resource, sys, time
from viewfinder.domain.records import IndexingStatus
from viewfinder.stores.factory import open_metadata
store = open_metadata(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
ids = store.image_ids_with_status(IndexingStatus.INDEXED)
took = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
added = round((after - before) / 1024)
print(json.dumps({"ids": len(ids), "s": round(took, 2), "peak_mb_added": added}))
"""


VECTOR_OPEN = """
import sys, time
from viewfinder.stores.factory import open_vectors
started = time.perf_counter()
index = open_vectors(sys.argv[1])
index.open("fake-32", 32, "fake")
print(round(time.perf_counter() - started, 2))
"""


def vector_open_s(url: str) -> float:
    """How long opening (and, for Milvus, loading) the vector index takes a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", VECTOR_OPEN, url], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def id_scan(database: str) -> dict[str, Any]:
    """What reading every indexed image id (the metadata half of a reconcile) costs a process."""
    out = subprocess.run(
        [sys.executable, "-c", ID_SCAN, database], capture_output=True, text=True, check=True
    )
    found: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--vectors", choices=["milvus", "none"], default="milvus")
    parser.add_argument("--model", default="fake")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--milvus-url",
        help="a real Milvus server (milvus://host:19530/COLLECTION-PREFIX) instead of Milvus Lite; "
        "each run gets its own collection",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vf-api-startup-"))
    postgres = PostgresServer().start()
    milvus = (
        MilvusServer(work).start() if args.vectors == "milvus" and not args.milvus_url else None
    )
    results: dict[str, Any] = {
        "rows": args.rows,
        "vectors": args.milvus_url or args.vectors,
        "model": args.model,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
    }
    try:
        runs: dict[str, Any] = {}
        for label, rows in (("empty", 0), (f"{args.rows}", args.rows)):
            database = postgres.database()
            store = open_metadata(database)
            store.migrate()
            store.close()
            if args.milvus_url:
                vector_url = f"{args.milvus_url.rstrip('/')}_{label}_{uuid.uuid4().hex[:8]}"
            elif milvus:
                vector_url = milvus.url()
            else:
                vector_url = f"exact://{work / label / 'vectors.db'}"
            shared = bool(milvus or args.milvus_url)
            seeded = {"rows_s": round(seed_rows(database, rows), 1)}
            if shared and rows:
                seeded["vectors_s"] = round(seed_vectors(vector_url, rows), 1)
            env = {
                "VIEWFINDER_DATABASE_URL": database,
                "VIEWFINDER_VECTOR_URL": vector_url,
                "VIEWFINDER_BLOB_URL": f"file://{work / 'blobs'}",
                "VIEWFINDER_MODEL": args.model,
                "VIEWFINDER_SECRET_KEY": "bench",
                "VIEWFINDER_LOG_LEVEL": "warning",
            }
            measure = None
            if shared and rows:
                key = subprocess.run(
                    [sys.executable, "-m", "viewfinder.cli", "keys", "create", "acme",
                     "--data-dir", str(work / label / "data")],
                    capture_output=True, text=True, check=True, env={**os.environ, **env},
                ).stdout.strip().splitlines()[-1]  # fmt: skip

                def measure(url: str, key: str = key, rows: int = rows) -> dict[str, Any]:
                    return search_figures(url, key, rows, args.queries)

            measured = start_api(env, work / label / "data", args.timeout, measure)
            runs[label] = {**measured, "seed": seeded}
            if "search" in measured:
                print(f"  search over HTTP: {measured['search']}")
            ready = measured["ready_s"]
            print(
                f"{rows:>9} rows: "
                + (f"ready in {ready:.2f} s" if ready else f"NOT ready after {args.timeout:g} s")
                + f", RSS {measured['rss_mb']:.0f} MiB (peak {measured['peak_rss_mb']:.0f} MiB)"
            )
            runs[label]["vector_open_s"] = vector_open_s(vector_url)
            print(f"  (opening the vector index alone: {runs[label]['vector_open_s']:.1f} s)")
            if rows:
                scan = id_scan(database)
                runs[label]["indexed_id_scan"] = scan
                print(
                    f"  (reading the {scan['ids']} indexed ids, as a reconcile does: "
                    f"{scan['s']:.1f} s, +{scan['peak_mb_added']} MiB peak)"
                )
        results["runs"] = runs
    finally:
        if milvus:
            milvus.stop()
        postgres.stop()
    out = ROOT / "bench" / "results" / "api_startup.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
