"""``gradc.random``'s samplers that are transforms of its uniform and normal draws, each
JAX's construction (``jax/_src/random``): the same keys give JAX's numbers, to the ulps
of the functions applied (``uniform`` on a range other than [0, 1) is within an ulp of
XLA's fused multiply-add, ``normal`` within a few of its ``erfinv``).  Each is a
differentiable function of its parameters (the reparameterization trick):
``lognormal``'s ``sigma``, ``pareto``'s ``b``, ``weibull_min``'s ``scale`` and
``concentration``, ``multivariate_normal``'s ``mean`` and ``cov``, and so on.
"""
from __future__ import annotations

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .random_base import _float_dtype, _shape, bernoulli, exponential, normal, split, uniform

__all__ = ["cauchy", "laplace", "logistic", "lognormal", "pareto", "rademacher", "maxwell",
           "double_sided_maxwell", "rayleigh", "weibull_min", "triangular", "wald", "geometric",
           "multivariate_normal", "orthogonal", "key_data", "wrap_key_data", "clone"]


def _params_shape(what, shape, *params):
    """``shape``, or the parameters' broadcast shape when it is None (JAX's rule); a
    given shape must broadcast with the parameters'."""
    ps = tuple(np.broadcast_shapes(*(tuple(np.shape(p)) if not hasattr(p, "shape") else tuple(p.shape)
                                     for p in params)))
    if shape is None:
        return ps
    shape = _shape(shape)
    try:
        if tuple(np.broadcast_shapes(shape, ps)) != shape:
            raise ValueError
    except ValueError:
        raise ArgumentError(f"gradc.random.{what}: shape {shape} does not broadcast with the parameters' "
                            f"shape {ps}") from None
    return shape


def _param(x, dtype):
    return gnp.astype(gnp.asarray(x), dtype)


def cauchy(key, shape=(), dtype=np.float64):
    """Standard Cauchy: ``tan(pi (u - 1/2))``, u uniform in [eps, 1)."""
    dtype = _float_dtype(dtype, "cauchy")
    u = uniform(key, _shape(shape), dtype, np.finfo(dtype).eps, 1.0)
    return gnp.tan(dtype.type(np.pi) * (u - dtype.type(0.5)))


def laplace(key, shape=(), dtype=np.float64):
    """Standard Laplace: ``sign(u) log1p(-|u|)``, u uniform in (-1, 1)."""
    dtype = _float_dtype(dtype, "laplace")
    u = uniform(key, _shape(shape), dtype, -1.0 + np.finfo(dtype).epsneg, 1.0)
    return gnp.sign(u) * gnp.log1p(-gnp.abs(u))


def logistic(key, shape=(), dtype=np.float64):
    """Standard logistic: ``log(u) - log1p(-u)``, u uniform in [tiny, 1)."""
    dtype = _float_dtype(dtype, "logistic")
    x = uniform(key, _shape(shape), dtype, np.finfo(dtype).tiny, 1.0)
    return gnp.log(x) - gnp.log1p(-x)


def lognormal(key, sigma=1.0, shape=None, dtype=np.float64):
    """``exp(sigma * normal)``."""
    dtype = _float_dtype(dtype, "lognormal")
    shape = _params_shape("lognormal", shape, sigma)
    return gnp.exp(normal(key, shape, dtype) * _param(sigma, dtype))


def pareto(key, b, shape=None, dtype=np.float64):
    """Pareto with shape ``b`` (on [1, inf)): ``exp(exponential / b)``."""
    dtype = _float_dtype(dtype, "pareto")
    shape = _params_shape("pareto", shape, b)
    return gnp.exp(exponential(key, shape, dtype) / _param(b, dtype))


def rademacher(key, shape=(), dtype=np.int64):
    """-1 or 1 with probability 1/2 each (``2 bernoulli - 1``), in ``dtype`` (int64 by
    default, as JAX's with x64)."""
    b = gnp.astype(bernoulli(key, 0.5, _shape(shape)), dtype)
    return gnp.astype(2 * b - 1, dtype)


def maxwell(key, shape=(), dtype=np.float64):
    """One-sided Maxwell: the norm of 3 standard normals."""
    dtype = _float_dtype(dtype, "maxwell")
    return gnp.linalg.norm(normal(key, _shape(shape) + (3,), dtype), axis=-1)


def double_sided_maxwell(key, loc, scale, shape=(), dtype=np.float64):
    """``rademacher * maxwell * scale + loc``; ``shape`` is prepended to the
    parameters' broadcast shape."""
    dtype = _float_dtype(dtype, "double_sided_maxwell")
    params = tuple(np.broadcast_shapes(tuple(np.shape(loc)) if not hasattr(loc, "shape") else tuple(loc.shape),
                                       tuple(np.shape(scale)) if not hasattr(scale, "shape") else tuple(scale.shape)))
    shape = _shape(shape)
    shape = (shape or params) + params
    k1, k2 = split(key)
    return rademacher(k2, shape, dtype) * maxwell(k1, shape, dtype) * _param(scale, dtype) + _param(loc, dtype)


def rayleigh(key, scale, shape=None, dtype=np.float64):
    """Rayleigh with ``scale``: ``scale sqrt(-2 log u)``."""
    dtype = _float_dtype(dtype, "rayleigh")
    shape = _params_shape("rayleigh", shape, scale)
    u = uniform(key, shape, dtype)
    return gnp.broadcast_to(_param(scale, dtype), shape) * gnp.sqrt(gnp.log(u) * dtype.type(-2))


def weibull_min(key, scale, concentration, shape=(), dtype=np.float64):
    """Weibull: the inverse CDF ``(-log1p(-u)) ** (1 / concentration) * scale``."""
    dtype = _float_dtype(dtype, "weibull_min")
    u = uniform(key, _shape(shape), dtype, 0.0, 1.0)
    return gnp.power(-gnp.log1p(-u), 1.0 / _param(concentration, dtype)) * _param(scale, dtype)


