"""A new user's first minutes with the built-in model, timed as they would meet them.

    python bench/first_run.py [--searches 5] [--skip-fallback] [--search-only]

Every figure comes from fresh `viewfinder` processes over a model cache (VIEWFINDER_CACHE_DIR)
in a temporary directory, never the user's own:

- first build: a process loads the built-in model with an empty cache (what `serve`, `index`
  or `mcp` do first on a new machine); and the build a machine pays when its text-tower
  packages differ from those the shipped class table was made with (the fallback);
- a second data directory: the same load for another data directory once the cache is built,
  and `viewfinder serve` until it answers on a new data directory against a restart on a
  directory it already knows;
- MCP: `viewfinder mcp` on a new data directory and an empty cache, until `initialize` and
  `list_tools` answer, and until the first search answers (that one waits for the model);
- local search: `viewfinder search` on an indexed data directory, once the cache exists, with
  Python's bytecode cached as an installed package has it (pip compiles it at install time;
  PYTHONDONTWRITEBYTECODE would have every run compile the package again): one search untimed
  to write it, then `--searches` timed ones (`--search-only`: this figure alone).

Wall times on a shared machine vary with its load (printed alongside); CPU seconds are what
the work costs. Prints the figures and writes bench/results/first_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server  # noqa: E402

COCO = ROOT.parent / "shared" / "data" / "coco_mini" / "images"

LOAD = """
import json, time
t = time.perf_counter()
from viewfinder.bootstrap import warm_up
from viewfinder.config import Settings
from viewfinder.embedders.factory import load_embedder
model = load_embedder(Settings())
loaded = time.perf_counter()
warm_up(model)
print(json.dumps({"import_s": loaded - t, "load_s": time.perf_counter() - loaded}))
"""

FALLBACK = """
import json, sys, time
from pathlib import Path
from viewfinder.embedders.builtin.cache import ModelCache
from viewfinder.embedders.builtin.class_table import load_class_table
t = time.perf_counter()
load_class_table("minilm", 384, ModelCache(Path(sys.argv[1])), shipped=Path(sys.argv[2]))
print(json.dumps({"fallback_s": time.perf_counter() - t}))
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of a command, and its stdout."""
    cpu, started = children_cpu(), time.perf_counter()
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, children_cpu() - cpu, out.stdout


def viewfinder(*args: str) -> list[str]:
    return [sys.executable, "-m", "viewfinder.cli", *args]


def first_build(env: dict[str, str]) -> dict[str, float]:
    """A fresh process loading the model named by `env` (building what its cache lacks)."""
    wall, cpu, out = run([sys.executable, "-c", LOAD], env)
    inner = json.loads(out)
    return {
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2),
        "model_load_s": round(inner["load_s"], 2),
    }


def fallback_build(work: Path, env: dict[str, str]) -> dict[str, float]:
    empty = work / "no-shipped-tables"
    empty.mkdir()
    wall, cpu, out = run([sys.executable, "-c", FALLBACK, str(work / "fallback"), str(empty)], env)
    return {
        "class_table_s": round(json.loads(out)["fallback_s"], 2),
        "process_cpu_s": round(cpu, 2),
    }


def serve_start(data_dir: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from starting `viewfinder serve` until it answers HTTP, and the CPU seconds
    of the whole process (start, one answer, stop)."""
    server = Server(data_dir, env)
    cpu, started = children_cpu(), time.perf_counter()
    server.start(timeout_s=300)
    wall = time.perf_counter() - started
    server.stop()
    return wall, children_cpu() - cpu


