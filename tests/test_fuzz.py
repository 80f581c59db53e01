"""Differential fuzzing: random programs of the kind users write (tests/fuzz_programs.py:
deep chains, pairwise rank-3 and rank-4 intermediates, several reductions over different axes of
one value, sizes that split loop nests over threads, ties, float32 and integer arguments
beside float64), each checked on the backend it drew (llvm, c or numpy) against oracles
that do not share gradc's rules:

* forward: the program's plain-numpy spelling (dtype, shape, values; integer outputs
  exactly);
* the loss ``sum(y*y)/2 + sum(y)``: its plain-numpy value, and per argument the central
  finite difference along a random direction of the plain-numpy loss in float64, taken
  only where no element of any non-smooth op changes branch between ``x - h t``, ``x``
  and ``x + h t`` (maximum, minimum, where, relu, abs, clip, the extremum of max/min,
  the permutation of sort/median); where some does (ties, kinks), or at a cone point
  (std at a variance of 0), the arguments are moved off them by a small random shift
  and the gradient is checked there;
* the gradient against the reference evaluator (backend "numpy": gradc's rules run by
  numpy), which catches code-generation bugs at ties, where finite differences do not
  apply;
* for programs large enough to split over threads, on llvm: the kernel compiled for
  GRADC_NUM_THREADS=1 against the one compiled for several threads.

The tie rule itself (docs/derivatives.md) is checked on purpose with closed forms by
``test_tie_rule_closed_form``, on all backends, at ties and at threaded sizes.

Budget: CI runs ``GRADC_FUZZ_PROGRAMS`` programs (default 120, seeds 0..119; each is one
compile, about 0.4 s of CPU) and ``test_fuzz_report`` asserts coverage minima.  The long
campaign, in shards of seeds (each shard prints its own report)::

    GRADC_FUZZ_PROGRAMS=1300 GRADC_FUZZ_SEED=100000 GRADC_FUZZ_LOG=fuzz.jsonl nice python -m pytest \
        -p no:cacheprovider -q -rf tests/test_fuzz.py -k "program or report"   # SEED=101300, ...
    python tests/fuzz_summary.py fuzz.jsonl          # the shards' programs together, at any time

MLP-shaped programs (``fuzz_programs.generate_mlp``, whose hot code splits the batch over
threads) run through the same checks in ``test_mlp_program``: ``GRADC_FUZZ_MLP_PROGRAMS``
of them (default 6, seeds from ``GRADC_FUZZ_SEED``).

Scan programs (``fuzz_scan.generate_scan``: a random program of ``generate`` as the step
of ``gradc.lax.scan``, its float arguments as carries, ``xs`` or closed-over weights, an
int64 counter carry in some, ``reverse`` drawn, 0-12 steps, the step checkpointed with a
random policy in some) run in ``test_scan_program``:
``GRADC_FUZZ_SCAN_PROGRAMS`` of them (default 20, seeds from ``GRADC_FUZZ_SEED``), against
a Python loop of the step's numpy spelling with the same checks (the loss's gradient with
respect to the weights, the initial carry and ``xs``), and a share of them against
``unroll=True``.  Logged with kind "scan"; reproduce one with
``GRADC_FUZZ_SCAN_PROGRAMS=1 GRADC_FUZZ_SEED=<seed> python -m pytest tests/test_fuzz.py -k scan_program``.

A failing program reproduces from its seed alone:
``GRADC_FUZZ_PROGRAMS=1 GRADC_FUZZ_SEED=<seed> python -m pytest tests/test_fuzz.py -k program``;
every program a campaign found failing stays in ``REGRESSIONS`` (always run).

Tolerances: float64 programs agree with numpy to ``RTOL = 1e-9`` relative, with an
absolute term ``RTOL * scale * sqrt(terms)`` (``scale``: the largest magnitude of any
intermediate; ``terms``: the largest intermediate's size; native code reorders sums
over vector lanes and threads, and cancellation can leave a result far below the terms
that made it).  Programs with a live float32 value: ``F32_RTOL = 1e-4`` (~840 eps32: a
dozen ops of a few ulps each, with the same absolute term), except where every float32
value is exact (``Trace.rounds32`` false: float32 arguments, float64 arguments cast to
float32 as users do, ``fuzz_programs._draw_casts``, and only moves, selections and + - * /
on them, which round the same everywhere): there the forward outputs, of the training
step and of the forward program compiled alone, match numpy's own float32 run to
``EXACT32_RTOL = 1e-12`` (1,500x the worst of 900 such runs; a dropped float32 rounding,
as GCC's straight-line vectorizer made in np.cov's nest, is 4e-11 or more).  A quarter
of the programs read their arguments' shapes, so they compile for fixed sizes
(``Program.pinned``: loops of known trip counts, which C compilers unroll).  Finite differences (float64
numpy, step ``h = 1e-6``): truncation ``h^2 |f'''|`` and rounding ``eps |L| / h`` against
the sum of the magnitudes of the directional derivative's terms, see ``_fd_tolerance``.
A gradient that misses the evaluator's is judged again against the evaluator run in
extended precision (longdouble), allowing twice the float64 evaluator's own distance
from it: an ill-conditioned adjoint loses that much in any float64 evaluation
(``_close_to_reference``).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from unittest import mock

import fuzz_programs as fp
import fuzz_scan as fs
from gradc_helpers import kernel_of
import numpy as onp
import pytest

import gradc
from gradc.evaluate import bind_sizes, evaluate
from gradc.roofline import gradc_threads
import gradc.numpy as gnp
from gradc.backends import llvm_jit
from gradc.backends.kernel import wait_for_upgrades

HOT_ENV = {"GRADC_HOT_SECONDS": "1e-9", "GRADC_HOT_BACKGROUND": "1"}   # hot code at once, compiled as users get it
N_PROGRAMS = int(os.environ.get("GRADC_FUZZ_PROGRAMS", "120"))
SEED0 = int(os.environ.get("GRADC_FUZZ_SEED", "0"))
RTOL = 1e-9
F32_RTOL = 1e-4
EXACT32_RTOL = 1e-12    # float32 values exact (Trace.rounds32 false): against numpy's run, see check_program
FD_H = 1e-6
FD_RTOL = 1e-6
FD_ATTEMPTS = 4
EPS = onp.finfo(onp.float64).eps
REPORT = Counter()
DEPTHS = Counter()
LIVE_OPS = Counter()

# Every program a campaign found failing (seed, then what it found); run on every CI run.
REGRESSIONS: list[int] = [
    102647,   # cos of a value ~3e5: central differences at h = 1e-6 were 5x off (a fuzzer bug:
              # now Richardson's estimate, and a 100x smaller step where it is large)
    105290,   # float32 X feeds X * X inside a float64 step: float32 tolerance was missed
    106056,   # minimum(logsumexp of nothing = -inf, w) / (1.5 + (...)^2): gradient nan, FD 0
    960131,   # softmax over rows of no elements: its max shift raised "max of an empty array"
    960162,   # an ill-conditioned adjoint: every float64 evaluation, the evaluator's included, is
              # ~18 from the extended-precision gradient, and llvm 0.78 from the evaluator (a
              # fuzzer false alarm: now judged against the evaluator in extended precision)
    995167,   # std over values clipped to one bound (a variance of exactly 0): gradient nan
              # (sqrt's inf times 0, as JAX), the difference quotient along s 0; a fuzzer
              # bug: a cone point has no derivative, finite differences now move off it
    998200,   # std of 16 equal values: C's sequential mean leaves a variance of 5e-32, the
              # evaluator's 0, so the gradient is finite on c and nan on the evaluator (a
              # fuzzer bug: rounding decides at a cone point, the program is fragile)
    998286,   # an ordering by tied keys: numpy's default argsort put two tied keys in the
              # other order (an oracle bug: gradc's argsort is stable, the oracle's now too)
    1400050,  # einsum of a (0, 9, 0) operand: merging its contracted axes reshaped it to
              # (0, 0), which reshape's shape rule refused (empty shapes now reshape freely)
    1600078,  # minimum(tanh(w @ Y), s) with (w @ Y)[3] = -19 and s = -1: numpy's tanh(-19) is -1.0,
              # a tie (the gradient of s split, 8441368), the correctly rounded -1 + 2^-53 (llvm,
              # c; true value -1 + 6.3e-17) is none (9640430, as the longdouble evaluator); a
              # fuzzer bug: a transcendental's ties are decided by rounding, its values unstable
    2000078,  # std over an axis of 2 (|a - b| / 2) with a - b = -3.5e-6: the difference quotient's
              # step (2.2e-5 along t) crossed the kink, 2884.54 against the gradient's 2883.56
              # (h / 100: 2883.56); a fuzzer bug: the order of the two is now a branch pattern
    97,       # solve_triangular of a float64 triangle and a float32 right-hand side on llvm: b went
              # to LAPACK's trtrs unconverted, its float32 bits read as float64 (now both in the
              # common dtype, as linalg.solve; tests/test_lapack.py)
    3000368,  # scatter_mul's float32 updates pass through a float32 tanh (not correctly rounded) into a
              # float64 target: the oracle took the result for exact (a fuzzer bug: now rounds32)
    3200303,  # remainder(x, 2) of an einsum of ties: 0 in numpy's sum order, -1e-17 in gradc's, and
              # remainder(-1e-17, 2) = 2; a fuzzer bug: rounding deciding a jump is now Trace.jump
    3400230,  # concatenate of an empty part (x[2:] of two rows) beside a gathered one: the empty part's
              # gather, computed before the select, read row 2 of 2 (IndexError on llvm and c)
]


def _close(got, want, rtol, scale, terms, what):
    got, want = onp.asarray(got), onp.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    atol = rtol * scale * math.sqrt(terms)
    onp.testing.assert_allclose(got.astype(onp.float64), want.astype(onp.float64), rtol=rtol, atol=atol,
                                equal_nan=True, err_msg=what)


def _float_argnums():
    return tuple(i for i, a in enumerate(fp.ARGS) if fp.ARGS[a][1] == "f")


def _count(p: fp.Program, tr: fp.Trace):
    REPORT["programs"] += 1
    REPORT[f"backend:{p.backend}"] += 1
    REPORT[f"inputs:{p.inputs}"] += 1
    REPORT[f"int:{p.dtypes['I']}"] += 1
    if "float32" in (p.dtypes["X"], p.dtypes["Y"]):
        REPORT["float32 argument"] += 1
    if tr.float32:
        REPORT["float32 live"] += 1
    if p.casts:
        REPORT["float64 arguments cast to float32"] += 1
    if p.big:
        REPORT["big (threaded sizes)"] += 1
    DEPTHS[p.depth] += 1
    for op, n in p.ops.items():
        LIVE_OPS[op] += n
    live = fp.live_steps(p)
    shapes = [p.shapes[len(fp.ARGS) + t] for t in live]
    if any(len(s) == 3 for s in shapes):
        REPORT["rank-3 live"] += 1
    if any(len(s) == 4 for s in shapes):
        REPORT["rank-4 live"] += 1
        if p.big:
            REPORT["rank-4 live, threaded sizes"] += 1
    reduced = {}
    for t in live:
        s = p.steps[t]
        if s[0] == "reduce" and s[3] is not None and len(p.shapes[s[2]]) >= 2:
            reduced.setdefault(s[2], set()).add(s[3] if isinstance(s[3], tuple) else s[3] % len(p.shapes[s[2]]))
    if any(len(axes) >= 2 for axes in reduced.values()):
        REPORT["two reductions over different axes of one value"] += 1
    if any(p.steps[t][0] == "ireduce" for t in live) and any(p.steps[t][0] == "reduce" for t in live):
        REPORT["integer and float reductions in one program"] += 1


def step_function(p: fp.Program, forward=None, loss=None, n_out=None):
    """The program as users compile a training step: ``jit`` of a function returning the
    program's outputs, the loss and its gradient (one compile per program and backend).
    ``forward``, ``loss``, ``n_out``: another program's (a scan's, fuzz_scan.py) on p's backend."""
    vg = gradc.value_and_grad(loss or fp.gradc_loss(p), argnums=_float_argnums())
    forward = forward or (lambda *a: fp.run(p, a, native=True))

    def step(*a):
        value, grads = vg(*a)
        return (*forward(*a), value, *grads)
    n_out = len(p.outputs) if n_out is None else n_out
    compiled = {}

    def call(backend, args, threads=None, hot=False):
        """(outputs, loss, gradients) on ``backend``, compiled with GRADC_NUM_THREADS =
        ``threads`` (None: the default); ``hot``: a function of its own that takes its
        hot code (vector math inlined, the batch split where the graph has one) after
        its first call through the call path, and runs it."""
        if (backend, threads, hot) not in compiled:
            compiled[backend, threads, hot] = gradc.jit(step, backend=backend)
        f = compiled[backend, threads, hot]
        with gradc_threads(threads), mock.patch.dict(os.environ, HOT_ENV if hot else {}):
            r = f(*args)
            if hot:     # compiled; through the plan (the upgrade compiles in the background);
                f(*args)                        # switches to it after its compile; hot
                wait_for_upgrades()
                f(*args)
                r = f(*args)
        if hot and f._fast is not None:
            assert kernel_of(f, *args).upgraded or not kernel_of(f, *args).calls_math, "no switch to the hot code"
        if hot and f._fast is not None and f._fast.split_parts(2 ** 62) > 1:
            kernel = kernel_of(f, *args)
            rows = bind_sizes(kernel.schedule.graph, [onp.asarray(a) for a in args])[kernel.split.symbol]
            REPORT["batch split ran" if f._fast.split_parts(rows) > 1 else "batch split, too few rows"] += 1
        return list(r[:n_out]), r[n_out], list(r[n_out + 1:])
    return call


