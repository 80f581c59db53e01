"""Random ``gradc.lax.scan`` programs for the differential fuzzer (tests/test_fuzz.py,
``test_scan_program``), and their plain-numpy oracle.

A scan program is a random program of ``fuzz_programs.generate`` (its own seed stream)
used as the step: each float argument of ``fuzz_programs.ARGS`` plays one role,

* a carry leaf (1-3 of them; rank 0-3, float64 or float32), updated as
  ``(alpha c + tanh(v + 0.01 i)).astype(c.dtype)``, ``v`` a value of the step that
  broadcasts to the carry's shape (the step's output when none does: its mean), ``i``
  the int64 counter carry some programs have (``i + 1`` each step);
* an ``xs`` leaf (0-2 of them): the argument with a leading steps axis (0-12 steps, 1-3
  at the sizes where nests split over threads), the step reading one slice;
* a weight: closed over by the step, the same every step (the integer argument too);

with ``ys`` of 0-2 of the step's values (integer reductions among them) and
``reverse`` drawn.  The loss adds ``sum(c*c)/2 + sum(c)`` of every final float carry,
the same of every float ``ys`` leaf, and ``0.01`` times the final counter.  ``alpha <
1`` and tanh keep the carries bounded however many steps run.

The oracle runs the same step with the step program's numpy spelling
(``fuzz_programs.run``) in a Python loop, recording every step's branch patterns in one
``Trace`` (finite differences are taken where no step's element changes branch).
"""
from __future__ import annotations

from dataclasses import dataclass

import fuzz_programs as fp
import numpy as onp

import gradc
import gradc.numpy as gnp

MAX_STEPS = 12
UNROLL_SHARE = 0.3      # programs also checked against lax.scan(..., unroll=True)
REMAT_SHARE = 0.3       # programs whose step is checkpointed (the backward loop recomputes it)
BIG_SHARE = 0.15        # programs kept at the body's threaded sizes (else redrawn small)
NAMES = list(fp.ARGS)


@dataclass
class ScanProgram:
    seed: int
    p: fp.Program               # the step's body
    roles: dict                 # float argument -> "carry", "x" or "w"
    alphas: dict                # carry argument -> alpha
    sources: dict               # carry argument -> value index of p (or None: mean of the output)
    ys: list                    # value indices of p stacked as ys
    n: int                      # steps
    reverse: bool
    counter: int | None         # the int64 counter's start, or None
    unroll: bool                # also compare with unroll=True
    out0: int = -1              # the body program's own output (a carry's source where sources has None)
    remat: str | None = None    # the step wrapped in gradc.checkpoint with this policy

    @property
    def backend(self):
        return self.p.backend

    @property
    def big(self):
        return self.p.big

    @property
    def depth(self):
        return self.p.depth

    @property
    def ops(self):
        return self.p.ops

    @property
    def carries(self):
        return [a for a in NAMES if self.roles.get(a) == "carry"]

    @property
    def xs(self):
        return [a for a in NAMES if self.roles.get(a) == "x"]

    def describe(self):
        return (f"scan seed={self.seed} n={self.n} reverse={self.reverse} roles={self.roles} "
                f"alphas={self.alphas} sources={self.sources} ys={self.ys} counter={self.counter} "
                f"unroll={self.unroll} remat={self.remat} | body: {self.p.describe()}")


