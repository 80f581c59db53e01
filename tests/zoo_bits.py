"""Bit-for-bit regression check of the benchmark zoo across a code-generator change.

    PYTHONPATH=$PWD python tests/zoo_bits.py save    DIR   # on the commit before
    PYTHONPATH=$PWD python tests/zoo_bits.py compare DIR   # on the commit after

``save`` runs every model of ``gradc.bench_models`` (M1-M7) at the small and medium
sizes, forward (``jit``) and ``value_and_grad``, in float64 and float32, on backend
"llvm" compiled for 1 and for 2 threads and on backend "c", and writes the results
(``results.npz``) and the generated code (the LLVM IR before optimization, the C
source) to DIR.  ``compare`` recomputes everything and fails unless every array is
identical bit for bit (NaN payloads included: the bytes are compared); it reports
which generated texts changed, which is allowed (a renamed value) but worth reading,
and results the earlier commit could not compute (a GradcError, saved as its text).

This is a script, not a pytest test: it compiles about 100 kernels (minutes on a
shared machine), and its oracle is an earlier commit's output, not a numpy reference
(the zoo's numerical correctness against numpy is tests/test_bench.py's job).
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

os.environ.setdefault("GRADC_CACHE_DIR", tempfile.mkdtemp(prefix="gradc-zoo-bits-"))

import gradc  # noqa: E402
from gradc.bench_models import MODELS, make_data  # noqa: E402

SIZES = ("small", "medium")
DTYPES = ("float64", "float32")
TARGETS = (("llvm", "1"), ("llvm", "2"), ("c", "1"))


def _flat(out) -> list:
    if isinstance(out, tuple):
        return [a for o in out for a in _flat(o)]
    return [np.asarray(out)]


def run() -> tuple[dict, dict]:
    """{key: array} of every result and {key: text} of every generated kernel."""
    results, texts = {}, {}
    for backend, threads in TARGETS:
        os.environ["GRADC_NUM_THREADS"] = threads
        for name, model in MODELS.items():
            for dtype in DTYPES:
                for size in SIZES:
                    args = make_data(name, size, dtype)
                    for kind in ("jit", "value_and_grad"):
                        if kind == "jit":
                            f = gradc.jit(model.gradc, backend=backend)
                        else:
                            f = gradc.value_and_grad(model.gradc, model.argnums, backend=backend)
                        key = f"{backend}{threads}/{name}/{dtype}/{size}/{kind}"
                        try:
                            outs = _flat(f(*args))
                        except gradc.GradcError as e:   # reported by compare as missing/new
                            texts[key] = f"ERROR {type(e).__name__}: {e}"
                            print(key, texts[key][:200], file=sys.stderr, flush=True)
                            continue
                        for k, a in enumerate(outs):
                            results[f"{key}/{k}"] = a
                        low = f.lower(*args)
                        texts[key] = low.c_source() if backend == "c" else low.llvm_ir(optimized=False)
                        print(key, file=sys.stderr, flush=True)
    return results, texts


def _path(directory, key):
    return os.path.join(directory, key.replace("/", "_") + ".txt")


def main(argv) -> int:
    if len(argv) != 3 or argv[1] not in ("save", "compare"):
        print(__doc__)
        return 2
    mode, directory = argv[1], argv[2]
    results, texts = run()
    if mode == "save":
        os.makedirs(directory, exist_ok=True)
        np.savez(os.path.join(directory, "results.npz"), **results)
        for key, text in texts.items():
            with open(_path(directory, key), "w") as fh:
                fh.write(text)
        print(f"saved {len(results)} arrays and {len(texts)} kernels to {directory}")
        return 0
    before = np.load(os.path.join(directory, "results.npz"))
    bad, new = [], []
    for key, a in results.items():
        if key not in before:
            new.append(key)     # the earlier commit failed here (its text says how)
            continue
        b = before[key]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) if a.shape == b.shape else "shape"
            bad.append(f"{key}: differs (max abs difference {diff})")
    bad += [f"{key}: missing" for key in before.files if key not in results]
    changed = []
    for key, text in texts.items():
        p = _path(directory, key)
        if not os.path.exists(p) or open(p).read() != text:
            changed.append(key)
    print(f"{len(results) - len(new)} arrays compared, {len(bad)} differ, {len(new)} new "
          f"(the earlier commit raised an error there); "
          f"{len(texts) - len(changed)} of {len(texts)} generated kernels have the same text")
    for key in changed:
        print(f"  text changed: {key}")
    for line in bad:
        print(f"  DIFFERS: {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