def check_program(p: fp.Program):
    args = fp.make_inputs(p)
    tr = fp.Trace()
    call = step_function(p)
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = fp.run(p, args, native=False, trace=tr)
            want64 = fp.run(p, fp.upcast_args(args), native=False, upcast=True)
        except (ValueError, IndexError) as e:            # a max of nothing
            want = e
        _count(p, tr)
        if isinstance(want, Exception):
            with pytest.raises(type(want)):
                call(p.backend, args)
            REPORT["both raised"] += 1
            return
        rtol = F32_RTOL if tr.float32 else RTOL
        got, value, grads = call(p.backend, args)
        assert len(got) == len(want)
        if tr.jump:
            # rounding decides a jump of fmod/remainder: the values may differ by the
            # divisor wherever it does; the programs without such an element check them
            REPORT["values skipped: rounding decides a jump"] += 1
            return
        for k, (g, w, w64) in enumerate(zip(got, want, want64)):
            w = onp.asarray(w)
            assert onp.asarray(g).dtype == w.dtype, f"output {k}: dtype {onp.asarray(g).dtype} != numpy {w.dtype}"
            if w.dtype.kind == "f" and tr.float32 and not tr.rounds32:
                # float32 values only from casts and correctly rounded ops: gradc's are
                # numpy's bit for bit, and only float64 sums differ in order
                _close(g, w, EXACT32_RTOL, tr.scale, tr.numel, f"forward output {k} (float32 values exact)")
            elif w.dtype.kind == "f":
                _close(g, w64, rtol, tr.scale, tr.numel, f"forward output {k}")
            else:
                onp.testing.assert_array_equal(g, w, err_msg=f"integer output {k}")
        REPORT["forward checked"] += 1
        if tr.float32 and not tr.rounds32:
            REPORT["float32 exact: forward at EXACT32_RTOL"] += 1
            _check_forward_alone(p, args, want, tr)
        _check_gradients(p, args, tr, rtol, call, value, grads)


