"""optax's API over gradc, so a JAX training loop ports with one changed import::

    import gradc.optax as optax

    opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

A :class:`GradientTransformation` is a pair of pure functions ``init(params) -> state``
and ``update(updates, state, params=None) -> (updates, state)`` over pytrees; states are
NamedTuples of arrays, so an update runs eagerly on numpy arrays or inside
``gradc.jit`` of a whole training step.  ``chain`` composes transformations; the
optimizers are chains of the ``scale_by_*`` blocks, as optax builds them, with optax's
equations (``t`` counts updates from 1, ``g`` is an update leaf):

* ``scale_by_adam``: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g²``,
  ``g ← m̂ / (sqrt(v̂ + eps_root) + eps)``, ``m̂ = m / (1 - b1ᵗ)``, ``v̂ = v / (1 - b2ᵗ)``
  (``nesterov``: ``m̂ = b1 m / (1 - b1ᵗ⁺¹) + (1 - b1) g / (1 - b1ᵗ)``);
* ``scale_by_rms``: ``v = d v + (1 - d) g²``, ``g ← g / sqrt(v + eps)`` (``eps_in_sqrt``)
  or ``g / (sqrt(v) + eps)``; ``scale_by_stddev`` centres ``v`` by ``m²``;
* ``scale_by_rss``: ``s = s + g²``, ``g ← g / sqrt(s + eps)`` (0 where ``s`` is 0);
* ``trace`` (momentum): ``τ = g + d τ``, ``g ← τ`` (``nesterov``: ``g + d τ``);
* ``add_decayed_weights``: ``g ← g + w p``; ``scale_by_learning_rate``: ``g ← -lr(t-1) g``.

Schedules (functions of the update count) are in :mod:`gradc.optax_schedules`, losses in
:mod:`gradc.optax_losses`; both are re-exported here under optax's names.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import numpy as gnp
from .errors import ArgumentError
from .optax_losses import (cosine_distance, cosine_similarity, huber_loss, l2_loss, log_cosh,  # noqa: F401
                           sigmoid_binary_cross_entropy, softmax_cross_entropy,
                           softmax_cross_entropy_with_integer_labels, squared_error)
from .optax_schedules import (constant_schedule, cosine_decay_schedule, exponential_decay,  # noqa: F401
                              join_schedules, linear_schedule, piecewise_constant_schedule,
                              polynomial_schedule, warmup_constant_schedule, warmup_cosine_decay_schedule,
                              warmup_exponential_decay_schedule)
from .tree_util import tree_leaves, tree_map, tree_structure


class GradientTransformation(NamedTuple):
    """optax's pair: ``init(params) -> state``, ``update(updates, state, params=None)
    -> (updates, state)``."""
    init: Callable
    update: Callable


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


class ScaleByAdamState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


class ScaleByRmsState(NamedTuple):
    nu: Any


class ScaleByRStdDevState(NamedTuple):
    mu: Any
    nu: Any


class ScaleByRssState(NamedTuple):
    sum_of_squares: Any


class TraceState(NamedTuple):
    trace: Any


class ScaleByScheduleState(NamedTuple):
    count: Any


# ----------------------------------------------------------------------------- helpers
def _zeros(params, dtype=None):
    return tree_map(lambda p: gnp.zeros(gnp.shape(p), dtype or gnp.asarray(p).dtype), params)


def _count0():
    return gnp.zeros((), np.int32)


def safe_increment(count):
    """count + 1, saturating at its dtype's largest value (optax.safe_increment)."""
    top = np.iinfo(np.int32).max
    return gnp.where(count < top, count + 1, top).astype(np.int32)


def _bias_corrected(moment, decay, count):
    """moment / (1 - decayᵗ), in the moment's dtype."""
    correction = 1.0 - decay ** gnp.asarray(count).astype(np.float64)
    return tree_map(lambda t: t / correction.astype(gnp.asarray(t).dtype), moment)


def _same_structure(updates, state_tree, name):
    if tree_structure(updates) != tree_structure(state_tree):
        raise ArgumentError(f"optax.{name}: the updates' structure {tree_structure(updates)} differs from the "
                            f"one the state was initialised with {tree_structure(state_tree)}")


def _positive(name, **values):
    for k, v in values.items():
        if not callable(v) and not np.all(np.asarray(v) >= 0):
            raise ArgumentError(f"optax.{name}: {k} must be >= 0, got {v!r}")