def triangular(key, left, mode, right, shape=None, dtype=np.float64):
    """Triangular on [left, right] with its peak at ``mode``, by the inverse CDF."""
    dtype = _float_dtype(dtype, "triangular")
    shape = _params_shape("triangular", shape, left, mode, right)
    left, right, mode = (gnp.broadcast_to(_param(p, dtype), shape) for p in (left, right, mode))
    fc = (mode - left) / (right - left)
    u = uniform(key, shape, dtype)
    out1 = left + gnp.sqrt(u * (right - left) * (mode - left))
    out2 = right - gnp.sqrt((1 - u) * (right - left) * (right - mode))
    return gnp.where(u < fc, out1, out2)


def wald(key, mean, shape=None, dtype=np.float64):
    """Wald (inverse Gaussian, shape 1) with ``mean``: Michael, Schucany and Haas's
    transformation of a normal and a uniform draw."""
    dtype = _float_dtype(dtype, "wald")
    shape = _params_shape("wald", shape, mean)
    k1, k2 = split(key)
    mean = gnp.broadcast_to(_param(mean, dtype), shape)
    v = normal(k1, shape, dtype)
    z = uniform(k2, shape, dtype)
    y = v * v
    y_sq = y * y
    mean_sq = mean * mean
    sqrt_term = gnp.sqrt(4 * mean * y + mean_sq * y_sq)
    x = mean + mean_sq * y / 2 - mean / 2 * sqrt_term
    return gnp.where(z <= mean / (mean + x), x, mean_sq / x)


def geometric(key, p, shape=None, dtype=np.int64):
    """The number of Bernoulli(p) trials to the first success (1, 2, ...):
    ``floor(log(u) / log1p(-p)) + 1``."""
    p = gnp.asarray(p)
    p = p if p.dtype.kind == "f" else gnp.astype(p, np.float64)
    shape = _params_shape("geometric", shape, p)
    u = uniform(key, shape, p.dtype)
    u = gnp.where(u == 0, p.dtype.type(1), u)
    g = gnp.floor(gnp.log(u) / gnp.broadcast_to(gnp.log1p(-p), shape)) + 1
    return gnp.astype(g, dtype)


def multivariate_normal(key, mean, cov, shape=None, dtype=None, method="cholesky"):
    """``mean + factor @ normal`` with ``factor factor^T = cov`` from ``method``:
    "cholesky" (the default), "eigh" or "svd"; batches of means and covariances
    broadcast, and ``shape`` is the batch shape of the samples."""
    if method not in ("svd", "eigh", "cholesky"):
        raise ArgumentError(f"gradc.random.multivariate_normal: method must be 'svd', 'eigh' or 'cholesky', "
                            f"got {method!r}")
    mean, cov = gnp.asarray(mean), gnp.asarray(cov)
    ftype = np.result_type(mean.dtype, cov.dtype, np.float32 if mean.dtype == cov.dtype == np.float32
                           else np.float64)
    dtype = _float_dtype(ftype if dtype is None else dtype, "multivariate_normal")
    mean, cov = gnp.astype(mean, dtype), gnp.astype(cov, dtype)
    if mean.ndim < 1 or cov.ndim < 2 or tuple(cov.shape[-2:]) != (mean.shape[-1], mean.shape[-1]):
        raise ArgumentError(f"gradc.random.multivariate_normal: mean must be (..., n) and cov (..., n, n); got "
                            f"{tuple(mean.shape)} and {tuple(cov.shape)}")
    batch = tuple(np.broadcast_shapes(tuple(mean.shape[:-1]), tuple(cov.shape[:-2])))
    shape = batch if shape is None else _params_shape("multivariate_normal", shape, np.empty(batch))
    if method == "svd":
        u, s, _ = gnp.linalg.svd(cov)
        factor = u * gnp.sqrt(s[..., None, :])
    elif method == "eigh":
        w, v = gnp.linalg.eigh(cov)
        factor = v * gnp.sqrt(w[..., None, :])
    else:
        factor = gnp.linalg.cholesky(cov)
    z = normal(key, shape + tuple(mean.shape[-1:]), dtype)
    return mean + gnp.einsum("...ij,...j->...i", factor, z)


def orthogonal(key, n, shape=(), dtype=np.float64, m=None):
    """A matrix uniform on the orthogonal group O(n) (Haar measure), or with ``m`` an
    n x m one with orthonormal rows (n <= m) or columns: the Q of a QR factorization of
    normal draws, its columns' signs fixed by R's diagonal."""
    dtype = _float_dtype(dtype, "orthogonal")
    n = int(n)
    m = n if m is None else int(m)
    z = normal(key, _shape(shape) + (max(n, m), min(n, m)), dtype)
    q, r = gnp.linalg.qr(z)
    d = gnp.diagonal(r, axis1=-2, axis2=-1)
    x = q * gnp.expand_dims(gnp.sign(d), -2)
    return gnp.swapaxes(x, -1, -2) if n < m else x


def key_data(keys):
    """The raw ``uint32`` words of keys: gradc's keys are those words already."""
    return keys


def wrap_key_data(key_bits_array, *, impl=None, dtype=None):
    """Keys from raw ``uint32`` words (``impl`` must be threefry, the only one)."""
    if impl not in (None, "threefry2x32", "threefry"):
        raise ArgumentError(f"gradc.random.wrap_key_data: gradc's keys are Threefry-2x32's; got impl={impl!r}")
    return key_bits_array


def clone(key):
    """The key itself: gradc's keys are values, never consumed."""
    return key
