"""SIGKILL while writing the memory-mapped vector index: every acknowledged write survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from viewfinder.stores.exact_vectors import ExactVectorIndex

DIM = 16

# Upserts batches (some ids again, some tenants big enough for a graph) and deletes, printing
# each acknowledgement once the call has returned.
WRITER = """
import sys
import zlib
import numpy as np
from pathlib import Path
from viewfinder.stores.exact_vectors import ExactVectorIndex

def vector(image_id, version):
    rng = np.random.default_rng(zlib.crc32(f"{image_id}:{version}".encode()))
    v = rng.standard_normal(%(dim)d).astype(np.float32)
    return v / np.linalg.norm(v)

index = ExactVectorIndex(Path(sys.argv[1]), ann_threshold=300)
index.open("m", %(dim)d)
n = 0
while True:
    ids = [f"i{(n * 16 + k) %% 1500}" for k in range(16)]
    tenants = ["big" if int(i[1:]) %% 4 else "small" for i in ids]
    version = n // 94
    index.upsert(ids, tenants, np.stack([vector(i, version) for i in ids]))
    print("up", n, version, *ids, flush=True)
    if n %% 5 == 4:
        gone = [f"i{(n * 7) %% 1500}"]
        index.delete(gone)
        print("del", n, *gone, flush=True)
    n += 1
"""


def _vector(image_id: str, version: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{image_id}:{version}".encode()))
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("kill_after", [0.4, 1.5])
def test_sigkill_during_writes_loses_no_acknowledged_vector(
    tmp_path: Path, kill_after: float
) -> None:
    path = tmp_path / "vectors.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.replace("%(dim)d", str(DIM)).replace("%%", "%"), str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + kill_after
    started = False
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if not started:  # time the kill from the first write (imports are slow)
            started, deadline = True, time.monotonic() + kill_after
        if time.monotonic() >= deadline:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(10)
    rest, _ = proc.communicate()
    lines += rest.splitlines(keepends=True)
    acked = [line for line in lines if line.endswith("\n")]  # a torn last line: not acked
    assert len(acked) > 5, "the writer was killed before writing anything"
    latest: dict[str, int | None] = {}
    for line in acked:
        kind, _, *rest_ = line.split()
        if kind == "up":
            version, ids = int(rest_[0]), rest_[1:]
            for image_id in ids:
                latest[image_id] = version
        else:
            for image_id in rest_:
                latest[image_id] = None
    # the write in flight at the kill may or may not have committed: a delete after the last
    # acknowledged upsert may have removed its id
    last_kind, last_n = acked[-1].split()[:2]
    in_flight_delete = (
        f"i{(int(last_n) * 7) % 1500}" if last_kind == "up" and int(last_n) % 5 == 4 else None
    )
    index = ExactVectorIndex(path, ann_threshold=300, background=False)
    index.open("m", DIM)
    assert not index.closed_cleanly()  # so the service reconciles it with the metadata
    try:
        stored = {
            i: (t, v)
            for ids, ts, vs in index.iter_vectors(500)
            for i, t, v in zip(ids, ts, vs, strict=True)
        }
        assert set(stored) == index.ids()
        assert index.count() == len(stored)
        assert index.count("big") + index.count("small") == len(stored)
        for image_id, version in latest.items():
            if version is None or image_id == in_flight_delete:
                # deleted and acknowledged; a later unacknowledged upsert may have re-added it
                continue
            assert image_id in stored, f"acknowledged {image_id} lost"
            _, got = stored[image_id]
            ok = [np.allclose(got, _vector(image_id, v), atol=1e-6) for v in (version, version + 1)]
            assert any(ok), f"{image_id} holds neither its acknowledged vector nor a later one"
        for image_id, (tenant, vec) in list(stored.items())[:50]:
            assert index.search(tenant, vec, 1)[0][0] == image_id
        # the index keeps working after the crash: writes and searches
        index.upsert(["fresh"], ["big"], _vector("fresh", 0)[None])
        assert index.search("big", _vector("fresh", 0), 1)[0][0] == "fresh"
    finally:
        index.close()
