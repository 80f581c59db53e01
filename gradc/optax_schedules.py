"""optax's schedules: functions of the update count (an int, or a traced int32 inside
``gradc.jit``) giving a learning rate or another hyperparameter, with optax's formulas
(``c`` is the count):

* ``polynomial_schedule``: ``(init - end) (1 - c'/T)^power + end``, ``c' = clip(c - begin, 0, T)``;
  ``linear_schedule`` is its power 1;
* ``exponential_decay``: ``init · rate^((c - begin)/T)`` (floored with ``staircase``), ``init``
  before ``begin``, bounded by ``end_value``;
* ``cosine_decay_schedule``: ``init ((1 - alpha) (½ (1 + cos(π min(c, T)/T)))^exponent + alpha)``;
* ``piecewise_constant_schedule``: ``init`` times each scale whose boundary c has reached;
* ``join_schedules``: the i-th schedule, on ``c - boundary``, from the i-th boundary on;
  the warmup schedules join a linear warmup to a constant, cosine or exponential decay.

A schedule that optax makes constant (``transition_steps <= 0``, ``decay_rate == 0``) is
constant here too.
"""
from __future__ import annotations

import math

from . import numpy as gnp
from .errors import ArgumentError


def constant_schedule(value):
    """The same value at every count."""
    return lambda count: value


def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0):
    """From init_value to end_value over transition_steps counts after transition_begin."""
    if transition_steps <= 0:
        return constant_schedule(init_value)
    begin = max(transition_begin, 0)

    def schedule(count):
        c = gnp.clip(count - begin, 0, transition_steps)
        frac = 1 - c / transition_steps
        return (init_value - end_value) * frac ** power + end_value
    return schedule


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    """A straight line from init_value to end_value over transition_steps counts."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(init_value, boundaries_and_scales=None):
    """init_value times the scale of every boundary the count has reached."""
    items = sorted((boundaries_and_scales or {}).items())
    for b, sc in items:
        if not float(b) == int(b) or b < 0:
            raise ArgumentError(f"optax.piecewise_constant_schedule: boundaries must be counts >= 0, got {b!r}")

    def schedule(count):
        v = init_value
        for threshold, sc in items:
            indicator = gnp.maximum(0.0, gnp.sign(threshold - count))
            v = v * indicator + (1 - indicator) * sc * v
        return v
    return schedule


def exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0, staircase=False,
                      end_value=None):
    """init_value · decay_rate^((count - transition_begin) / transition_steps); end_value
    bounds it (from below when decay_rate < 1, from above otherwise)."""
    if transition_steps <= 0 or decay_rate == 0:
        return constant_schedule(init_value)
    begin = max(transition_begin, 0)
    bound = None if end_value is None else (gnp.maximum if decay_rate < 1.0 else gnp.minimum)

    def schedule(count):
        c = count - begin
        p = c / transition_steps
        if staircase:
            p = gnp.floor(p)
        v = gnp.where(c <= 0, init_value, init_value * gnp.power(decay_rate, p))
        return v if bound is None else bound(v, end_value)
    return schedule


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    """A half cosine from init_value down to alpha · init_value over decay_steps counts."""
    if not decay_steps > 0:
        raise ArgumentError(f"optax.cosine_decay_schedule: decay_steps must be > 0, got {decay_steps!r}")

    def schedule(count):
        c = gnp.minimum(count, float(decay_steps))
        cosine = 0.5 * (1 + gnp.cos(math.pi * c / decay_steps))
        return init_value * ((1 - alpha) * cosine ** exponent + alpha)
    return schedule


def join_schedules(schedules, boundaries):
    """schedules[0] before boundaries[0], then schedules[i] of (count - boundaries[i-1])."""
    if len(schedules) != len(boundaries) + 1:
        raise ArgumentError(f"optax.join_schedules: {len(schedules)} schedules need {len(schedules) - 1} "
                            f"boundaries, got {len(boundaries)}")

    def schedule(count):
        out = schedules[0](count)
        for boundary, s in zip(boundaries, schedules[1:]):
            out = gnp.where(count < boundary, out, s(count - boundary))
        return out
    return schedule


def warmup_constant_schedule(init_value, peak_value, warmup_steps):
    """A linear warmup to peak_value, then peak_value."""
    return linear_schedule(init_value, peak_value, warmup_steps)


def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value=0.0, exponent=1.0):
    """A linear warmup to peak_value, then a cosine decay to end_value at decay_steps
    (which counts the warmup)."""
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent)],
                          [warmup_steps])


def warmup_exponential_decay_schedule(init_value, peak_value, warmup_steps, transition_steps, decay_rate,
                                      transition_begin=0, staircase=False, end_value=None):
    """A linear warmup to peak_value, then an exponential decay."""
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           exponential_decay(peak_value, transition_steps, decay_rate, transition_begin,
                                             staircase, end_value)], [warmup_steps])