def _check_forward_alone(p, args, want, tr):
    """The forward program compiled alone (users' jit of a model, not of a training
    step): its loop nests differ, and so does what a C compiler makes of them (GCC's
    straight-line vectorizer dropped the float32 rounding of (double)(float)x only in
    np.cov's forward nest, 4e-11 of scale * sqrt(terms) off).  Float32 values exact
    (Trace.rounds32 false): numpy's answer to EXACT32_RTOL."""
    got = gradc.jit(lambda *a: tuple(fp.run(p, a, native=True)), backend=p.backend)(*args)
    for k, (g, w) in enumerate(zip(got, want)):
        w = onp.asarray(w)
        assert onp.asarray(g).dtype == w.dtype, f"forward alone, output {k}: dtype {onp.asarray(g).dtype} != {w.dtype}"
        if w.dtype.kind == "f":
            _close(g, w, EXACT32_RTOL, tr.scale, tr.numel, f"forward alone, output {k} (float32 values exact)")
        else:
            onp.testing.assert_array_equal(g, w, err_msg=f"forward alone, integer output {k}")


def _check_gradients(p, args, tr, rtol, call, value, grads, oracle=None):
    """``oracle``: a scan program's (``_ScanOracle``), else the plain program's own."""
    argnums = _float_argnums()
    np_loss = oracle.np_loss if oracle else lambda a, trace=None: fp.np_loss(p, a, trace)
    terms = oracle.terms if oracle else tr.numel
    extended = oracle is None
    want_value = np_loss(args)
    _close(value, want_value, rtol, tr.scale ** 2 + tr.scale, terms, "loss value")
    _, _, ref_grads = call("numpy", args)
    gscale = max([tr.scale ** 2] + [float(onp.max(onp.abs(g), initial=0.0)) for g in ref_grads
                                    if onp.isfinite(g).all()])
    for k, (a, b) in enumerate(zip(grads, ref_grads)):
        assert onp.asarray(a).dtype == onp.asarray(b).dtype == onp.asarray(args[argnums[k]]).dtype
    if tr.fragile:
        # rounding decides a tie (see fuzz_programs._stability): two correct programs may
        # send an element's gradient to different operands; finite differences (off the
        # tie) and the closed-form tie tests check these programs
        REPORT["gradient vs evaluator skipped: rounding decides a tie"] += 1
    elif p.backend != "numpy":
        for k, (a, b) in enumerate(zip(grads, ref_grads)):
            _close_to_reference(p, args, k, a, b, rtol, gscale, terms,
                                f"gradient of {list(fp.ARGS)[argnums[k]]} vs the evaluator", extended)
        REPORT["gradient vs evaluator"] += 1
    if p.big and p.backend == "llvm" and llvm_jit.init()["pool"]:
        # the same kernel compiled for one thread and for several (the default, or 4
        # where this machine has one core)
        if llvm_jit.num_threads() > 1:
            v2, g2 = value, grads
        else:
            _, v2, g2 = call("llvm", args, threads="4")
        _, v1, g1 = call("llvm", args, threads="1")
        _close(v1, v2, rtol, tr.scale ** 2 + tr.scale, terms, "loss value, 1 thread vs several")
        for k, (a, b) in enumerate(zip(g1, g2) if not tr.fragile else ()):
            _close(a, b, rtol, gscale, terms, f"gradient {k}, 1 thread vs several")
            _close_to_reference(p, args, k, a, ref_grads[k], rtol, gscale, terms,
                                f"gradient {k}, 1 thread vs the evaluator", extended)
        REPORT["thread comparisons"] += 1
        # the hot code: vector math inlined, and where the graph splits over a batch,
        # one part of it per thread
        _, v3, g3 = call("llvm", args, threads=None if llvm_jit.num_threads() > 1 else "4", hot=True)
        _close(v3, v1, rtol, tr.scale ** 2 + tr.scale, terms, "loss value, hot vs 1 thread")
        for k, (a, b) in enumerate(zip(g3, g1) if not tr.fragile else ()):
            _close(a, b, rtol, gscale, terms, f"gradient {k}, hot vs 1 thread")
    if tr.float32:
        grad_at = oracle.twin if oracle else _float64_gradient(p, fp.gradc_loss(p), argnums)
    else:
        grad_at = lambda *a: call(p.backend, a)[2]     # noqa: E731
    _check_finite_differences(p, args, grad_at, argnums, np_loss)


def _close_to_reference(p, args, k, got, want, rtol, scale, terms, what, extended=True):
    """``got`` against the evaluator's gradient ``want`` (float64).  Some programs'
    gradients are ill-conditioned in float64: an adjoint that cancels terms far larger
    than its result, or sums next to a near-tie, loses more than ``rtol`` in any float64
    evaluation, the evaluator's included.  Where the plain comparison fails, the
    evaluator runs again in extended precision (numpy's longdouble, 64-bit mantissa) and
    the float64 evaluator's own distance from it, ``err``, measures what float64 loses on
    this program: ``got`` must then be within ``atol + 2 err`` of the extended result.
    A code-generation bug misses by far more than the evaluator's own rounding."""
    try:
        _close(got, want, rtol, scale, terms, what)
        return
    except AssertionError:
        ext = _extended_gradients(p, args) if extended else None
        if ext is None or onp.asarray(want).dtype != onp.float64:
            raise
    exact = ext[k]
    err = float(onp.max(onp.abs(onp.asarray(want, onp.float64) - exact), initial=0.0))
    if not onp.isfinite(err) or err > 1e-4 * scale:   # not a rounding matter: the plain failure stands
        _close(got, want, rtol, scale, terms, what)
    atol = rtol * scale * math.sqrt(terms) + 2 * err
    onp.testing.assert_allclose(onp.asarray(got, onp.float64), exact, rtol=rtol, atol=atol, equal_nan=True,
                                err_msg=f"{what} (against the evaluator in extended precision; the float64 "
                                        f"evaluator is {err:.3g} from it)")
    REPORT["gradient vs evaluator: within float64's own error (extended precision)"] += 1


