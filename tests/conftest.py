"""Shared fixtures: one torch thread per test worker, small reproducible input sets."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """CI runs two pytest workers on two cores: one torch thread and one BLAS thread each
    avoids oversubscription (tests that check thread settings set their own). (torch is
    imported here, not at the top: the xdist controller, which runs no test, then starts
    its workers without importing it first.)"""
    import torch
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1, user_api="blas"):
        yield
    torch.set_num_threads(n)


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
