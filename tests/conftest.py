"""Shared test configuration.

Hypothesis runs with a fixed, CI-stable profile: ``derandomize=True`` (the same examples
on every run, so a failure reproduces and CI never flakes) and ``deadline=None`` (the
first example of a property traces and compiles; timing varies on shared CI cores).
Set ``HYPOTHESIS_PROFILE=explore`` to search with fresh random examples instead.

The core suite (ops, paper, transforms, properties, errors, numpy API, passes, graph)
checks tracing, differentiation and optimization against numpy oracles.  Every test in
it runs twice, on the reference evaluator (backend "numpy") and on native code ("llvm"),
so the two backends are checked against the same oracles; ``GRADC_BACKEND=numpy`` (or
llvm, or c) runs one backend only.  Core modules opt in with
``pytestmark = pytest.mark.usefixtures("core_backend")``.
"""
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

_checks = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=_checks)
settings.register_profile("explore", deadline=None, derandomize=False, suppress_health_check=_checks)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A kernel's faster code compiles in the background by default and a later call switches
# to it (backends/kernel.py, Kernel._on_hot): in tests the call that crosses
# GRADC_HOT_SECONDS switches, so the test's next call runs it.  test_hot_kernels and the
# fuzzer's hot calls run the background compile, as users do.
os.environ.setdefault("GRADC_HOT_BACKGROUND", "0")


CORE_BACKENDS = [os.environ["GRADC_BACKEND"]] if os.environ.get("GRADC_BACKEND") else ["numpy", "llvm"]


# every backend this machine runs: C needs a compiler
ALL_BACKENDS = ["numpy", "llvm"] + (["c"] if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") else [])


def _configured(backend):
    """gradc's default backend set to ``backend`` for one test, its options restored after."""
    import gradc
    saved = gradc.config(backend=backend, debug_nans=False)
    try:
        yield backend
    finally:
        gradc.config(**saved)


@pytest.fixture(params=CORE_BACKENDS)
def core_backend(request):
    """Run the test on the numpy reference evaluator and on native code (or only on
    GRADC_BACKEND when it is set); restore gradc's global options afterwards."""
    yield from _configured(request.param)


@pytest.fixture(params=ALL_BACKENDS)
def every_backend(request):
    """Run the test on numpy, llvm and c (where a C compiler exists) as gradc's default
    backend; restore gradc's global options afterwards."""
    yield from _configured(request.param)
