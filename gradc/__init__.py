"""gradc: a gradient compiler for Python.

Write a model as a plain function over numpy-like ops; gradc traces it into a graph,
differentiates the graph by source transformation, optimizes it, and compiles it.

>>> import gradc, gradc.numpy as np
>>> loss = lambda w, X, y: np.mean((gradc.relu(X @ w) - y) ** 2)
>>> dloss = gradc.grad(loss)          # traced and compiled on first call
"""
from .version import __version__  # noqa: F401

from .errors import (ArgumentError, GradcError, LinAlgError, NonFiniteError, ShapeError,  # noqa: F401
                     TracerBoolError, UnsupportedError, UnsupportedNameError)
from .tracer import Spec  # noqa: F401
from . import ops as _ops  # noqa: F401  (registers the ops)
from .ops import value_methods as _vm  # noqa: F401  (operators on traced values)
from .api import Lowered, config, disable_jit, grad, jit, jvp, trace, value_and_grad, vjp  # noqa: F401
from .api_allow_int import float0  # noqa: F401,E402
from .jacobian import jacfwd, jacobian, jacrev  # noqa: F401
from .hessian import hessian, hvp  # noqa: F401
from .vmap import vmap  # noqa: F401
from . import vectorize as _vectorize  # noqa: F401  (publishes gradc.numpy.vectorize)
from .custom_derivatives import custom_jvp, custom_vjp  # noqa: F401
from .api_extras import (ShapeDtypeStruct, block_until_ready, custom_gradient, device_get, device_put,  # noqa: F401
                         eval_shape, linear_transpose, linearize)
from . import lax  # noqa: F401
from .remat import checkpoint, checkpoint_policies, remat  # noqa: F401
from . import distributed as _distributed  # noqa: F401  (dask arrays; imports dask only when used)
from . import numpy  # noqa: F401
from . import tree_util  # noqa: F401
from . import flatten_util  # noqa: F401
from . import tree  # noqa: F401
from . import optim  # noqa: F401
from .check import GradCheck, GradCheckError, check_grad  # noqa: F401
from .numpy import (abs, cos, concatenate, dot, exp, expm1, log, log1p, log_softmax,  # noqa: F401,A004
                    logsumexp, matmul, max, maximum, mean, min, minimum, outer, relu, reshape,
                    sigmoid, sign, sin, softmax, softplus, sqrt, square, stack, stop_gradient,
                    sum, take_along_axis, tanh, transpose, where, arange_like)
from .explain import Explanation  # noqa: F401,E402
from .api import explain  # noqa: F401,E402  (gradc.explain is the function, not the module)



def __getattr__(name):
    """``gradc.nn`` and ``gradc.scipy`` without importing them first, as ``jax.nn`` and
    ``jax.scipy`` (imported when first used: scipy's functions pull in more modules)."""
    if name in ("nn", "scipy", "random"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gradc' has no attribute {name!r}")


# Import the default backend's modules now rather than inside the first call (LLVM
# itself starts on first use): a new process's first call should cost little more than
# a steady call when its kernel is in the on-disk cache.
if config()["backend"] == "llvm":
    from .backends import llvm_backend as _llvm_backend  # noqa: F401,E402

# Importing gradc (numpy, networkx, llvmlite, the op tables) creates a few hundred
# thousand long-lived objects, and CPython runs its first full garbage collection once
# enough new objects pile up after them -- which in a fresh process was typically in
# the middle of the first gradc call, adding 20-40 ms to it (measured: M5's first call
# with its kernel on disk, 39-59 ms with the automatic collection inside it, 19 ms
# without).  Collecting once here puts that pass where its objects were made, in the
# import.
import gc as _gc  # noqa: E402

_gc.collect()
