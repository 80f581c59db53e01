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
from . import nn_initializers as initializers  # noqa: F401  (jax.nn.initializers)
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
    """clip(x, -1, 1), written as jax.nn's: ``x`` where ``-1 <= x <= 1``, so the
    derivative at the corners +-1 is 1 (JAX's; clip's rule gives 0 at a constant bound)."""
    return np.where(x > 1.0, 1.0, np.where(x < -1.0, -1.0, x))


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


def identity(x):
    """x."""
    return x


tanh = np.tanh


def soft_sign(x):
    """x / (|x| + 1)."""
    return x / (np.abs(x) + 1.0)


def sparse_plus(x):
    """0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1 (a smooth relu)."""
    return np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, (x + 1.0) ** 2 / 4.0))


def sparse_sigmoid(x):
    """sparse_plus's derivative: 0, (x + 1) / 2, 1."""
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0)


def logmeanexp(x, axis=None, where=None, keepdims=False):
    """log(mean(exp(x))) along ``axis``; ``where``: over the selected elements only."""
    n = np.sum(np.ones_like(x) if where is None else np.where(where, 1.0, 0.0), axis=axis, keepdims=keepdims)
    return logsumexp(x, axis=axis, where=where, keepdims=keepdims) - np.log(n)


def _large_negative(dtype):
    """JAX's stand-in for -inf in masked logits: a fully masked row stays finite
    (uniform weights) instead of 0/0."""
    return -0.7 * float(_np.finfo(dtype).max)


def dot_product_attention(query, key, value, bias=None, mask=None, *, scale=None, is_causal=False,
                          query_seq_lengths=None, key_value_seq_lengths=None, local_window_size=None,
                          implementation=None):
    """jax.nn.dot_product_attention: ``softmax(q kᵀ scale + bias, masked) v`` per head.

    ``query`` is ``[B, T, N, H]`` (batch, positions, heads, head size) or ``[T, N, H]``,
    ``key`` and ``value`` ``[B, S, K, H]`` with ``K`` dividing ``N`` (grouped-query
    attention: each key head serves ``N / K`` query heads).  ``bias`` and ``mask``
    broadcast to ``[B, N, T, S]``; ``mask`` is True where a query may attend;
    ``is_causal`` keeps keys at or before the query's position; ``query_seq_lengths`` /
    ``key_value_seq_lengths`` (``[B]``) mask the padding; ``local_window_size`` (an int
    or ``(left, right)``) keeps keys within that window.  Masked logits are JAX's large
    negative number, so a fully masked row averages ``value`` uniformly, and a padding
    query's output is 0.  ``scale`` defaults to ``1/sqrt(H)``.  Logits and softmax are
    computed in the inputs' dtype (JAX computes them in float32 at least, and float64
    inputs there get float32 logits: gradc's float64 results are the more accurate).  ``implementation`` may be None or "xla" (the one gradc
    has)."""
    if implementation not in (None, "xla"):
        from .errors import UnsupportedError
        raise UnsupportedError(f"dot_product_attention: implementation={implementation!r}; gradc computes it "
                               "as jax's 'xla' implementation (None or 'xla')")
    q, k, v = np.asarray(query), np.asarray(key), np.asarray(value)
    batched = q.ndim == 4
    if not batched:
        q, k, v = q[None], k[None], v[None]
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError(f"dot_product_attention: query, key and value must have rank 3 or 4 alike, got "
                         f"{np.ndim(query)}, {np.ndim(key)}, {np.ndim(value)}")
    B, T, N, H = q.shape
    S, K = k.shape[1], k.shape[2]
    if N % K or v.shape[2] != K or v.shape[1] != S:
        raise ValueError(f"dot_product_attention: key and value need the same heads K dividing the query's "
                         f"{N}, got key {tuple(k.shape)} and value {tuple(v.shape)}")
    G = N // K
    scale = 1.0 / math.sqrt(H) if scale is None else scale
    qg = np.reshape(q, (B, T, K, G, H))
    logits = np.einsum("btkgh,bskh->bkgts", qg, k) * scale
    logits = np.reshape(logits, (B, N, T, S))
    if bias is not None:
        bias = np.asarray(bias)
        logits = logits + (bias[None] if not batched and bias.ndim == 3 else bias)
    keep = None

    def both(a, b):
        return b if a is None else np.logical_and(a, b)
    if mask is not None:
        mask = np.asarray(mask)
        keep = mask[None] if not batched and mask.ndim == 3 else mask
    qpos, kpos = _np.arange(T)[:, None], _np.arange(S)[None, :]
    if is_causal:
        keep = both(keep, _np.broadcast_to(qpos >= kpos, (1, 1, T, S)))
    if local_window_size is not None:
        left, right = (local_window_size, local_window_size) if isinstance(local_window_size, int) \
            else local_window_size
        keep = both(keep, _np.broadcast_to((qpos <= kpos + left) & (qpos >= kpos - right), (1, 1, T, S)))
    if query_seq_lengths is not None:
        ql = np.asarray(query_seq_lengths)
        keep = both(keep, np.reshape(ql, (B, 1, 1, 1)) > _np.arange(T).reshape(1, 1, T, 1))
    if key_value_seq_lengths is not None:
        kl = np.asarray(key_value_seq_lengths)
        keep = both(keep, np.reshape(kl, (B, 1, 1, 1)) > _np.arange(S).reshape(1, 1, 1, S))
    if keep is not None:
        logits = np.where(keep, logits, _large_negative(logits.dtype))
    probs = np.softmax(logits, axis=-1)
    out = np.einsum("bkgts,bskh->btkgh", np.reshape(probs, (B, K, G, T, S)), v)
    out = np.reshape(out, (B, T, N, H))
    if query_seq_lengths is not None:       # a padding query's output is 0, as JAX's
        out = np.where(np.reshape(ql, (B, 1, 1, 1)) > _np.arange(T).reshape(1, T, 1, 1), out, 0.0)
    return out if batched else out[0]