def generate_scan(seed: int) -> ScanProgram:
    r = onp.random.default_rng((seed, 77))
    body_seed = seed
    for _ in range(20):         # threaded sizes only BIG_SHARE of the time (12 steps of them are slow)
        p = fp.generate(body_seed)
        if not p.big or r.random() < BIG_SHARE:
            break
        body_seed = int(r.integers(1 << 40))
    floats = [a for a in fp.FLOAT_ARGS if a != "T" or p.rank4]
    r.shuffle(floats)
    nc = int(r.integers(1, min(3, len(floats)) + 1))
    nx = min(int(r.choice([0, 1, 1, 2])), len(floats) - nc)
    roles = {a: "w" for a in fp.FLOAT_ARGS}
    roles.update({a: "carry" for a in floats[:nc]})
    roles.update({a: "x" for a in floats[nc:nc + nx]})
    small = not p.big
    for a in floats[:nc + nx]:          # float32 carries and xs beside X's and Y's own draws
        if small and p.dtypes[a] == "float64" and r.random() < 0.2:
            p.dtypes[a] = "float32"
    n = 0 if r.random() < 0.08 else int(r.integers(1, MAX_STEPS + 1) if small else r.integers(1, 4))
    values = [i for i in range(len(fp.ARGS), len(p.shapes)) if p.kinds[i] == "f"]
    sources, alphas = {}, {}
    for a in floats[:nc]:
        shape = fp.ARGS[a][0]
        cands = [i for i in values if fp._broadcast(p.shapes[i], shape) == shape]
        sources[a] = None if not cands else (cands[-1] if r.random() < 0.6 else int(r.choice(cands)))
        alphas[a] = float(r.choice([0.3, 0.5, 0.8, 0.95]))
    ny = int(r.choice([0, 1, 1, 2]))
    pool = values + [o for o in p.outputs if p.kinds[o] == "i"]
    ys = [int(r.choice(pool)) for _ in range(ny)]
    counter = int(r.integers(-3, 5)) if r.random() < 0.3 else None
    sp = ScanProgram(seed, p, roles, alphas, sources, ys, n, bool(r.random() < 0.5), counter,
                     bool(r.random() < UNROLL_SHARE))
    # the body's outputs are exactly the values the scan reads: a value it does not read
    # is dead code in gradc's step, so the numpy loop must not run it either (seed
    # 3100000: the body's own output held a min over an empty axis, which numpy refuses,
    # but only a carry of a value beside it was read, so gradc rightly never computed it)
    sp.out0 = p.outputs[0]
    if r.random() < REMAT_SHARE:        # (drawn last: earlier seeds keep their programs)
        sp.remat = str(r.choice(["nothing_saveable", "dots_saveable", "everything_saveable"]))
    reads = ([sp.out0] if None in sources.values() else []) + [i for i in sources.values() if i is not None] + ys
    p.outputs = list(dict.fromkeys(reads))
    p.depth, p.ops = fp._analyse(p)
    # from the second step on, a carry is tanh's result: ties among its elements (and
    # against other values) are decided by rounding, as any transcendental's
    p.stable = fp._stability(p, computed=set(sp.carries))
    return sp


def make_inputs(sp: ScanProgram):
    """The arguments in ARGS order: carries' initial values and weights as the body's
    own, xs stacked over the steps (slices drawn as further inputs of the body)."""
    args = fp.make_inputs(sp.p)
    slices = [fp.make_inputs(sp.p, seed_offset=10 + t) for t in range(sp.n)]
    for a in sp.xs:
        i = NAMES.index(a)
        shape = onp.shape(args[i])
        args[i] = onp.stack([s[i] for s in slices]) if slices else onp.zeros((0,) + shape, args[i].dtype)
    return args


def _value(sp, outs, i):
    return outs[sp.p.outputs.index(i)]


def _step(sp, m, args, c, x, k, upcast, trace, native):
    """One step on the body's spelling ``m`` (gnp or numpy): (new carries, counter, ys)."""
    a = list(args)
    for name, v in zip(sp.carries, c):
        a[NAMES.index(name)] = v
    for name, v in zip(sp.xs, x):
        a[NAMES.index(name)] = v
    outs = fp.run(sp.p, a, native=native, upcast=upcast, trace=trace)
    new = []
    for name, v in zip(sp.carries, c):
        src = sp.sources[name]
        g = m.mean(_value(sp, outs, sp.out0)) if src is None else _value(sp, outs, src)
        if k is not None:
            g = g + k.astype(m.float64) * 0.01 if native else g + onp.float64(k) * 0.01
        new.append((v * sp.alphas[name] + m.tanh(g)).astype(v.dtype))
    ys = [_value(sp, outs, i) for i in sp.ys]
    return new, (None if k is None else k + 1), ys