_EXTENDED: dict = {}


def _extended_gradients(p, args):
    """The gradients by the numpy evaluator with every float64 value held in longdouble
    (None where this platform's longdouble is float64 or an op has no longdouble form)."""
    if p.seed in _EXTENDED:
        return _EXTENDED[p.seed]
    out = None
    if onp.finfo(onp.longdouble).nmant > onp.finfo(onp.float64).nmant:
        vg = gradc.value_and_grad(fp.gradc_loss(p), argnums=_float_argnums())
        graph = gradc.trace(lambda *a: vg(*a), *args)
        wide = onp.dtype(onp.longdouble)
        for nid in graph.order():
            d = graph[nid]
            if d.dtype == onp.float64:
                d.dtype = wide
            if d.op == "const" and onp.asarray(d.params["value"]).dtype == onp.float64:
                d.params["value"] = onp.asarray(d.params["value"], wide)
        arrays = [onp.asarray(a, wide) if onp.asarray(a).dtype == onp.float64 else onp.asarray(a) for a in args]
        try:
            with onp.errstate(all="ignore"):
                out = [onp.asarray(g, onp.float64) for g in evaluate(graph, arrays)[1:]]
        except (TypeError, ValueError):     # an op whose numpy reference refuses longdouble
            out = None
    _EXTENDED[p.seed] = out
    return out


def _float64_gradient(p, loss, argnums):
    """A float32 program's finite-difference check runs on its float64 twin (float32
    rounding would swamp a difference quotient); gradc's float32 gradient is checked
    against the evaluator above.  The twin runs on the evaluator (no second compile)."""
    up = gradc.grad(lambda *a: _upcast_loss(p, a), argnums=argnums, backend="numpy")
    return lambda *a: up(*fp.upcast_args(a))


def _upcast_loss(p, args):
    """The loss of ``p`` in float64 throughout (its float32 casts too), as np_loss."""
    y = fp.run(p, args, native=True, upcast=True)[0]
    return gnp.sum(y * y) * 0.5 + gnp.sum(y)


def _differences(np_loss, base, i, t, h, tr0):
    """Central differences of the loss along ``t`` in argument ``i`` with steps h and
    2h, or None where an element changes branch within 2h."""
    x = onp.asarray(base[i], onp.float64)
    diffs = []
    for step in (h, 2 * h):
        plus, minus = list(base), list(base)
        plus[i], minus[i] = x + step * t, x - step * t
        trp, trm = fp.Trace(), fp.Trace()
        Lp, Lm = np_loss(plus, trp), np_loss(minus, trm)
        if not (fp.same_patterns(trp, tr0) and fp.same_patterns(trm, tr0)):
            return None
        diffs.append((Lp - Lm) / (2 * step))
    return diffs


def _fd_tolerance(terms_abs, fd, tr, h, loss=0.0):
    """Central differences: truncation ~ h^2 |L'''| (relative FD_RTOL of the terms, a
    margin of 10^3 over h^2 = 1e-12 on O(1)-scaled programs; the caller adds Richardson's
    estimate for the rest) plus rounding: the loss
    sums ``numel`` terms of size up to ``scale^2``, each computed to a few eps, and the
    quotient divides that error by h."""
    loss_mag = max((tr.scale ** 2 + tr.scale) * tr.numel, abs(loss))   # (a scan's loss sums its steps too)
    return FD_RTOL * (terms_abs + abs(fd)) + 16 * EPS * loss_mag / h


def _check_finite_differences(p, args, grad_at, argnums, np_loss=None):
    """``np_loss(args, trace)``: the loss in float64 numpy (default: p's own)."""
    np_loss = np_loss or (lambda a, trace=None: fp.np_loss(p, a, trace))
    r = onp.random.default_rng((p.seed, 99))
    for attempt in range(FD_ATTEMPTS):
        base = args if attempt == 0 else fp.jitter(p, args, 0.02 * attempt, attempt)
        tr0 = fp.Trace()
        L0 = np_loss(base, tr0)
        if not math.isfinite(L0) or tr0.nonfinite or tr0.scale > 1e6:
            # an infinite intermediate (a logsumexp of nothing is -inf) is outside the smooth
            # domain: IEEE's 0 * inf = nan reaches the gradient through a branch not taken
            # (as in JAX and PyTorch), where the difference quotient sees a constant
            REPORT["fd skipped: an intermediate not finite, or > 1e6"] += 1
            return
        if tr0.cone:        # no derivative here, whatever the direction: move
            continue
        checks, unconverged = [], False
        for i in argnums:
            x = onp.asarray(base[i], onp.float64)
            t = r.standard_normal(x.shape)
            h0 = FD_H * max(1.0, float(onp.max(onp.abs(x), initial=0.0)))
            for h in (h0, h0 / 100):          # a smaller step where the loss oscillates fast
                diffs = _differences(np_loss, base, i, t, h, tr0)
                if diffs is None or abs(diffs[1] - diffs[0]) <= 0.01 * max(map(abs, diffs)) + \
                        _fd_tolerance(0.0, 0.0, tr0, h):
                    break
            if diffs is None:
                break                                       # a kink within 2h: move
            if abs(diffs[1] - diffs[0]) > 0.01 * max(map(abs, diffs)) + _fd_tolerance(0.0, 0.0, tr0, h):
                unconverged = True                          # no accurate difference quotient
                continue
            checks.append((i, t, h, diffs[0], abs(diffs[1] - diffs[0])))
        else:
            grads = dict(zip(argnums, grad_at(*base)))
            for i, t, h, fd, richardson in checks:
                g = onp.asarray(grads[i], onp.float64)
                got = float(onp.sum(g * t))
                # D(h) = f' + c h^2 + ..., so D(2h) - D(h) = 3 c h^2: twice that bounds the
                # truncation error of D(h) (large only where the loss oscillates fast,
                # e.g. cos of a value ~1e5)
                # (the step along t is h |t|: a short t, as a scalar's draw of 0.0067, divides
                # the loss's rounding by less than h: seed 4400082)
                step = h * min(1.0, float(onp.max(onp.abs(t), initial=0.0)) or 1.0)
                tol = _fd_tolerance(float(onp.sum(onp.abs(g * t))), fd, tr0, step, L0) + 2 * richardson
                assert abs(got - fd) <= tol, (f"finite differences, argument {list(fp.ARGS)[i]} "
                                              f"(attempt {attempt}): <grad, t> = {got!r}, "
                                              f"central difference {fd!r}, tolerance {tol:.3g}")
            if unconverged:
                REPORT["fd: an argument's difference quotient did not converge"] += 1
            if checks:
                REPORT["fd checked"] += 1
                REPORT[f"fd checked after {attempt} moves"] += 1
            return
    REPORT["fd skipped: kinks within h after every move"] += 1


