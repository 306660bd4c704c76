"""Shared fixtures: one torch thread per test worker, small reproducible input sets."""

from __future__ import annotations

import functools
import os
import sys

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """CI runs two pytest workers on two cores: one torch thread and one BLAS thread each
    avoids oversubscription (tests that check thread settings set their own). (torch is
    imported here, not at the top: the xdist controller, which runs no test, then starts
    its workers without importing it first.)"""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(n)


@functools.cache
def _blas_controller():
    """The BLAS libraries of numpy and scipy, found once per worker (finding them costs about
    1 ms, limiting them through the controller 20 µs: a second of CPU over the suite)."""
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` standard-normal rows in dimension ``d``, rescaled to unit norm."""
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def X_unit() -> np.ndarray:
    """Six unit-norm points in R^4, including an antipodal and a near-duplicate pair."""
    X = unit_rows(4, 4, seed=0)
    near = X[0] + 1e-9 * np.array([1.0, -1.0, 0.5, 0.0])
    X = np.vstack([X, -X[1], near / np.linalg.norm(near)])
    return X


def pytest_collection_modifyitems(config, items):
    """Run the slow tests first: with two workers the long ones then overlap with the many
    short ones instead of leaving one worker alone at the end. (pyproject's
    ``--maxschedchunk 2`` makes xdist hand them out two at a time, so that they spread over
    the workers instead of all going to the first one in one block.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """An xdist worker that has sent its results leaves without finalizing the interpreter:
    tearing down torch, numba's LLVM and the BLAS/OpenMP pools takes 1.5–2.5 s of a 60 s
    suite, and nothing is left to report (the controller has every result and writes the
    summary)."""
    if hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
