"""A process that loads a model keeps numpy's BLAS to the threads the settings give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from viewfinder.config import Settings
from viewfinder.embedders.blas import blas_pools, limit_blas_threads
from viewfinder.embedders.factory import load_embedder


def threads() -> set[object]:
    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded and in use
    return {pool["num_threads"] for pool in blas_pools()}


@pytest.fixture(autouse=True)
def restore_blas() -> object:
    with threadpool_limits(limits=2, user_api="blas") as limits:  # restored when done
        yield limits


def test_loading_a_model_keeps_blas_to_one_thread(tmp_path: Path) -> None:
    assert threads() == {2}
    load_embedder(Settings(data_dir=tmp_path, model="fake"))
    assert threads() == {1}


def test_the_setting_changes_it_and_zero_leaves_it(tmp_path: Path) -> None:
    load_embedder(Settings(data_dir=tmp_path, model="fake", blas_threads=0))
    assert threads() == {2}
    limit_blas_threads(1)
    assert threads() == {1}
    with pytest.raises(ValueError, match="BLAS threads"):
        limit_blas_threads(-1)
