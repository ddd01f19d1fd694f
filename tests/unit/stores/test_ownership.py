"""The data directory lock: one process at a time on the embedded stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from viewfinder.bootstrap import build_service
from viewfinder.config import Settings
from viewfinder.errors import ConfigurationError
from viewfinder.stores.ownership import DataDirLock

pytestmark = pytest.mark.skipif(os.name != "posix", reason="advisory locks are POSIX-only")

HOLD = """
import sys, time
from pathlib import Path
from viewfinder.stores.ownership import DataDirLock
lock = DataDirLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = DataDirLock(tmp_path), DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(ConfigurationError, match=rf"pid {os.getpid()}\b.*--server"):
        second.acquire()
    first.release()
    second.acquire()  # free again once released
    second.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with pytest.raises(ConfigurationError, match=f"pid {proc.pid}"):
            DataDirLock(tmp_path).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire()  # the kernel dropped the dead process's lock
    lock.release()


def test_an_embedded_service_owns_its_directory_until_closed(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", model="fake")
    service = build_service(settings)
    with pytest.raises(ConfigurationError, match="in use by another Viewfinder process"):
        build_service(settings)
    service.close()
    again = build_service(settings)  # closed: free again
    again.close()