async def mcp_session(data_dir: Path, env: dict[str, str], errlog: Path) -> dict[str, float]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "viewfinder.cli", "mcp", "--data-dir", str(data_dir)],
        env=env,
    )
    times: dict[str, float] = {}
    started = time.perf_counter()
    with errlog.open("w") as err:
        async with (
            stdio_client(params, errlog=err) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            times["initialize_s"] = time.perf_counter() - started
            await session.list_tools()
            times["list_tools_s"] = time.perf_counter() - started
            await session.call_tool("search_images", {"query": "a zebra"})
            times["first_search_s"] = time.perf_counter() - started
    return {k: round(v, 2) for k, v in times.items()}


def local_search(data_dir: Path, env: dict[str, str], n: int) -> dict[str, float]:
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(data_dir.parent / "pycache")
    search = viewfinder("search", "a zebra", "--data-dir", str(data_dir))
    run(search, env)  # writes the bytecode
    walls, cpus = [], []
    for _ in range(n):
        wall, cpu, _ = run(search, env)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "wall_median_s": round(statistics.median(walls), 2),
        "wall_min_s": round(min(walls), 2),
        "cpu_median_s": round(statistics.median(cpus), 2),
        "cpu_min_s": round(min(cpus), 2),
    }


def indexed_data_dir(work: Path, env: dict[str, str], images: int) -> Path:
    """A data directory holding `images` coco_mini photos (building the model if need be)."""
    folder = work / "photos"
    folder.mkdir()
    for p in sorted(COCO.glob("*.jpg"))[:images]:
        shutil.copy(p, folder / p.name)
    data = work / "data-search"
    run(viewfinder("index", str(folder), "--data-dir", str(data)), env)
    return data


def startup(work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    """The build, serve and MCP figures."""
    figures: dict[str, Any] = {}
    figures["first_build"] = first_build(env)
    print(f"first build (empty cache):     {figures['first_build']}", flush=True)
    other = {**env, "VIEWFINDER_DATA_DIR": str(work / "another")}
    figures["second_data_dir_load"] = first_build(other)  # the cache is built now
    print(f"another data dir's model load: {figures['second_data_dir_load']}", flush=True)
    if not args.skip_fallback:
        figures["fallback_build"] = fallback_build(work, env)
        print(f"class table, computed:         {figures['fallback_build']}", flush=True)

    new_dirs, known = [], []
    for i in range(args.serves):  # a new directory, then the same one restarted
        new_dirs.append(serve_start(work / f"data-new-{i}", env))
        known.append(serve_start(work / f"data-new-{i}", env))

    def median(runs: list[tuple[float, float]], i: int) -> float:
        return round(statistics.median(r[i] for r in runs), 2)

    figures["serve_start"] = {
        "new_data_dir_wall_s": median(new_dirs, 0),
        "known_data_dir_wall_s": median(known, 0),
        "new_data_dir_cpu_s": median(new_dirs, 1),
        "known_data_dir_cpu_s": median(known, 1),
        "new_data_dir_adds_cpu_s": round(median(new_dirs, 1) - median(known, 1), 2),
    }
    print(f"serve until it answers:        {figures['serve_start']}", flush=True)

    mcp_env = {**env, "VIEWFINDER_CACHE_DIR": str(work / "mcp-cache")}  # empty: builds
    figures["mcp_empty_cache"] = anyio.run(
        mcp_session, work / "data-mcp", mcp_env, work / "mcp.log"
    )
    print(f"mcp, empty cache:              {figures['mcp_empty_cache']}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=5, help="local searches to time")
    parser.add_argument("--images", type=int, default=10, help="coco_mini photos to index")
    parser.add_argument("--serves", type=int, default=3, help="serve starts of each kind")
    parser.add_argument(
        "--skip-fallback", action="store_true", help="do not time the class table's build"
    )
    parser.add_argument(
        "--search-only", action="store_true", help="time only the local search (and index first)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="viewfinder-first-run-"))
    try:
        env = {
            **os.environ,
            "VIEWFINDER_CACHE_DIR": str(work / "cache"),
            "VIEWFINDER_MODEL": "builtin",
            "VIEWFINDER_DATA_DIR": str(work / "unused"),
        }
        results: dict[str, Any] = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            }
        }
        if not args.search_only:
            results.update(startup(work, env, args))
        data = indexed_data_dir(work, env, args.images)
        results["local_search"] = local_search(data, env, args.searches)
        print(f"viewfinder search:             {results['local_search']}", flush=True)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = ROOT / "bench" / "results" / "first_run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
