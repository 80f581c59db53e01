"""Optimizers over pytrees of parameters, with a functional API in the style of optax::

    opt = gradc.optim.adam(1e-3)
    state = opt.init(params)                              # params: any pytree of arrays
    for step in range(steps):
        grads = gradc.grad(loss)(params, X, y)            # the same structure as params
        params, state = opt.update(grads, state, params)

``update`` returns new parameters and a new state and changes nothing in place, so it
also runs inside a traced function (``gradc.jit`` of a whole training step, with the
state passed as an argument: it is a pytree too).  ``learning_rate`` is a number or a
schedule, a function of the step count (0 on the first update).

The update equations (``t`` counts updates from 1, ``g`` is a gradient leaf):

* ``sgd``:   ``v = momentum·v + g``; ``p -= lr·v`` (``nesterov``: ``p -= lr·(g + momentum·v)``);
  without momentum simply ``p -= lr·g``.
* ``adam``:  ``m = b1·m + (1−b1)·g``; ``s = b2·s + (1−b2)·g²``;
  ``p -= lr·(m/(1−b1ᵗ)) / (sqrt(s/(1−b2ᵗ)) + eps)``  (Kingma & Ba, 2015).
* ``adamw``: Adam with decoupled weight decay: ``p -= lr·(adam step + weight_decay·p)``
  (Loshchilov & Hutter, 2019; optax's and PyTorch's AdamW).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .errors import ArgumentError
from .tree_util import tree_map, tree_structure

__all__ = ["Optimizer", "SGDState", "AdamState", "sgd", "adam", "adamw"]


class Optimizer(NamedTuple):
    """``init(params) -> state``; ``update(grads, state, params) -> (params, state)``."""
    init: Callable
    update: Callable


class SGDState(NamedTuple):
    count: Any            # updates so far
    velocity: Any         # a pytree like params (None without momentum)


class AdamState(NamedTuple):
    count: Any
    mu: Any               # first moment estimates, a pytree like params
    nu: Any               # second moment estimates


def _rate(learning_rate, count):
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _zeros(params):
    return tree_map(lambda p: p * 0 if _traced(p) else np.zeros_like(np.asarray(p)), params)


def _traced(x) -> bool:
    from .tracer import Value
    return isinstance(x, Value)


def _check(grads, params, name):
    if tree_structure(grads) != tree_structure(params):
        raise ArgumentError(f"{name}.update: the gradients' structure {tree_structure(grads)} differs "
                            f"from the parameters' {tree_structure(params)}")


def _positive(name, **values):
    for k, v in values.items():
        if not callable(v) and not v >= 0:
            raise ArgumentError(f"{name}: {k} must be a non-negative number, got {v!r}")


def sgd(learning_rate, momentum: float = 0.0, nesterov: bool = False) -> Optimizer:
    """Stochastic gradient descent, with (heavy-ball or Nesterov) momentum if ``momentum > 0``."""
    _positive("sgd", learning_rate=learning_rate, momentum=momentum)

    def init(params):
        return SGDState(0, _zeros(params) if momentum else None)

    def update(grads, state, params):
        _check(grads, params, "sgd")
        lr = _rate(learning_rate, state.count)
        if not momentum:
            return tree_map(lambda p, g: p - lr * g, params, grads), SGDState(state.count + 1, None)
        vel = tree_map(lambda v, g: momentum * v + g, state.velocity, grads)
        if nesterov:
            new = tree_map(lambda p, g, v: p - lr * (g + momentum * v), params, grads, vel)
        else:
            new = tree_map(lambda p, v: p - lr * v, params, vel)
        return new, SGDState(state.count + 1, vel)
    return Optimizer(init, update)


def adam(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015) with bias-corrected moment estimates."""
    return _adam("adam", learning_rate, b1, b2, eps, 0.0)


def adamw(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 1e-4) -> Optimizer:
    """AdamW: Adam with weight decay decoupled from the gradient (Loshchilov & Hutter,
    2019): each step also subtracts ``learning_rate * weight_decay * p``."""
    return _adam("adamw", learning_rate, b1, b2, eps, weight_decay)


def _adam(name, learning_rate, b1, b2, eps, weight_decay):
    _positive(name, learning_rate=learning_rate, eps=eps, weight_decay=weight_decay)
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ArgumentError(f"{name}: b1 and b2 must lie in [0, 1), got b1={b1!r}, b2={b2!r}")

    def init(params):
        return AdamState(0, _zeros(params), _zeros(params))

    def update(grads, state, params):
        _check(grads, params, name)
        lr = _rate(learning_rate, state.count)
        t = state.count + 1
        mu = tree_map(lambda m, g: _like(b1 * m + (1 - b1) * g, g), state.mu, grads)
        nu = tree_map(lambda s, g: _like(b2 * s + (1 - b2) * (g * g), g), state.nu, grads)
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t

        def step(p, m, s):
            d = (m / c1) / (np.sqrt(s / c2) + eps)
            if weight_decay:
                d = d + weight_decay * p
            return _like(p - lr * d, p)
        return tree_map(step, params, mu, nu), AdamState(t, mu, nu)
    return Optimizer(init, update)


def _like(x, p):
    """``x`` in ``p``'s dtype: a step count passed through a traced function arrives as
    an array, and its bias corrections must not promote float32 parameters."""
    dt = getattr(p, "dtype", None)
    return x.astype(dt) if dt is not None and getattr(x, "dtype", dt) != dt else x
