"""Shared pytest fixtures: paths to the repository and the read-only shared/ data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_TLE = SHARED / "tle"


@pytest.fixture(scope="session")
def shared_tle_dir() -> Path:
    """``../shared/tle`` or skip the test when it is absent (e.g. outside this workspace).

    Session-scoped so module-scoped fixtures (the TLE samples of test_orbits_contacts) can use it.
    """
    if not SHARED_TLE.is_dir():
        pytest.skip("../shared/tle is not present")
    return SHARED_TLE


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run fastest on one thread (and do not fight over the 2 cores of CI)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
