from __future__ import annotations

import pytest

import tests.sweep.spaces_for_tests  # noqa: F401  (registers the test spaces)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the in-process sweep tests (2 CPUs, no dashboard)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    if started:
        ray.shutdown()
