"""``import gradc.nn as nn``: the activation and normalisation functions of ``jax.nn``,
by the same names and defaults, so a model written for JAX ports by changing imports.

Each is composed from ``gradc.numpy`` at trace time (so it has its derivatives and
runs on every backend) and, outside a trace, computes with numpy.  Stable forms as
JAX's: ``log_sigmoid(x) = -softplus(-x)``, ``silu(x) = x sigmoid(x)``, ``elu`` through
``expm1`` of the negative part only (the positive side never reaches exp).
"""
from __future__ import annotations

import math

import numpy as _np

from . import numpy as np
from .lax_windows import avg_pool, max_pool, min_pool  # noqa: F401  (flax.linen's pooling, on reduce_window)

relu, sigmoid, softplus = np.relu, np.sigmoid, np.softplus


def softmax(x, axis=-1, where=None):
    """exp(x) / sum(exp(x)) along ``axis``; ``where`` (jax.nn's mask): only the selected
    elements take part, and the others' output is 0."""
    if where is None:
        return np.softmax(x, axis)
    return np.where(where, np.softmax(np.where(where, x, -_np.inf), axis), 0.0)


def log_softmax(x, axis=-1, where=None):
    """x - logsumexp(x) along ``axis``; ``where``: over the selected elements, -inf at the others."""
    if where is None:
        return np.log_softmax(x, axis)
    return np.where(where, np.log_softmax(np.where(where, x, -_np.inf), axis), -_np.inf)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """log(sum(b exp(a))) along ``axis``; ``where``: over the selected elements only
    (-inf where none is)."""
    if where is not None:
        a = np.where(where, a, -_np.inf)
    return np.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign)


def gelu(x, approximate=True):
    """jax.nn.gelu: the tanh form by default, as JAX's (``approximate=False``: the exact
    ``x Phi(x)``, ``gradc.numpy.gelu``'s default and PyTorch's)."""
    return np.gelu(x, approximate=approximate)


def gelu_tanh(x):
    """``gelu(x, approximate=True)``."""
    return np.gelu(x, approximate=True)


def relu6(x):
    """min(max(x, 0), 6)."""
    return np.minimum(np.maximum(x, 0.0), 6.0)


def silu(x):
    """x sigmoid(x) (swish)."""
    return x * np.sigmoid(x)


swish = silu


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), finite for every x."""
    return -np.softplus(-x)


def elu(x, alpha=1.0):
    """x for x > 0, alpha (exp(x) - 1) below (expm1 of the negative part only)."""
    # (where, not minimum(x, 0): at x = 0 the gradient is alpha, as JAX's, not the tie's 0)
    return np.where(x > 0, x, alpha * np.expm1(np.where(x > 0, 0.0, x)))


def celu(x, alpha=1.0):
    """max(x, 0) + alpha expm1(min(x, 0) / alpha)."""
    return np.where(x > 0, x, alpha * np.expm1(np.where(x > 0, 0.0, x) / alpha))


def selu(x):
    """scale * elu(x, alpha) with the self-normalising constants."""
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return scale * elu(x, alpha)


def leaky_relu(x, negative_slope=0.01):
    """x for x >= 0, negative_slope x below."""
    return np.where(x >= 0, x, negative_slope * x)


def hard_tanh(x):
    """clip(x, -1, 1)."""
    return np.clip(x, -1.0, 1.0)


def hard_sigmoid(x):
    """relu6(x + 3) / 6."""
    return relu6(x + 3.0) / 6.0


def hard_silu(x):
    """x hard_sigmoid(x) (hard swish)."""
    return x * hard_sigmoid(x)


hard_swish = hard_silu


def mish(x):
    """x tanh(softplus(x))."""
    return x * np.tanh(np.softplus(x))


def squareplus(x, b=4.0):
    """(x + sqrt(x^2 + b)) / 2."""
    return (x + np.sqrt(x * x + b)) / 2.0


def glu(x, axis=-1):
    """a sigmoid(b), a and b the two halves of x along ``axis``."""
    a, b = np.split(x, 2, axis=axis)
    return a * np.sigmoid(b)


def standardize(x, axis=-1, mean=None, variance=None, epsilon=1e-5):
    """(x - mean) / sqrt(variance + epsilon), the moments along ``axis`` unless given."""
    if mean is None:
        mean = np.mean(x, axis=axis, keepdims=True)
    if variance is None:
        variance = np.mean(np.square(x - mean), axis=axis, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon)


def one_hot(x, num_classes, dtype=_np.float64, axis=-1):
    """1.0 where the last (or ``axis``) index equals the integer x, else 0.0."""
    k = _np.arange(num_classes)
    if axis not in (-1, _np.ndim(x) if not hasattr(x, "_shape") else x.ndim):
        raise ValueError("gradc.nn.one_hot: the classes go on the last axis (axis=-1)")
    if not hasattr(x, "_shape"):            # concrete labels
        return (_np.asarray(x)[..., None] == k).astype(dtype)
    return np.astype(np.expand_dims(x, -1) == k, dtype)


def log1mexp(x):
    """log(1 - exp(-x)) for x > 0: log(-expm1(-x)) below log 2, log1p(-exp(-x)) above."""
    small = x < math.log(2.0)
    return np.where(small, np.log(-np.expm1(-np.where(small, x, 1.0))), np.log1p(-np.exp(-np.where(small, 1.0, x))))
