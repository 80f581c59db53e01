"""optax's common losses, element- or example-wise as optax returns them (the caller
takes the mean), written with gradc.numpy so they trace and differentiate:

* ``squared_error``: ``(p - t)²``; ``l2_loss``: half of it;
* ``huber_loss``: ``½ q² + δ (|e| - q)``, ``q = min(|e|, δ)``; ``log_cosh``: ``log cosh e``
  (``logaddexp(e, -e) - log 2``, stable for large ``|e|``);
* ``softmax_cross_entropy``: ``-Σ labels · log_softmax(logits)`` over ``axis``;
  ``..._with_integer_labels``: ``logsumexp(logits) - logits[label]``;
* ``sigmoid_binary_cross_entropy``: ``-y log σ(x) - (1 - y) log σ(-x)``;
* ``cosine_similarity``: ``Σ a b / (‖a‖ ‖b‖)`` (norms at least ``sqrt(epsilon)``);
  ``cosine_distance``: one minus it.
"""
from __future__ import annotations

import math

import numpy as np

from . import nn
from . import numpy as gnp
from .errors import ArgumentError, UnsupportedError


def _errors(predictions, targets):
    return predictions if targets is None else predictions - targets


def squared_error(predictions, targets=None):
    """(predictions - targets)² element by element."""
    return gnp.square(_errors(predictions, targets))


def l2_loss(predictions, targets=None):
    """½ (predictions - targets)² element by element."""
    return 0.5 * squared_error(predictions, targets)


def huber_loss(predictions, targets=None, delta=1.0):
    """Quadratic within delta of the target, linear beyond."""
    abs_err = gnp.abs(_errors(predictions, targets))
    quadratic = gnp.minimum(abs_err, delta)
    return 0.5 * gnp.square(quadratic) + delta * (abs_err - quadratic)


def log_cosh(predictions, targets=None):
    """log cosh(predictions - targets)."""
    e = _errors(predictions, targets)
    return gnp.logaddexp(e, -e) - math.log(2.0)


def _plain(where, axis, name):
    if where is not None:
        raise UnsupportedError(f"optax.{name}: where= is not supported; mask the result instead")
    if not isinstance(axis, (int, np.integer)):
        raise UnsupportedError(f"optax.{name}: axis must be one int, got {axis!r}")


def softmax_cross_entropy(logits, labels, axis=-1, where=None):
    """The cross-entropy of the softmax of logits against label distributions."""
    _plain(where, axis, "softmax_cross_entropy")
    return -gnp.sum(labels * nn.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis=-1, where=None):
    """The cross-entropy of the softmax of logits against integer class labels."""
    _plain(where, axis, "softmax_cross_entropy_with_integer_labels")
    if not np.issubdtype(gnp.asarray(labels).dtype, np.integer):
        raise ArgumentError(f"optax.softmax_cross_entropy_with_integer_labels: labels must be integers, got "
                            f"dtype {gnp.asarray(labels).dtype}")
    picked = gnp.take_along_axis(logits, gnp.expand_dims(labels, axis), axis=axis)
    return gnp.logsumexp(logits, axis=axis) - gnp.squeeze(picked, axis=axis)


def sigmoid_binary_cross_entropy(logits, labels):
    """The cross-entropy of sigmoid(logits) against labels in [0, 1]."""
    return -labels * nn.log_sigmoid(logits) - (1.0 - labels) * nn.log_sigmoid(-logits)


def cosine_similarity(predictions, targets, epsilon=0.0, axis=-1, where=None):
    """The cosine of the angle between predictions and targets along ``axis``."""
    _plain(where, axis, "cosine_similarity")
    a_norm = gnp.sqrt(gnp.maximum(gnp.sum(gnp.square(predictions), axis=axis, keepdims=True), epsilon))
    b_norm = gnp.sqrt(gnp.maximum(gnp.sum(gnp.square(targets), axis=axis, keepdims=True), epsilon))
    return gnp.sum((predictions / a_norm) * (targets / b_norm), axis=axis)


def cosine_distance(predictions, targets, epsilon=0.0, axis=-1, where=None):
    """1 - cosine_similarity."""
    return 1.0 - cosine_similarity(predictions, targets, epsilon, axis, where)
