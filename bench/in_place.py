"""In-place indexing: what a re-run costs when little or nothing changed, against copying.

Makes a folder of N small photos, indexes it in place and (in another data directory) by
copying, then times re-runs: nothing changed; 10% moved, 10% changed and 10% deleted. The fake
model embeds (no inference cost), so the figures are the bookkeeping: walking, stat, reading
and hashing, recording. Prints the figures and writes bench/results/in_place.json.

    python bench/in_place.py [--files 500]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.cli.index import image_files  # noqa: E402
from viewfinder.config import Settings  # noqa: E402
from viewfinder.local_client import LocalClient  # noqa: E402


def _photo(n: int) -> bytes:
    """A 640x480 JPEG of noise: hundreds of KB, as photos are (a flat image is a few KB)."""
    rng = random.Random(n)
    im = Image.frombytes("RGB", (640, 480), rng.randbytes(640 * 480 * 3))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _in_place(data: Path, folder: Path) -> tuple[float, Any]:
    started = time.perf_counter()
    with LocalClient(Settings(data_dir=data, model="fake")) as local:
        report = local.index_in_place(image_files((folder,)), [folder.resolve()])
        local.process_queue()
    return time.perf_counter() - started, report


def _copy(data: Path, folder: Path) -> float:
    """The copying mode's work, as `viewfinder index` does it: read and hash every file,
    upload the unseen ones."""
    import hashlib

    started = time.perf_counter()
    with LocalClient(Settings(data_dir=data, model="fake")) as local:
        known = {im.sha256 for im in local.iter_images()}
        fresh = []
        for path in image_files((folder,)):
            data_bytes = path.read_bytes()
            if hashlib.sha256(data_bytes).hexdigest() not in known:
                fresh.append((path.name, data_bytes))
        for start in range(0, len(fresh), 32):
            local.upload(fresh[start : start + 32])
        local.process_queue()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "photos"
        for n in range(args.files):
            sub = folder / f"{n // 100:03}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{n:05}.jpg").write_bytes(_photo(n))
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.jpg")) / 1e6

        first_s, first = _in_place(root / "in-place", folder)
        copy_first_s = _copy(root / "copied", folder)
        rerun_s, rerun = _in_place(root / "in-place", folder)
        copy_rerun_s = _copy(root / "copied", folder)

        files = sorted(folder.rglob("*.jpg"))
        tenth = max(1, len(files) // 10)
        for path in files[:tenth]:
            path.rename(path.with_name("moved-" + path.name))
        for n, path in enumerate(files[tenth : 2 * tenth]):
            path.write_bytes(_photo(10**6 + n))
            later = time.time() + 5
            os.utime(path, (later, later))
        for path in files[2 * tenth : 3 * tenth]:
            path.unlink()
        churn_s, churn = _in_place(root / "in-place", folder)
        stored_mb = {
            name: round(
                sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file()) / 1e6, 1
            )
            for name in ("in-place", "copied")
        }

    results = {
        "files": args.files,
        "folder_mb": round(size_mb, 1),
        "model": "fake (no inference cost)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}",
        "data_dir_mb_in_place": stored_mb["in-place"],
        "data_dir_mb_copied": stored_mb["copied"],
        "in_place_first_s": round(first_s, 2),
        "copy_first_s": round(copy_first_s, 2),
        "in_place_rerun_unchanged_s": round(rerun_s, 2),
        "copy_rerun_unchanged_s": round(copy_rerun_s, 2),
        "in_place_rerun_10pct_moved_changed_deleted_s": round(churn_s, 2),
        "first": {"new": len(first.new), "failed": len(first.failures)},
        "rerun": {"unchanged": rerun.unchanged, "new": len(rerun.new)},
        "churn": {
            "moved": len(churn.moved),
            "changed": len(churn.changed),
            "removed": len(churn.removed),
            "unchanged": churn.unchanged,
        },
    }
    print(json.dumps(results, indent=2))
    out = ROOT / "bench" / "results" / "in_place.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
