"""``gradc.nn.initializers``: ``jax.nn.initializers``' parameter initializers, by the same
names, arguments and construction, drawn with ``gradc.random`` (so ``zeros``,
``normal`` and the uniform variance-scaling ones give JAX's numbers, the (truncated)
normal ones within a few ulp of them).  Each factory returns ``init(key, shape,
dtype=float64)``; ``shape`` is read as JAX reads it: the fan-in is the product of
``in_axis`` and the receptive field (the axes besides ``in_axis``, ``out_axis`` and
``batch_axis``), the fan-out the same with ``out_axis``.
"""
from __future__ import annotations

import math

import numpy as np

from . import numpy as gnp
from . import random_base as random
from .errors import ArgumentError


def zeros(key, shape, dtype=np.float64):
    """An array of zeros (``key`` unused)."""
    return gnp.zeros(tuple(shape), dtype)


def ones(key, shape, dtype=np.float64):
    """An array of ones (``key`` unused)."""
    return gnp.ones(tuple(shape), dtype)


def constant(value, dtype=np.float64):
    """``init`` filling the array with ``value``."""
    return lambda key, shape, dtype=dtype: gnp.full(tuple(shape), value, dtype)


def normal(stddev=1e-2, dtype=np.float64):
    """``init`` drawing N(0, stddev^2)."""
    return lambda key, shape, dtype=dtype: random.normal(key, tuple(shape), dtype) * stddev


def uniform(scale=1e-2, dtype=np.float64):
    """``init`` drawing U[0, scale)."""
    return lambda key, shape, dtype=dtype: random.uniform(key, tuple(shape), dtype) * scale


def truncated_normal(stddev=1e-2, dtype=np.float64, lower=-2.0, upper=2.0):
    """``init`` drawing a normal truncated to [lower, upper] standard deviations, scaled."""
    return lambda key, shape, dtype=dtype: random.truncated_normal(key, lower, upper, tuple(shape), dtype) * stddev


def _fans(shape, in_axis, out_axis, batch_axis):
    if len(shape) <= 1:
        raise ArgumentError(f"gradc.nn.initializers: variance scaling needs a shape of rank >= 2, got {shape}")
    ax = lambda a: a % len(shape)   # noqa: E731
    batch = {ax(a) for a in ((batch_axis,) if isinstance(batch_axis, int) else batch_axis)}
    ins = {ax(a) for a in ((in_axis,) if isinstance(in_axis, int) else in_axis)}
    outs = {ax(a) for a in ((out_axis,) if isinstance(out_axis, int) else out_axis)}
    field = math.prod(s for i, s in enumerate(shape) if i not in ins | outs | batch)
    return math.prod(shape[i] for i in ins) * field, math.prod(shape[i] for i in outs) * field


def variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    """JAX's ``variance_scaling``: variance ``scale / n`` with n the fan-in, the fan-out or
    their mean (``mode``), drawn from a ``"truncated_normal"`` (bounds +-2, its standard
    deviation corrected), ``"normal"`` or ``"uniform"`` distribution."""
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise ArgumentError(f"variance_scaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    if distribution not in ("truncated_normal", "normal", "uniform"):
        raise ArgumentError("variance_scaling: distribution must be 'truncated_normal', 'normal' or 'uniform', "
                            f"got {distribution!r}")

    def init(key, shape, dtype=dtype):
        shape = tuple(shape)
        fan_in, fan_out = _fans(shape, in_axis, out_axis, batch_axis)
        variance = scale / {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        if distribution == "truncated_normal":
            stddev = np.sqrt(variance) / .87962566103423978        # the std of N(0, 1) truncated to [-2, 2]
            return random.truncated_normal(key, -2.0, 2.0, shape, dtype) * np.asarray(stddev, dtype)
        if distribution == "normal":
            return random.normal(key, shape, dtype) * np.asarray(np.sqrt(variance), dtype)
        return random.uniform(key, shape, dtype, -1.0, 1.0) * np.asarray(np.sqrt(3 * variance), dtype)
    return init


def glorot_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def lecun_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def he_uniform(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(in_axis=-2, out_axis=-1, batch_axis=(), dtype=np.float64):
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal = glorot_uniform, glorot_normal, he_uniform, he_normal
for _f, _what in ((glorot_uniform, "fan_avg uniform"), (glorot_normal, "fan_avg truncated normal"),
                  (lecun_uniform, "fan_in uniform"), (lecun_normal, "fan_in truncated normal"),
                  (he_uniform, "fan_in uniform, scale 2"), (he_normal, "fan_in truncated normal, scale 2")):
    _f.__doc__ = f"``variance_scaling`` ({_what}), as JAX's of this name."