# ----------------------------------------------------------------------------- combinators
def identity() -> GradientTransformation:
    """Leaves the updates as they are."""
    return GradientTransformation(lambda params: EmptyState(), lambda updates, state, params=None: (updates, state))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Each transformation's output updates are the next one's input; the state is the
    tuple of their states."""
    for t in transforms:
        if not (hasattr(t, "init") and hasattr(t, "update")):
            raise ArgumentError(f"optax.chain: expected GradientTransformations, got {type(t).__name__}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        if len(state) != len(transforms):
            raise ArgumentError(f"optax.chain: the state has {len(state)} parts for {len(transforms)} transformations")
        new = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new.append(s)
        return updates, tuple(new)
    return GradientTransformation(init, update)


def apply_updates(params, updates):
    """params + updates, each leaf in its parameter's dtype."""
    return tree_map(lambda p, u: gnp.asarray(p + u).astype(gnp.asarray(p).dtype), params, updates)


def global_norm(updates):
    """sqrt of the sum of squares of every leaf."""
    return gnp.sqrt(sum(gnp.sum(gnp.square(x)) for x in tree_leaves(updates)))


# ----------------------------------------------------------------------------- transformations
def scale(step_size) -> GradientTransformation:
    """g ← step_size g."""
    return GradientTransformation(lambda params: EmptyState(),
                                  lambda updates, state, params=None: (tree_map(lambda g: step_size * g, updates),
                                                                       state))


def scale_by_schedule(step_size_fn: Callable) -> GradientTransformation:
    """g ← step_size_fn(count) g, count the number of updates before this one."""
    def update(updates, state, params=None):
        step = step_size_fn(state.count)
        return (tree_map(lambda g: gnp.asarray(step).astype(gnp.asarray(g).dtype) * g, updates),
                ScaleByScheduleState(safe_increment(state.count)))
    return GradientTransformation(lambda params: ScaleByScheduleState(_count0()), update)


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """g ← -lr g (a number or a schedule of the update count)."""
    m = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: m * learning_rate(count))
    return scale(m * learning_rate)


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False):
    """Adam's rescaling (Kingma and Ba, 2015); ``nesterov``: NAdam's (Dozat, 2016)."""
    _positive("scale_by_adam", b1=b1, b2=b2, eps=eps, eps_root=eps_root)

    def init(params):
        return ScaleByAdamState(_count0(), _zeros(params, mu_dtype), _zeros(params))

    def update(updates, state, params=None):
        _same_structure(updates, state.mu, "scale_by_adam")
        mu = tree_map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = tree_map(lambda g, v: (1 - b2) * gnp.square(g) + b2 * v, updates, state.nu)
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = tree_map(lambda m, g: b1 * m + (1 - b1) * g,
                              _bias_corrected(mu, b1, safe_increment(count)), _bias_corrected(updates, b1, count))
        else:
            mu_hat = _bias_corrected(mu, b1, count)
        nu_hat = _bias_corrected(nu, b2, count)
        out = tree_map(lambda m, v: m / (gnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        if mu_dtype is not None:
            mu = tree_map(lambda m: m.astype(mu_dtype), mu)
        return out, ScaleByAdamState(count, mu, nu)
    return GradientTransformation(init, update)


def scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True) -> GradientTransformation:
    """RMSProp's rescaling by the root of the moving average of g²."""
    _positive("scale_by_rms", decay=decay, eps=eps, initial_scale=initial_scale)

    def update(updates, state, params=None):
        _same_structure(updates, state.nu, "scale_by_rms")
        nu = tree_map(lambda g, v: (1 - decay) * gnp.square(g) + decay * v, updates, state.nu)
        if eps_in_sqrt:
            out = tree_map(lambda g, v: g / gnp.sqrt(v + eps), updates, nu)
        else:
            out = tree_map(lambda g, v: g / (gnp.sqrt(v) + eps), updates, nu)
        return out, ScaleByRmsState(nu)
    return GradientTransformation(
        lambda params: ScaleByRmsState(tree_map(lambda p: gnp.full(gnp.shape(p), initial_scale, gnp.asarray(p).dtype),
                                                params)), update)


def scale_by_stddev(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True) -> GradientTransformation:
    """Centred RMSProp's rescaling: by the root of the moving variance of g."""
    _positive("scale_by_stddev", decay=decay, eps=eps, initial_scale=initial_scale)

    def init(params):
        return ScaleByRStdDevState(_zeros(params), tree_map(
            lambda p: gnp.full(gnp.shape(p), initial_scale, gnp.asarray(p).dtype), params))

    def update(updates, state, params=None):
        _same_structure(updates, state.nu, "scale_by_stddev")
        mu = tree_map(lambda g, m: (1 - decay) * g + decay * m, updates, state.mu)
        nu = tree_map(lambda g, v: (1 - decay) * gnp.square(g) + decay * v, updates, state.nu)
        if eps_in_sqrt:
            out = tree_map(lambda g, m, v: g / gnp.sqrt(v - gnp.square(m) + eps), updates, mu, nu)
        else:
            out = tree_map(lambda g, m, v: g / (gnp.sqrt(v - gnp.square(m)) + eps), updates, mu, nu)
        return out, ScaleByRStdDevState(mu, nu)
    return GradientTransformation(init, update)


def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7) -> GradientTransformation:
    """AdaGrad's rescaling by the root of the sum of g²."""
    _positive("scale_by_rss", initial_accumulator_value=initial_accumulator_value, eps=eps)

    def update(updates, state, params=None):
        _same_structure(updates, state.sum_of_squares, "scale_by_rss")
        sos = tree_map(lambda g, s: gnp.square(g) + s, updates, state.sum_of_squares)
        inv = tree_map(lambda s: gnp.where(s > 0, 1.0 / gnp.sqrt(s + eps), 0.0).astype(gnp.asarray(s).dtype), sos)
        out = tree_map(lambda r, g: r * g, inv, updates)
        return out, ScaleByRssState(sos)
    return GradientTransformation(
        lambda params: ScaleByRssState(tree_map(
            lambda p: gnp.full(gnp.shape(p), initial_accumulator_value, gnp.asarray(p).dtype), params)), update)


