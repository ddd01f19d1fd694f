"""Peak memory of a server while many uploads are read at once, by VIEWFINDER_UPLOAD_MEMORY_BYTES.

Starts a real server (fake model) for each budget, sends `--uploads` concurrent uploads of 16
file parts of 960 KiB (under Starlette's 1 MiB, so without the budget each upload keeps all
its parts in memory), and prints how much the server's peak RSS grew. Linux only (/proc).

    python bench/upload_memory.py                  # budgets 0, 256 MiB (default), 16 GiB
    python bench/upload_memory.py --uploads 64

Writes bench/results/upload_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.server import Server, cli  # noqa: E402

PARTS, PART_BYTES = 16, 960 * 1024


def _bytes(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def run(budget: int, uploads: int) -> dict[str, object]:
    data_dir = Path(tempfile.mkdtemp(prefix="vf-upload-memory-")) / "data"
    env = {"VIEWFINDER_MODEL": "fake", "VIEWFINDER_UPLOAD_MEMORY_BYTES": str(budget)}
    key = cli(data_dir, "keys", "create", "bench", env=env).strip()
    # PNG-looking parts that fail alone, fast: what matters is how their bytes are held
    files = [
        ("images", (f"{n}.png", b"\x89PNG\r\n\x1a\n" + os.urandom(PART_BYTES), "image/png"))
        for n in range(PARTS)
    ]
    limits = httpx.Limits(max_connections=uploads)
    with (
        Server(data_dir, env) as server,
        httpx.Client(base_url=server.url, timeout=300, limits=limits) as http,
    ):
        assert server.proc is not None
        pid = server.proc.pid

        def upload(_: int) -> int:
            r = http.post("/v1/images/upload", headers={"X-Api-Key": key}, files=files)
            return r.status_code

        upload(0)  # warm: code paths loaded, pools started
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _bytes(pid, "VmRSS")
        with ThreadPoolExecutor(uploads) as pool:
            statuses = sorted(set(pool.map(upload, range(uploads))))
        growth = _bytes(pid, "VmHWM") - before
    return {
        "budget_mib": budget / 2**20,
        "uploads": uploads,
        "upload_mib": PARTS * PART_BYTES / 2**20,
        "statuses": statuses,
        "peak_rss_growth_mib": round(growth / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=32)
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[0, 256 * 2**20, 16 * 2**30], help="bytes"
    )
    args = parser.parse_args()
    rows = []
    for budget in args.budgets:
        row = run(budget, args.uploads)
        rows.append(row)
        print(
            f"budget {row['budget_mib']:8.0f} MiB: {args.uploads} concurrent uploads of "
            f"{row['upload_mib']:.0f} MiB, answers {row['statuses']}, peak RSS "
            f"+{row['peak_rss_growth_mib']:.0f} MiB",
            flush=True,
        )
    out = ROOT / "bench" / "results" / "upload_memory.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
