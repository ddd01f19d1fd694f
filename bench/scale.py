"""Scale benchmark: search, start-up, memory and writes at 10k, 100k and 1M vectors.

    python bench/scale.py [--sizes 10k,100k,1M,1000x1000] [--queries 200] [--model builtin]

For each size: seeds a data directory through the store API (metadata rows marked indexed
and clustered unit vectors, like image embeddings: about 200 vectors a cluster, the clusters
centred on mixtures of the model's own embeddings of short scene descriptions, so that a text
query has real neighbours as it does among photos), waits for the
embedded index to build its HNSW graphs, then starts a real `viewfinder serve` and measures
start-up (process start to answering), search over HTTP (query embedding included), RSS,
`/v1/status`, and, through the index API, an upsert of 16 and a delete. The same data is then
served with the graph turned off (`VIEWFINDER_VECTOR_ANN_THRESHOLD=0`, exact scans): those
figures go under "exact". recall@10 is measured in-process: graph top-10 against exact top-10
over queries drawn like the data, and over the text queries' embeddings.
`1000x1000` is 1000 tenants of 1000 vectors each, searched as one of them.
Prints the figures and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server, cli  # noqa: E402
from viewfinder.bootstrap import build_service  # noqa: E402
from viewfinder.config import Settings  # noqa: E402
from viewfinder.domain.records import ImageRecord, IndexingStatus  # noqa: E402
from viewfinder.embedders.base import l2_normalize  # noqa: E402
from viewfinder.stores.exact_vectors import ExactVectorIndex  # noqa: E402

SIZES = {"10k": (1, 10_000), "100k": (1, 100_000), "1M": (1, 1_000_000), "1000x1000": (1000, 1000)}
QUERIES = [
    "a dog playing in the snow", "a red car parked at night", "people eating pizza",
    "a cat on a sofa", "a man riding a surfboard", "a plate of food", "a city street",
    "a train at a station", "an airplane in the sky", "a kitchen with a stove",
    "children playing football", "a bowl of fruit", "a bus on a rainy road", "two horses",
    "a laptop on a desk", "a boat on a lake", "a bedroom with a large bed", "a giraffe",
    "a person skiing down a slope", "a clock tower",
]  # fmt: skip
CLUSTER = 200  # vectors per cluster
BATCH = 10_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SUBJECTS = [
    "a dog", "a cat", "a man", "a woman", "children", "a car", "a bus", "a train", "a bicycle",
    "a horse", "a boat", "an airplane", "a pizza", "a plate of food", "a bowl of fruit",
    "a laptop", "a bed", "a sofa", "a clock tower", "a giraffe", "an elephant", "a bird",
    "a surfer", "a skier", "a football player", "a kitchen", "a street", "a field of flowers",
]  # fmt: skip
SETTINGS = [
    "in the snow", "at night", "on a beach", "in a city", "in a kitchen", "in a park",
    "on a table", "in the rain", "in a field", "indoors", "by the water", "on a road",
]  # fmt: skip


def scene_vectors(settings: Settings) -> np.ndarray:
    """The model's embeddings of short scene descriptions (subject x setting)."""
    from viewfinder.embedders.factory import load_embedder  # noqa: PLC0415

    phrases = [f"{s} {w}" for s in SUBJECTS for w in SETTINGS]
    return l2_normalize(load_embedder(settings).embed_texts(phrases)).astype(np.float32)


