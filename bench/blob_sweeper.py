"""Benchmark: what the blob references cost an upload, and how fast the sweeper removes bytes.

    python bench/blob_sweeper.py [--images 2000] [--per-request 10]

In process, on the embedded stores (or the ones VIEWFINDER_DATABASE_URL / _BLOB_URL name), with
the fake model: uploads --images distinct small PNGs in requests of --per-request, times the
holds alone (one transaction each, what an upload adds per image), deletes every image, then
times one sweep pass past the grace period. Prints the figures and writes
bench/results/blob_sweeper.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viewfinder.bootstrap import blob_sweeper, build_service  # noqa: E402
from viewfinder.config import Settings  # noqa: E402
from viewfinder.domain.records import UploadItem  # noqa: E402
from viewfinder.embedders.fake import FakeEmbedder  # noqa: E402
from viewfinder.stores.factory import is_multi_process  # noqa: E402


def png(n: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (n % 256, (n // 256) % 256, (n // 65536) % 256)).save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--per-request", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", model="fake")
        service = build_service(settings, embedder=FakeEmbedder())
        service.start(single_process=not is_multi_process(settings))
        try:
            pictures = [png(n) for n in range(args.images)]
            start = time.perf_counter()
            records = []
            for i in range(0, len(pictures), args.per_request):
                items = [
                    UploadItem(data=d, index=False) for d in pictures[i : i + args.per_request]
                ]
                records += service.upload("bench", items)
            upload_s = time.perf_counter() - start

            start = time.perf_counter()
            for n in range(args.images):  # what holding adds to an upload, alone
                service.metadata.hold_blob(f"bench-{n}", records[n].sha256 or "", time.time())
            hold_s = time.perf_counter() - start

            start = time.perf_counter()
            for r in records:
                service.delete("bench", r.image_id)
            delete_s = time.perf_counter() - start

            sweeper = blob_sweeper(settings, service)
            start = time.perf_counter()
            report = sweeper.sweep_once(now=time.time() + settings.blob_grace_s + 1)
            sweep_s = time.perf_counter() - start
            assert report.removed == args.images, report
        finally:
            service.close()
    figures = {
        "images": args.images,
        "per_request": args.per_request,
        "metadata": settings.resolved_database_url().split(":")[0],
        "blobs": settings.resolved_blob_url().split(":")[0],
        "upload_images_per_s": round(args.images / upload_s, 1),
        "hold_ms_per_image": round(1000 * hold_s / args.images, 3),
        "hold_share_of_upload": round(hold_s / upload_s, 3),
        "delete_per_s": round(args.images / delete_s, 1),
        "sweep_removed_per_s": round(report.removed / sweep_s, 1),
        "sweep_pass_s": round(sweep_s, 3),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    for name, value in figures.items():
        print(f"{name:>22}: {value}")
    out = ROOT / "bench" / "results" / "blob_sweeper.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