def np_scan(sp, args, upcast=False, trace=None):
    """The scan as a Python loop of the body's numpy spelling: (final carries, counter, ys)."""
    args = fp.upcast_args(args) if upcast else list(args)
    c = [onp.asarray(args[NAMES.index(a)]) for a in sp.carries]
    xs = [onp.asarray(args[NAMES.index(a)]) for a in sp.xs]
    k = None if sp.counter is None else onp.int64(sp.counter)
    ys = [None] * sp.n
    for t in (range(sp.n - 1, -1, -1) if sp.reverse else range(sp.n)):
        c, k, ys[t] = _step(sp, onp, args, c, [x[t] for x in xs], k, upcast, trace, native=False)
    if sp.n:
        stacked = [onp.stack([onp.asarray(y[j]) for y in ys]) for j in range(len(sp.ys))]
    else:       # no steps: the ys' shapes from a step not taken
        stacked = [onp.zeros((0,) + sp.p.concrete(sp.p.shapes[i]), dt) for i, dt in zip(sp.ys, _ys_dtypes(sp, args, upcast))]
    if trace is not None:
        # the loss sums every step's terms (the ys stacked, the carries accumulating):
        # the tolerances' term count (test_fuzz._close, _fd_tolerance) is the steps' total
        trace.numel *= max(1, sp.n)
    return c, k, stacked


def _ys_dtypes(sp, args, upcast):
    """The ys' dtypes of a scan of no steps: the body's numpy run on one slice, or where
    that raises (a max over an empty axis, in a step never taken), the dtypes of gradc's
    trace of the body (which runs nothing)."""
    a = list(args)
    for name in sp.xs:
        x = onp.asarray(a[NAMES.index(name)])
        a[NAMES.index(name)] = onp.zeros(x.shape[1:], x.dtype)
    try:
        outs = fp.run(sp.p, a, native=False, upcast=upcast)
        return [onp.asarray(_value(sp, outs, i)).dtype for i in sp.ys]
    except (ValueError, IndexError):
        g = gradc.trace(lambda *v: tuple(fp.run(sp.p, v, native=True, upcast=upcast)), *a)
        return [g[g.outputs[sp.p.outputs.index(i)]].dtype for i in sp.ys]


def gradc_scan(sp, args, upcast=False, unroll=False):
    """The scan in gradc: ``lax.scan`` of the body's gradc spelling, weights closed over."""
    c0 = tuple(args[NAMES.index(a)] for a in sp.carries)
    counted = sp.counter is not None
    init = (c0, onp.int64(sp.counter)) if counted else c0
    xs = tuple(args[NAMES.index(a)] for a in sp.xs) or None

    def f(carry, x):
        c, k = carry if counted else (carry, None)
        new, k2, ys = _step(sp, gnp, args, list(c), list(x or ()), k, upcast, None, native=True)
        return ((tuple(new), k2) if counted else tuple(new)), tuple(ys)
    if sp.remat:
        f = gradc.checkpoint(f, policy=getattr(gradc.checkpoint_policies, sp.remat))
    carry, ys = gradc.lax.scan(f, init, xs, length=None if xs else sp.n, reverse=sp.reverse,
                               unroll=True if unroll else 1)
    c, k = carry if counted else (carry, None)
    return list(c), k, list(ys)


def _loss_terms(m, c, k, ys):
    total = 0.0
    for v in list(c) + [y for y in ys if onp.dtype(y.dtype).kind == "f"]:
        total = total + m.sum(v * v) * 0.5 + m.sum(v)
    if k is not None:
        total = total + k.astype(m.float64) * 0.01 if m is gnp else total + float(k) * 0.01
    return total


def np_loss(sp, args, trace=None):
    """The loss in plain float64 numpy."""
    c, k, ys = np_scan(sp, args, upcast=True, trace=trace)
    return float(_loss_terms(onp, [onp.asarray(v, onp.float64) for v in c], k,
                             [onp.asarray(y, onp.float64) if y.dtype.kind == "f" else y for y in ys]))


def gradc_loss(sp, upcast=False, unroll=False):
    def loss(*args):
        return _loss_terms(gnp, *gradc_scan(sp, args, upcast=upcast, unroll=unroll))
    return loss


def gradc_forward(sp, unroll=False):
    """The scan's outputs as a flat list: final carries, counter (if any), ys."""
    def forward(*args):
        c, k, ys = gradc_scan(sp, args, unroll=unroll)
        return c + ([k] if k is not None else []) + ys
    return forward


def np_forward(sp, args, upcast=False, trace=None):
    c, k, ys = np_scan(sp, args, upcast=upcast, trace=trace)
    return c + ([k] if k is not None else []) + ys