# ----------------------------------------------------------------------------- the programs
def run_logged(p: fp.Program, kind=None, check=None):
    """check_program (or ``check``), the program's description on a failure, its counts
    logged (with one of ``kind``: a program drawn by another generator)."""
    before = Counter(REPORT)
    if kind:
        REPORT[f"{kind} programs"] += 1
    status = "failed"
    try:
        (check or check_program)(p)
        status = "passed"
    except AssertionError as e:
        raise AssertionError(f"{kind or ''} {p.describe()}\n{e}".lstrip()) from None
    finally:
        _log(p, status, REPORT - before, kind)


@pytest.mark.parametrize("seed", REGRESSIONS + list(range(SEED0, SEED0 + N_PROGRAMS)))
def test_program(seed):
    run_logged(fp.generate(seed))


N_MLP_PROGRAMS = int(os.environ.get("GRADC_FUZZ_MLP_PROGRAMS", "6"))


@pytest.mark.parametrize("seed", list(range(SEED0, SEED0 + N_MLP_PROGRAMS)))
def test_mlp_program(seed):
    """An MLP-shaped program (fuzz_programs.generate_mlp) through the same checks, at
    batch sizes whose hot code splits the batch over threads."""
    run_logged(fp.generate_mlp(seed), "mlp")


N_VMAP_PROGRAMS = int(os.environ.get("GRADC_FUZZ_VMAP_PROGRAMS", "24"))
VMAP_EXAMPLES = 3


@pytest.mark.parametrize("seed", list(range(SEED0, SEED0 + N_VMAP_PROGRAMS)))
def test_vmap_program(seed):
    """gradc.vmap of a random program over 3 examples (each argument mapped or shared,
    drawn from the program's own stream 9), on its backend: the outputs against the
    program's plain-numpy spelling example by example, and vmap of the loss's gradient
    against the reference evaluator's gradient of each example (the adjoint graph's ops
    batched)."""
    p = fp.generate(seed)
    r = onp.random.default_rng((seed, 9))
    mapped = [bool(r.random() < 0.7) for _ in fp.ARGS]
    mapped[int(r.integers(len(mapped)))] = True
    examples = [fp.make_inputs(p, seed_offset=k) for k in range(VMAP_EXAMPLES)]
    args = [onp.stack([e[i] for e in examples]) if m else examples[0][i] for i, m in enumerate(mapped)]
    per = [[e[i] if m else examples[0][i] for i, m in enumerate(mapped)] for e in examples]
    in_axes = tuple(0 if m else None for m in mapped)
    trs = [fp.Trace() for _ in per]
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = [fp.run(p, fp.upcast_args(a), native=False, upcast=True) for a in per]
            for a, tr in zip(per, trs):
                fp.run(p, a, native=False, trace=tr)
        except (ValueError, IndexError):          # a max of nothing: the plain programs test it
            pytest.skip("the program raises")
        got = gradc.vmap(lambda *a: fp.run(p, a, native=True), in_axes=in_axes)
        got = gradc.jit(got, backend=p.backend)(*args)
        rtol = F32_RTOL if any(tr.float32 for tr in trs) else RTOL
        scale, terms = max(tr.scale for tr in trs), max(tr.numel for tr in trs)
        if any(tr.jump for tr in trs):
            REPORT["vmap values skipped: rounding decides a jump"] += 1
            return
        for k, g in enumerate(got):
            w = onp.stack([onp.asarray(wk[k]) for wk in want])
            if w.dtype.kind == "f":
                _close(g, w, rtol, scale, terms, f"vmap forward output {k} {p.describe()} in_axes={in_axes}")
            else:
                onp.testing.assert_array_equal(g, w, err_msg=f"vmap integer output {k} {p.describe()}")
        argnums = tuple(i for i in _float_argnums() if mapped[i])
        if not argnums or any(tr.fragile or tr.nonfinite for tr in trs):
            REPORT["vmap programs (forward only)"] += 1
            return
        grad = gradc.grad(fp.gradc_loss(p), argnums=argnums)
        batched = gradc.jit(gradc.vmap(grad, in_axes=in_axes), backend=p.backend)(*args)
        reference = gradc.jit(grad, backend="numpy")
        refs = [reference(*a) for a in per]
        gscale = max([scale ** 2] + [float(onp.max(onp.abs(g), initial=0.0)) for rk in refs for g in rk])
        for j in range(len(argnums)):
            _close(batched[j], onp.stack([rk[j] for rk in refs]), rtol, gscale, terms,
                   f"vmap gradient of argument {argnums[j]} {p.describe()} in_axes={in_axes}")
    REPORT["vmap programs"] += 1


def _log(p, status, counts, kind=None):
    """GRADC_FUZZ_LOG=path: one JSON line per program (a campaign's shards can be
    summed while they run: tests/fuzz_summary.py).  ``kind``: the generator ("mlp"),
    whose seeds overlap the plain programs'."""
    path = os.environ.get("GRADC_FUZZ_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"seed": p.seed, "kind": kind, "status": status, "depth": p.depth, "ops": p.ops,
                                "counts": dict(counts)}) + "\n")


# ----------------------------------------------------------------------------- the tie rule
# Closed forms of docs/derivatives.md: between two varying operands a tie of maximum /
# minimum splits the gradient 1/2-1/2; against a constant (and for where's condition)
# the strict rule holds; k tied extrema of a max/min reduction get 1/k each.
TIE_CASES = ["binary", "pairwise", "constant", "where", "reduce", "self"]


