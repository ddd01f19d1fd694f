"""ModelCache: built once, shared, rebuilt when corrupt, safe under concurrency, any location."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from viewfinder.embedders.builtin.cache import ModelCache, atomic_write

GOOD = b"GOOD" + bytes(10)


class Builder:
    """A build that counts its calls (and can be slow, to let others pile up behind it)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay_s)
        return GOOD


def parse(data: bytes) -> bytes | None:
    return data if data.startswith(b"GOOD") else None


def test_built_once_then_read_by_every_cache_on_the_directory(tmp_path: Path) -> None:
    build = Builder()
    first = ModelCache(tmp_path / "cache", fallback=tmp_path / "tmp")
    assert first.get("x.bin", parse, build) == GOOD and build.calls == 1
    # a second data directory (another ModelCache on the same directory) builds nothing
    assert ModelCache(tmp_path / "cache").get("x.bin", parse, build) == GOOD
    assert build.calls == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".build.lock", "x.bin"]
    assert not (tmp_path / "tmp").exists()


def test_a_build_cleans_up_after_a_killed_one(tmp_path: Path) -> None:
    (tmp_path / ".x.bin.abc123.tmp").write_bytes(b"half a file")  # a build killed mid-write
    assert ModelCache(tmp_path).get("x.bin", parse, Builder()) == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == [".build.lock", "x.bin"]


def test_a_corrupt_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    build = Builder()
    cache = ModelCache(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"GARBAGE")
    with caplog.at_level(logging.WARNING):
        assert cache.get("x.bin", parse, build) == GOOD
    assert build.calls == 1 and (tmp_path / "x.bin").read_bytes() == GOOD
    assert caplog.text.count("invalid; building it again") == 1  # said once, not per look


def test_arrays_rebuilt_when_truncated_or_wrong_shape(tmp_path: Path) -> None:
    calls: list[int] = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        return "a" in arrays and arrays["a"].shape == (2, 3)

    cache = ModelCache(tmp_path)
    first = cache.get_arrays("a.npz", valid, build)
    np.testing.assert_array_equal(
        ModelCache(tmp_path).get_arrays("a.npz", valid, build)["a"], first["a"]
    )
    assert len(calls) == 1
    path = tmp_path / "a.npz"
    path.write_bytes(path.read_bytes()[:40])  # truncated zip
    ModelCache(tmp_path).get_arrays("a.npz", valid, build)
    np.savez(path.with_suffix(""), a=np.zeros(3))  # wrong shape
    ModelCache(tmp_path).get_arrays("a.npz", valid, build)
    assert len(calls) == 3


def test_a_data_directory_of_an_earlier_version_is_read_not_rebuilt(tmp_path: Path) -> None:
    legacy = tmp_path / "data" / "models" / "builtin"
    legacy.mkdir(parents=True)
    (legacy / "x.bin").write_bytes(GOOD)
    build = Builder()
    cache = ModelCache(tmp_path / "cache", also_read=[legacy])
    assert cache.get("x.bin", parse, build) == GOOD and build.calls == 0
    assert not (tmp_path / "cache" / "x.bin").exists()


def test_threads_building_at_once_build_once(tmp_path: Path) -> None:
    build = Builder(delay_s=0.3)
    results: list[bytes] = []

    def start() -> None:  # each thread as its own process would: its own ModelCache
        results.append(ModelCache(tmp_path).get("x.bin", parse, build))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [GOOD] * 4 and build.calls == 1
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"


BUILD_IN_A_PROCESS = """
import sys, time
from pathlib import Path
from viewfinder.embedders.builtin.cache import ModelCache
cache, log = Path(sys.argv[1]), Path(sys.argv[2])
# start together: each says it is ready, then waits for the other (imports take varying time)
(log.parent / ("ready-" + sys.argv[3])).touch()
while len(list(log.parent.glob("ready-*"))) < 2:
    time.sleep(0.01)
def build():
    with log.open("a") as f:
        f.write("built\\n")
    time.sleep(1.0)
    return b"GOOD-" + sys.argv[3].encode()
print(ModelCache(cache).get("x.bin", lambda d: d if d.startswith(b"GOOD") else None, build))
"""


def test_processes_building_at_once_build_once(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD_IN_A_PROCESS, str(tmp_path / "c"), str(log), name],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert log.read_text() == "built\n"  # the second process waited, then read the file
    assert len(outputs) == 1  # both got the same bytes


def test_an_unwritable_cache_builds_into_the_fallback_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    build = Builder()
    with caplog.at_level(logging.WARNING):
        cache = ModelCache(blocker / "cache", fallback=tmp_path / "fallback")
        assert cache.get("x.bin", parse, build) == GOOD
    assert (tmp_path / "fallback" / "x.bin").read_bytes() == GOOD
    assert "cannot be written" in caplog.text and "VIEWFINDER_CACHE_DIR" in caplog.text
    # the next start reads what the fallback kept
    ModelCache(blocker / "cache", fallback=tmp_path / "fallback").get("x.bin", parse, build)
    assert build.calls == 1


def test_nothing_writable_builds_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    build = Builder()
    with caplog.at_level(logging.WARNING):
        cache = ModelCache(blocker / "cache", fallback=blocker / "fallback")
        assert cache.get("x.bin", parse, build) == GOOD
        assert cache.get("y.bin", parse, build) == GOOD
    assert build.calls == 2
    assert "built in memory" in caplog.text and "VIEWFINDER_CACHE_DIR" in caplog.text
    assert caplog.text.count("no writable model cache") == 1  # said once, not per file


def test_a_read_only_cache_that_holds_the_file_is_read_as_is(tmp_path: Path) -> None:
    cache_dir = tmp_path / "ro"
    cache_dir.mkdir()
    (cache_dir / "x.bin").write_bytes(GOOD)
    cache_dir.chmod(0o555)  # (root may write anyway: the listing below checks nothing is tried)
    try:
        build = Builder()
        assert ModelCache(cache_dir, fallback=tmp_path / "fb").get("x.bin", parse, build) == GOOD
        assert build.calls == 0 and not (tmp_path / "fb").exists()
        assert [p.name for p in cache_dir.iterdir()] == ["x.bin"]  # not even a lock file
    finally:
        cache_dir.chmod(0o755)


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    atomic_write(tmp_path / "sub" / "x.bin", b"data")
    atomic_write(tmp_path / "sub" / "x.bin", b"new")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.bin"]
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"new"
