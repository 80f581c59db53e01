"""Shared test configuration.

Hypothesis runs with a fixed, CI-stable profile: ``derandomize=True`` (the same examples
on every run, so a failure reproduces and CI never flakes) and ``deadline=None`` (the
first example of a property traces and compiles; timing varies on shared CI cores).
Set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples instead.

The core suite (ops, paper, transforms, properties, errors, numpy API, passes, graph)
checks tracing, differentiation and optimization against numpy oracles.  It runs on the
reference evaluator (backend "numpy") unless ``GRADC_BACKEND`` names another backend,
e.g. ``GRADC_BACKEND=llvm python3 -m pytest tests`` runs it against native code.  Core
modules opt in with ``pytestmark = pytest.mark.usefixtures("core_backend")``.
"""
import os

import pytest
from hypothesis import HealthCheck, settings

_checks = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=_checks)
settings.register_profile("explore", deadline=None, derandomize=False, suppress_health_check=_checks)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def core_backend():
    """Run the test on GRADC_BACKEND (default: the numpy reference evaluator); restore
    gradc's global options afterwards."""
    import gradc
    backend = os.environ.get("GRADC_BACKEND", "numpy")
    saved = gradc.config(backend=backend, debug_nans=False)
    try:
        yield backend
    finally:
        gradc.config(**saved)