def trace(decay, nesterov: bool = False, accumulator_dtype=None) -> GradientTransformation:
    """Momentum: τ = g + decay τ; the update is τ (``nesterov``: g + decay τ)."""
    _positive("trace", decay=decay)

    def update(updates, state, params=None):
        _same_structure(updates, state.trace, "trace")
        new = tree_map(lambda g, t: g + decay * t, updates, state.trace)
        out = tree_map(lambda g, t: g + decay * t, updates, new) if nesterov else new
        if accumulator_dtype is not None:
            new = tree_map(lambda t: t.astype(accumulator_dtype), new)
        return out, TraceState(new)
    return GradientTransformation(lambda params: TraceState(_zeros(params, accumulator_dtype)), update)


def _mask_tree(mask, params):
    m = mask(params) if callable(mask) else mask
    if tree_structure(m) != tree_structure(params):
        raise ArgumentError(f"optax: the mask's structure {tree_structure(m)} differs from the parameters' "
                            f"{tree_structure(params)}")
    return m


def add_decayed_weights(weight_decay=0.0, mask=None) -> GradientTransformation:
    """g ← g + weight_decay p (where ``mask``, a pytree of bools or a function of the
    parameters giving one, is True)."""
    def update(updates, state, params=None):
        if params is None:
            raise ArgumentError("optax.add_decayed_weights: update(...) needs params (the weights to decay)")
        if mask is None:
            return tree_map(lambda g, p: g + weight_decay * p, updates, params), state
        m = _mask_tree(mask, params)
        return tree_map(lambda g, p, k: g + weight_decay * p if k else g, updates, params, m), state
    return GradientTransformation(lambda params: EmptyState(), update)


def clip(max_delta) -> GradientTransformation:
    """Each element of g clipped to [-max_delta, max_delta]."""
    _positive("clip", max_delta=max_delta)
    return GradientTransformation(
        lambda params: EmptyState(),
        lambda updates, state, params=None: (tree_map(lambda g: gnp.clip(g, -max_delta, max_delta), updates), state))


def clip_by_global_norm(max_norm) -> GradientTransformation:
    """g scaled by max_norm / ‖g‖ when the global norm ‖g‖ of all leaves exceeds max_norm."""
    _positive("clip_by_global_norm", max_norm=max_norm)

    def update(updates, state, params=None):
        norm = global_norm(updates)
        small = norm < max_norm
        return tree_map(lambda g: gnp.where(small, g, (g / norm.astype(gnp.asarray(g).dtype)) * max_norm)
                        .astype(gnp.asarray(g).dtype), updates), state
    return GradientTransformation(lambda params: EmptyState(), update)


# ----------------------------------------------------------------------------- optimizers
def sgd(learning_rate, momentum=None, nesterov: bool = False, accumulator_dtype=None) -> GradientTransformation:
    """Stochastic gradient descent, with momentum (``trace``) when ``momentum`` is given."""
    return chain(trace(momentum, nesterov, accumulator_dtype) if momentum is not None else identity(),
                 scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False):
    """Adam (Kingma and Ba, 2015)."""
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 scale_by_learning_rate(learning_rate))


def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None):
    """Adam with Nesterov momentum (Dozat, 2016)."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, weight_decay=1e-4,
          mask=None, *, nesterov=False):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019)."""
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, centered=False,
            momentum=None, nesterov=False):
    """RMSProp (Tieleman and Hinton, 2012); ``centered``: by the moving variance."""
    rescale = (scale_by_stddev if centered else scale_by_rms)(decay, eps, initial_scale, eps_in_sqrt)
    return chain(rescale, scale_by_learning_rate(learning_rate),
                 trace(momentum, nesterov) if momentum is not None else identity())


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
    """AdaGrad (Duchi et al., 2011)."""
    return chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))