def _tie_probe(seed):
    r = onp.random.default_rng((seed, 5))
    case = TIE_CASES[seed % len(TIE_CASES)]
    backend = fp.BACKENDS[(seed // len(TIE_CASES)) % 3]
    big = seed % 4 == 3
    p, q, d = (int(r.integers(200, 300)), int(r.integers(200, 300)), 4) if big else \
        (int(r.integers(1, 12)), int(r.integers(1, 12)), int(r.integers(1, 5)))
    if case in ("binary", "constant", "where", "self"):      # big: rank 2 above the split
        p = p * q if big else p
    dtype = onp.float32 if (not big and r.random() < 0.3) else onp.float64
    op = str(r.choice(["maximum", "minimum"]))
    ties = lambda *s: (r.integers(-2, 3, s) * 0.5).astype(dtype)   # noqa: E731
    return case, backend, op, p, q, d, dtype, ties, r


def _tie_split(x, y, op):
    """(dx, dy) weights of maximum/minimum(x, y) under the tie rule."""
    wins = x > y if op == "maximum" else x < y
    loses = y > x if op == "maximum" else y < x
    return wins + 0.5 * (x == y), loses + 0.5 * (x == y)


@pytest.mark.parametrize("seed", range(int(os.environ.get("GRADC_FUZZ_TIES", "36"))))
def test_tie_rule_closed_form(seed):
    case, backend, op, p, q, d, dtype, ties, r = _tie_probe(seed)
    gop = getattr(gnp, op)
    if case == "binary":       # two varying arguments, broadcasting a row against a matrix
        a, b = ties(p, d), ties(d)
        W = r.standard_normal((p, d)).astype(dtype)
        f = lambda a, b, W: gnp.sum(W * gop(a, b))        # noqa: E731
        sa, sb = _tie_split(a, b[None], op)
        want = [W * sa, onp.sum(W * sb, axis=0)]
    elif case == "pairwise":   # a[:, None, :] against b[None, :, :]: rank 3
        a, b = ties(p, d), ties(q, d)
        W, wd = r.standard_normal((p, q)).astype(dtype), r.standard_normal(d).astype(dtype)
        f = lambda a, b, W: gnp.sum(W[:, :, None] * wd * gop(a[:, None, :] * 2.0, b[None, :, :] * 2.0))   # noqa: E731
        sa, sb = _tie_split(a[:, None], b[None], op)
        W3 = W[:, :, None].astype(onp.float64) * wd
        want = [2 * onp.sum(W3 * sa, axis=1), 2 * onp.sum(W3 * sb, axis=0)]
    elif case == "constant":   # against a literal and a constant array: strict
        a, b = ties(p, d), ties(d)
        W = r.standard_normal((p, d)).astype(dtype)
        c = onp.zeros(d, dtype)
        f = lambda a, b, W: gnp.sum(W * gop(a, 0.0)) + gnp.sum(W * gop(c, b))   # noqa: E731
        strict = (lambda z: z > 0) if op == "maximum" else (lambda z: z < 0)
        want = [W * strict(a), onp.sum(W * strict(b[None] + onp.zeros((p, 1))), axis=0)]
    elif case == "where":      # where(a > b, a, b): the condition is a constant, ties take b
        a, b = ties(p, d), ties(p, d)
        W = r.standard_normal((p, d)).astype(dtype)
        f = lambda a, b, W: gnp.sum(W * gnp.where(a > b, a, b))   # noqa: E731
        want = [W * (a > b), W * (a <= b)]
    elif case == "reduce":     # max/min over each axis of a rank-3 value with k-way ties
        a, b = ties(p, d), ties(q, d)
        axis = int(r.integers(0, 3))
        red = gnp.max if op == "maximum" else gnp.min
        nred = onp.max if op == "maximum" else onp.min
        T = a[:, None, :] + b[None, :, :]
        W = r.standard_normal(onp.delete(onp.array(T.shape), axis)).astype(dtype)
        f = lambda a, b, W: gnp.sum(W * red(a[:, None, :] + b[None, :, :], axis=axis))   # noqa: E731
        hit = T == nred(T, axis=axis, keepdims=True)
        share = onp.expand_dims(W, axis) * hit / onp.sum(hit, axis=axis, keepdims=True)
        want = [onp.sum(share, axis=1), onp.sum(share, axis=0)]
    else:                      # a deep value compared with itself: the identity
        a, b = ties(p, d), ties(d)
        W = r.standard_normal((p, d)).astype(dtype)
        f = lambda a, b, W: gnp.sum(W * gop(gnp.tanh(a * b), gnp.tanh(a * b)))   # noqa: E731
        sech2 = 1 - onp.tanh(a.astype(onp.float64) * b) ** 2
        want = [W * sech2 * b, onp.sum(W * sech2 * a, axis=0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grads = gradc.grad(f, argnums=(0, 1), backend=backend)(a, b, W)
    REPORT[f"tie probes:{case}"] += 1
    REPORT[f"tie probes on {backend}"] += 1
    # the closed forms are exact sums of a few weights per element (float64: reordering
    # only); float32 rounds W and the sums: F32_RTOL
    tol = F32_RTOL if dtype == onp.float32 else 1e-12
    for k, (g, w) in enumerate(zip(grads, want)):
        assert onp.asarray(g).dtype == dtype
        onp.testing.assert_allclose(onp.asarray(g, onp.float64), w, rtol=tol, atol=tol * (1 + max(p, q)),
                                    err_msg=f"{case} {op} on {backend}, argument {k}, sizes {(p, q, d)}")


# ----------------------------------------------------------------------------- the report
def test_exact_float32_check_sees_a_dropped_rounding():
    """The oracle's power: a program whose float32 values are exact (seed 428: Y cast
    to float32 and back, centred, its Gram matrix) fails check_program when gradc's
    spelling skips the float32 rounding, as GCC's straight-line vectorizer did, though
    the result moves by only ~1e-8 of its size (within F32_RTOL), and passes as is."""
    p = fp.generate(428)
    assert p.casts and not p.big
    p.backend = "llvm"
    check_program(p)
    real = fp._cast_arg

    def dropped(x, mode, native, upcast):
        return x if native and mode == "rt" else real(x, mode, native, upcast)
    with mock.patch.object(fp, "_cast_arg", dropped), pytest.raises(AssertionError, match="float32 values exact"):
        check_program(p)


def test_std_of_two_values_records_its_kink():
    """std over an axis of two elements is |a - b| / 2: the numpy run records the order
    of the two as a branch, so a difference quotient whose step crosses a = b is refused
    (seed 2000078), and one that does not is kept."""
    step = ("surface", "std", 0, -1, None)
    x = onp.array([[0.0, 3.5e-6], [1.0, 2.0]])
    t = onp.array([[1.0, -1.0], [0.3, 0.1]])

    def patterns(v):
        tr = fp.Trace()
        fp._surface(step, [v], native=False, trace=tr, unstable=False)
        return tr
    at = patterns(x)
    assert not fp.same_patterns(patterns(x + 4e-6 * t), at)     # crosses a = b
    assert fp.same_patterns(patterns(x + 1e-6 * t), at) and fp.same_patterns(patterns(x - 1e-6 * t), at)


@pytest.mark.parametrize("fill", ["normal", "huge", "ties"])
def test_family_matrices_are_well_conditioned(fill):
    """fuzz_families builds its linear algebra's matrices to be well conditioned whatever
    the values (a scan's carries, values of 1e5, ties): checked here by numpy on values
    of each kind, at the largest size (17 rows)."""
    r = onp.random.default_rng(3)
    x = {"normal": r.standard_normal((5, 17, 9)), "huge": onp.full((5, 17, 9), 1e5),
         "ties": r.integers(-2, 3, (5, 17, 9)) * 0.5}[fill]
    z = -x[:, ::-1] if fill != "huge" else x
    q = {"n": 17, "scale": 1 / (17 * 9), "flip": True, "lower": True}
    M = fp.ff._matrices(onp, x, z, q["scale"])
    assert onp.linalg.norm(M, 2, axis=(-2, -1)).max() <= 1 + 1e-12     # = 1 where tanh rounds to +-1
    G = onp.eye(17) + 0.5 * M
    assert onp.linalg.cond(G).max() < 3 and onp.linalg.cond(onp.tril(G)).max() < 5
    w = onp.linalg.eigvalsh(onp.diag(onp.arange(17.0)) + 0.125 * (M + onp.swapaxes(M, -1, -2)))
    assert onp.diff(w, axis=-1).min() >= 0.5 - 1e-12
    s = onp.linalg.svd(onp.diag(onp.arange(1.0, 18)) + 0.25 * M, compute_uv=False)
    assert -onp.diff(s, axis=-1).min() >= 0.5 - 1e-12 and s.min() >= 0.75 - 1e-12
    assert (onp.linalg.det(G) > 0).all() and (fp.ff._linalg("det", onp, x, z, q, False) < 0).all()


def test_family_erfinv_reference():
    """The erfinv reference (Newton's iteration on math.erf) inverts math.erf to 2 ulp on
    the family's domain, and ndtri's (through it) the normal CDF."""
    v = onp.linspace(-0.9, 0.9, 1001)
    y = fp.ff._erfinv_np(v)
    onp.testing.assert_allclose([math.erf(t) for t in y], v, rtol=0, atol=4 * EPS)
    p = onp.linspace(0.05, 0.95, 101)
    x = math.sqrt(2.0) * fp.ff._erfinv_np(2 * p - 1)
    onp.testing.assert_allclose([0.5 * math.erfc(-t / math.sqrt(2.0)) for t in x], p, rtol=4 * EPS)


def test_pair_with_itself_is_fragile_off_its_diagonal():
    """x[:, None] against x[None] (a pair step of a value with itself): x[i] against
    itself is no tie, but x[i] against x[j] within rounding is one that rounding decides
    (scan seed 3700061), for an unstable x."""
    def fragile(v):
        tr = fp.Trace()
        fp._step(("pair", "maximum", 0, 0), [onp.asarray(v)], native=False, upcast=False, trace=tr, unstable=True)
        return tr.fragile
    assert not fragile([7.3, 1.0, -2.0])
    assert fragile([7.3, 1.0, 7.3 + 8.9e-16])


def test_summary_keeps_mlp_apart(tmp_path):
    """tests/fuzz_summary.py: an MLP program shares its seed with a plain one; a failing
    MLP program is counted and named, not dropped as a repeat of the passing plain one."""
    import fuzz_summary
    log = tmp_path / "fuzz.jsonl"
    rows = [(None, 7, "passed"), ("mlp", 7, "failed"), (None, 7, "passed")]   # the last: a second shard's regression
    log.write_text("".join(json.dumps({"seed": s, "kind": k, "status": st, "depth": 3, "ops": {}, "counts": {}}) + "\n"
                           for k, s, st in rows))
    status, _, _, _, failed = fuzz_summary.summarize([log])
    assert status == {"passed": 1, "failed": 1} and failed == ["mlp:7"]


def test_fuzz_report(capsys):
    """Runs after the programs (file order): prints what they covered and, when the whole
    campaign ran (not a -k selection), asserts coverage minima."""
    n = REPORT["programs"] - REPORT["mlp programs"]
    depths = sorted(DEPTHS.elements())
    with capsys.disabled():
        print(f"\n[gradc fuzz] {dict(sorted(REPORT.items()))}")
        print(f"[gradc fuzz] live depth: {dict(sorted(DEPTHS.items()))}")
        print(f"[gradc fuzz] live ops: {dict(sorted(LIVE_OPS.items()))}")
    if REPORT["mlp programs"] >= 4:
        assert REPORT["batch split ran"] >= REPORT["mlp programs"] // 2, "the MLP programs' batches rarely split"
    ns = REPORT["scan programs"]
    if ns >= 100:       # a scan campaign (GRADC_FUZZ_SCAN_PROGRAMS): what its programs covered
        for key, share in [("scan reverse", 0.3), ("scan counter carry", 0.15), ("scan carries:3", 0.15),
                           ("scan xs:2", 0.1), ("scan xs:0", 0.1), ("scan no steps", 0.02),
                           ("scan unroll=True vs the loop", 0.15), ("scan big (threaded sizes)", 0.02),
                           ("scan checkpointed step", 0.15),
                           ("scan backend:llvm", 0.2), ("scan backend:c", 0.15), ("scan backend:numpy", 0.1)]:
            assert REPORT[key] >= share * ns, f"scan programs: {key} in fewer than {share:.0%}"
    if n < 100:
        return
    assert depths[len(depths) // 2] >= 4, "median live depth below 4"
    assert sum(d >= 8 for d in depths) >= 0.05 * n, "too few programs 8 ops deep"
    for b in fp.BACKENDS:
        assert REPORT[f"backend:{b}"] >= 0.15 * n, f"backend {b} underrepresented"
    assert REPORT["big (threaded sizes)"] >= 0.15 * n
    assert REPORT["thread comparisons"] >= 0.03 * n
    assert REPORT["rank-3 live"] >= 0.15 * n
    assert REPORT["rank-4 live"] >= 0.1 * n
    assert REPORT["two reductions over different axes of one value"] >= 0.1 * n
    assert REPORT["inputs:ties"] >= 0.15 * n
    assert REPORT["float32 live"] >= 0.05 * n
    assert REPORT["integer and float reductions in one program"] >= 0.03 * n
    for dt in ("int8", "uint64", "uint64_huge", "int32"):
        assert REPORT[f"int:{dt}"] >= 0.05 * n
    assert REPORT["fd checked"] >= 0.6 * (REPORT["forward checked"]), "finite differences ran too rarely"
    every = {f"unary:{u}" for u in fp.UNARY} | {f"binary:{b}" for b in fp.BINARY} | \
        {f"reduce:{x}" for x in fp.REDUCE} | {f"surface:{x}" for x in fp.SURFACE} | \
        {"pair", "matmul", "lse", "icast", "imix", "permute"}
    if n >= 300:        # a campaign: every family of fuzz_families live too (CI's 120 see most)
        every |= {f"fam:{f}" for f in fp.ff.FAMILIES}
    seen = {op.split(":")[0] if op.startswith("pair") else op for op in LIVE_OPS}
    missing = every - seen
    assert not missing, f"ops never live: {sorted(missing)}"


# ----------------------------------------------------------------------------- scans
N_SCAN_PROGRAMS = int(os.environ.get("GRADC_FUZZ_SCAN_PROGRAMS", "20"))


class _ScanOracle:
    """What _check_gradients needs of a scan program (fuzz_scan.py): its numpy loss, the
    float64 twin's gradient (float32 programs) and the term count of the tolerances."""
    def __init__(self, sp, terms):
        self.sp, self.terms = sp, terms
        self.np_loss = lambda a, trace=None: fs.np_loss(sp, a, trace)
        up = gradc.grad(fs.gradc_loss(sp, upcast=True), argnums=_float_argnums(), backend="numpy")
        self.twin = lambda *a: up(*fp.upcast_args(a))


def check_scan(sp: fs.ScanProgram):
    """A scan program against its numpy loop: outputs (final carries, the counter, ys),
    the loss and its gradient (evaluator, threads, finite differences, as check_program),
    and for a share of them ``unroll=True`` against the native loop."""
    p = sp.p
    args = fs.make_inputs(sp)
    tr = fp.Trace()
    REPORT[f"scan backend:{p.backend}"] += 1
    REPORT[f"scan carries:{len(sp.carries)}"] += 1
    REPORT[f"scan xs:{len(sp.xs)}"] += 1
    REPORT["scan reverse" if sp.reverse else "scan forward"] += 1
    REPORT["scan no steps" if sp.n == 0 else "scan with steps"] += 1
    if sp.remat:
        REPORT["scan checkpointed step"] += 1
    if sp.counter is not None:
        REPORT["scan counter carry"] += 1
    if sp.big:
        REPORT["scan big (threaded sizes)"] += 1
    with warnings.catch_warnings(), onp.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = fs.np_forward(sp, args, trace=tr)
            want64 = fs.np_forward(sp, args, upcast=True)
        except (ValueError, IndexError) as e:            # a max of nothing
            want = e
        call = step_function(p, fs.gradc_forward(sp), fs.gradc_loss(sp),
                             n_out=None if isinstance(want, Exception) else len(want))
        if isinstance(want, Exception):
            with pytest.raises(type(want)):
                gradc.jit(fs.gradc_forward(sp), backend=p.backend)(*args)
            REPORT["scan both raised"] += 1
            return
        if any(onp.asarray(a).dtype == onp.float32 for a in args):
            tr.float32 = True
        rtol = F32_RTOL if tr.float32 else RTOL
        got, value, grads = call(p.backend, args)
        assert len(got) == len(want)
        for k, (g, w, w64) in enumerate(zip(got, want, want64)):
            w = onp.asarray(w)
            assert onp.asarray(g).dtype == w.dtype, f"scan output {k}: dtype {onp.asarray(g).dtype} != numpy {w.dtype}"
            if w.dtype.kind == "f":
                _close(g, w64, rtol, tr.scale, tr.numel, f"scan output {k}")
            else:
                onp.testing.assert_array_equal(g, w, err_msg=f"scan integer output {k}")
        REPORT["scan forward checked"] += 1
        _check_gradients(p, args, tr, rtol, call, value, grads, _ScanOracle(sp, tr.numel))
        if sp.unroll:
            fwd = fs.gradc_forward(sp, unroll=True)
            vg = gradc.value_and_grad(fs.gradc_loss(sp, unroll=True), argnums=_float_argnums())
            r = gradc.jit(lambda *a: (*fwd(*a), *vg(*a)), backend=p.backend)(*args)
            u_out, u_value, u_grads = r[:len(want)], r[len(want)], r[len(want) + 1]
            gscale = max([tr.scale ** 2] + [float(onp.max(onp.abs(g), initial=0.0)) for g in grads
                                            if onp.isfinite(g).all()])
            for k, (a, b) in enumerate(zip(u_out, got)):
                assert onp.asarray(a).dtype == onp.asarray(b).dtype, f"unroll=True output {k}: dtype"
                _close(a, b, rtol, tr.scale, tr.numel, f"scan output {k}, unroll=True vs the loop")
            _close(u_value, value, rtol, tr.scale ** 2 + tr.scale, tr.numel, "loss, unroll=True vs the loop")
            for k, (a, b) in enumerate(zip(u_grads, grads) if not tr.fragile else ()):
                _close(a, b, rtol, gscale, tr.numel, f"gradient {k}, unroll=True vs the loop")
            REPORT["scan unroll=True vs the loop"] += 1
    REPORT["scan programs checked"] += 1


# Scan programs a campaign found failing (always run): 3400098, an einsum in the step of
# a closed-over weight with a size 0, whose reshape named the enclosing trace's sizes
# in the step's trace, where one of those names was another size.
# 3700061, maximum(v[:, None], v[None]) of a matmul's v whose v[i] and v[j] were 5.6e-17
# apart, 1.8e-15 apart in llvm: a tie rounding decides, which the oracle took for none
# (a value paired with itself was never fragile; an oracle bug, only its diagonal is safe).
# 3700142, a concatenate in the step of a value whose size a median fixed (a number) and
# a closed-over weight's (a symbol): the loop's lowering added the sizes as numbers and
# raised TypeError (gradc/backends/lower_loops.py: offsets are expressions now).
SCAN_REGRESSIONS: list[int] = [3400098, 3700061, 3700142,
                               4100082,   # a square nest's column sum taken for a per-row value (row_local)
                               4400082]   # the difference quotient's rounding: a loss of 4e4 from 8 values, along t = -0.0067


@pytest.mark.parametrize("seed", SCAN_REGRESSIONS + list(range(SEED0, SEED0 + N_SCAN_PROGRAMS)))
def test_scan_program(seed):
    """A lax.scan of a random step (fuzz_scan.generate_scan) against its numpy loop."""
    run_logged(fs.generate_scan(seed), "scan", check_scan)


def test_scan_unroll_of_no_steps():
    """Found by test_scan_program (seeds 3100062, 3100066, 3100088, 3200057: 0 steps, the
    unroll=True comparison): the native loop gives the initial carry and ys of 0 rows;
    unroll=True should too (as it does on concrete values)."""
    def f(c, xs):
        return gradc.lax.scan(lambda c, x: (c + x, c * x), c, xs, unroll=True)
    c, ys = gradc.jit(f, backend="numpy")(onp.ones(2), onp.zeros((0, 2)))
    onp.testing.assert_array_equal(c, onp.ones(2))
    assert ys.shape == (0, 2) and ys.dtype == onp.float64


@pytest.mark.parametrize("backend", ["numpy", "llvm"])
def test_scan_pinned_closed_over_reshape(backend):
    """Found by test_scan_program (seed 3200091: a pinned program's einsum of a weight,
    which reshapes it): unpinned, unroll=True, or the carry or xs reshaped, all work."""
    Y = onp.random.default_rng(0).standard_normal((16, 8))

    def f(Y):
        Y.shape     # pins the sizes (docs/api.md)
        step = lambda c, _: (c + gnp.sum(gnp.reshape(Y, (16, 8)) * 2.0), None)    # noqa: E731
        return gradc.lax.scan(step, 0.0, None, length=3)[0]
    onp.testing.assert_allclose(gradc.jit(f, backend=backend)(Y), 6 * onp.sum(Y), rtol=1e-12)


@pytest.mark.parametrize("backend", ["llvm", "c"])
def test_scan_of_no_steps_never_runs_the_step(backend):
    """Found by test_scan_program (seed 3100070: 0 steps, a weight of 0 rows whose min
    the step takes)."""
    def f(Y, xs):
        return gradc.lax.scan(lambda c, x: (c + x + gnp.min(Y), None), 0.0, xs)[0]
    assert gradc.jit(f, backend=backend)(onp.zeros(0), onp.zeros(0)) == 0.0