class Data:
    """Clustered unit vectors, made batch by batch (the same for the same seed and basis).

    Each cluster centre mixes two scene embeddings (`basis`) with some noise, as an image
    vector mixes what the photo shows; without a basis the centres are random directions."""

    def __init__(self, total: int, dim: int, seed: int = 0, basis: np.ndarray | None = None):
        rng = np.random.default_rng(seed)
        self.dim = dim
        n = max(1, total // CLUSTER)
        noise = rng.standard_normal((n, dim)) / np.sqrt(dim)
        if basis is None:
            self.centres = l2_normalize(noise)
        else:
            a, b = rng.integers(0, len(basis), n), rng.integers(0, len(basis), n)
            mix = basis[a] + rng.uniform(0.2, 0.8, (n, 1)) * basis[b]
            self.centres = l2_normalize(l2_normalize(mix) + 0.5 * noise)
        self.rng = np.random.default_rng(seed + 1)

    def batch(self, n: int, spread: float = 0.06) -> np.ndarray:
        which = self.rng.integers(0, len(self.centres), n)
        noise = self.rng.standard_normal((n, self.dim)).astype(np.float32)
        return l2_normalize(self.centres[which] + spread * noise).astype(np.float32)


def seed(settings: Settings, tenants: int, per_tenant: int) -> tuple[float, float, int]:
    """Fill the stores; return (seconds seeding, seconds building graphs, dim)."""
    service = build_service(settings)
    service.start()
    dim = service.embedder.dim
    basis = scene_vectors(settings)
    np.save(settings.data_dir / "scene_basis.npy", basis)
    data = Data(tenants * per_tenant, dim, basis=basis)
    started = time.perf_counter()
    names = [f"tenant-{t:04}" for t in range(tenants)] if tenants > 1 else ["bench"]
    total = tenants * per_tenant
    for start in range(0, total, BATCH):
        n = min(BATCH, total - start)
        ids = [str(uuid.uuid4()) for _ in range(n)]
        owners = [names[(start + k) % tenants] for k in range(n)]  # tenants interleaved
        now = time.time()
        service.metadata.insert_images(
            [
                ImageRecord(
                    image_id=i,
                    tenant=t,
                    status=IndexingStatus.INDEXED,
                    upload_timestamp=now,
                    metadata={"seeded": True},
                )
                for i, t in zip(ids, owners, strict=True)
            ]
        )
        service.vectors.upsert(ids, owners, data.batch(n))
        if (start // BATCH) % 10 == 9:
            print(f"  seeded {start + n}/{total}", flush=True)
    seeded = time.perf_counter() - started
    vectors = service.vectors
    assert isinstance(vectors, ExactVectorIndex)
    vectors.wait_for_builds()
    built = time.perf_counter() - started - seeded
    service.close()
    return seeded, built, dim


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_and_measure(
    data_dir: Path, env: dict[str, str], key: str, queries: int
) -> dict[str, float]:
    """Start a server on the data directory and time what the issue asks for."""
    server = Server(data_dir, env)
    started = time.perf_counter()
    server.start(timeout_s=600)
    headers = {"X-Api-Key": key}
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
        answer = client.get("/v1/status")
        startup = time.perf_counter() - started
        answer.raise_for_status()
        if answer.json().get("switch"):  # the model changed since seeding: searches go elsewhere
            server.stop()
            raise SystemExit(f"{data_dir}: the server switches models; seed it again")
        t = time.perf_counter()
        client.post("/v1/images/search", json={"query": QUERIES[0]}).raise_for_status()
        first = (time.perf_counter() - t) * 1000
        for q in QUERIES:  # warm-up
            client.post("/v1/images/search", json={"query": q, "max_results": 10})
        latencies = []
        for n in range(queries):
            t = time.perf_counter()
            r = client.post(
                "/v1/images/search", json={"query": QUERIES[n % len(QUERIES)], "max_results": 10}
            )
            latencies.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
        status = []
        for _ in range(50):
            t = time.perf_counter()
            client.get("/v1/status").raise_for_status()
            status.append((time.perf_counter() - t) * 1000)
        assert server.proc is not None
        rss = rss_mb(server.proc.pid)
    server.stop()
    return {
        "search_p50_ms": round(statistics.median(latencies), 2),
        "search_p95_ms": round(percentile(latencies, 0.95), 2),
        "first_search_ms": round(first, 1),
        "rss_mb": round(rss, 1),
        "startup_s": round(startup, 2),
        "status_p50_ms": round(statistics.median(status), 2),
    }


def writes(path: Path, dim: int, tenant: str, threshold: int) -> dict[str, float]:
    """p50 of an upsert of 16 and of a delete of one, through the index API."""
    index = ExactVectorIndex(path, ann_threshold=threshold)
    model = index.stored_model()
    assert model is not None
    dim = model.dim
    index.open(model.model_id, dim)
    data = Data(1000, dim, seed=5)
    upserts, deletes, added = [], [], []
    for _ in range(30):
        ids = [f"bench-{uuid.uuid4()}" for _ in range(16)]
        t = time.perf_counter()
        index.upsert(ids, [tenant] * 16, data.batch(16))
        upserts.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        index.delete(ids[:1])
        deletes.append((time.perf_counter() - t) * 1000)
        added += ids[1:]
    index.delete(added)  # a kept directory is measured on the same rows next time
    index.close()
    return {
        "upsert16_ms": round(statistics.median(upserts), 2),
        "delete_ms": round(statistics.median(deletes), 2),
    }


def drop_leftovers(path: Path, threshold: int) -> int:
    """Remove the rows `writes` of earlier runs left in a kept directory (runs before it
    deleted its own), and wait for any graph merge that makes due; returns how many."""
    index = ExactVectorIndex(path, ann_threshold=threshold)
    model = index.stored_model()
    assert model is not None
    index.open(model.model_id, model.dim)
    leftovers = [i for i in index.ids() if i.startswith("bench-")]
    if leftovers:
        index.delete(leftovers)
        index.wait_for_builds()
    index.close()
    return len(leftovers)


def recall(path: Path, settings: Settings, dim: int, tenant: str, total: int) -> dict[str, float]:
    """recall@10 of the graph against the exact scan, and the index-only latencies."""
    approx = ExactVectorIndex(path, ann_threshold=settings.vector_ann_threshold)
    exact = ExactVectorIndex(path, ann_threshold=0)
    model = approx.stored_model()
    assert model is not None
    dim = model.dim
    for index in (approx, exact):
        index.open(model.model_id, dim)
    from viewfinder.embedders.factory import load_embedder  # noqa: PLC0415

    embedder = load_embedder(settings)
    text = l2_normalize(embedder.embed_texts(QUERIES))
    basis = np.load(settings.data_dir / "scene_basis.npy")
    drawn = Data(total, dim, basis=basis).batch(200, spread=0.07)  # near the data's clusters
    out: dict[str, float] = {}
    for name, queries in (("recall10", drawn), ("recall10_text_queries", text)):
        hits, t_approx, t_exact = 0.0, [], []
        for q in queries:
            t = time.perf_counter()
            got = approx.search(tenant, q, 10)
            t_approx.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            want = exact.search(tenant, q, 10)
            t_exact.append((time.perf_counter() - t) * 1000)
            hits += len({i for i, _ in got} & {i for i, _ in want}) / max(1, len(want))
        out[name] = round(hits / len(queries), 4)
        if name == "recall10":
            out["index_search_p50_ms"] = round(statistics.median(t_approx), 2)
            out["exact_index_search_p50_ms"] = round(statistics.median(t_exact), 2)
    out["graphs"] = len(approx._ann)  # noqa: SLF001 - reported, not used
    for index in (approx, exact):
        index.close()
    return out


def run_size(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    tenants, per_tenant = SIZES[name]
    data_dir = root / name
    env = {
        "VIEWFINDER_MODEL": args.model,
        "VIEWFINDER_LOG_LEVEL": "warning",
        "VIEWFINDER_WORKERS": "1",
    }
    tenant = "tenant-0007" if tenants > 1 else "bench"
    settings = Settings(data_dir=data_dir, model=args.model)
    done = data_dir / "seeded.json"
    if done.exists():  # a kept data directory: measure it again
        key, seeded_s, build_s, dim = json.loads(done.read_text())
        print(f"{name}: reusing {data_dir}", flush=True)
        dropped = drop_leftovers(data_dir / "vectors.db", settings.vector_ann_threshold)
        if dropped:
            print(f"{name}: removed {dropped} rows earlier runs left", flush=True)
    elif args.exact_only and (data_dir / "vectors.db").exists():  # seeded, graph unfinished
        key = cli(data_dir, "keys", "create", tenant, env=env).strip()
        seeded_s, build_s, dim = 0.0, 0.0, 0
    else:
        key = cli(data_dir, "keys", "create", tenant, env=env).strip()
        print(f"{name}: seeding {tenants * per_tenant} vectors", flush=True)
        seeded_s, build_s, dim = seed(settings, tenants, per_tenant)
        done.write_text(json.dumps([key, seeded_s, build_s, dim]))
    print(f"{name}: seeded in {seeded_s:.0f} s, graphs built in {build_s:.0f} s", flush=True)
    path = data_dir / "vectors.db"
    result: dict[str, Any] = {"vectors": tenants * per_tenant, "tenants": tenants}
    if not args.exact_only:
        result.update(serve_and_measure(data_dir, env, key, args.queries))
        result.update(recall(path, settings, dim, tenant, tenants * per_tenant))
        result.update(writes(path, dim, tenant, settings.vector_ann_threshold))
    exact_env = {**env, "VIEWFINDER_VECTOR_ANN_THRESHOLD": "0"}
    exact = serve_and_measure(data_dir, exact_env, key, args.queries)
    exact.update(writes(path, dim, tenant, 0))
    exact["recall10"] = 1.0
    result["exact"] = exact
    result["seed_s"] = None if args.exact_only else round(seeded_s, 1)
    result["graph_build_s"] = None if args.exact_only else round(build_s, 1)
    result["ann_threshold"] = settings.vector_ann_threshold
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M,1000x1000")
    parser.add_argument("--model", default=os.environ.get("VIEWFINDER_MODEL", "builtin"))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument(
        "--exact-only",
        action="store_true",
        help="measure the scans only (e.g. on a kept directory whose graph is unfinished)",
    )
    parser.add_argument(
        "--keep", type=Path, help="keep the data directories here (and reuse them next time)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}: choose from {list(SIZES)}")
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
    results["model"] = args.model
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        for name in sizes:
            results[name] = run_size(name, args, root)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            show(name, results[name])
    print(f"written to {args.out}")


def show(name: str, r: dict[str, Any]) -> None:
    r = {**r}
    for k in list(r["exact"]):
        r.setdefault(k, "-")
    keys = [
        "search_p50_ms", "search_p95_ms", "recall10", "rss_mb", "startup_s", "status_p50_ms",
        "upsert16_ms", "delete_ms",
    ]  # fmt: skip
    print(f"\n{name:>10} {'graph':>10} {'exact':>10}")
    for k in keys:
        print(f"{k:>22} {r[k]!s:>10} {r['exact'][k]!s:>10}")
    for k in ("recall10_text_queries", "index_search_p50_ms", "exact_index_search_p50_ms",
              "first_search_ms", "seed_s", "graph_build_s"):  # fmt: skip
        print(f"{k:>22} {r.get(k, '-')!s:>10}")


if __name__ == "__main__":
    main()
