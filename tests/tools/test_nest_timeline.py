"""tools/nest_timeline.py: the events it reports for one call are the model's products
and threaded nests, in order, with the model's shapes (oracle: the shapes of M6, a
3-layer MLP, 64 rows of 16 inputs, 64-64 hidden units, 4 outputs).  Run in a subprocess:
the tool rebinds the JIT's symbols for its whole process."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from gradc.backends import llvm_jit

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")
@pytest.mark.skipif(not (llvm_jit.init()["blas"] or {}).get("pool"), reason="no pool-split products")
def test_timeline_lists_the_mlp_products_in_order():
    # the whole batch in one kernel: hot code (which the tool waits for) splits M6
    # medium's batch over the threads, each part's products then on 1,024 rows
    env = dict(os.environ, GRADC_NUM_THREADS="2", GRADC_SPLIT_BATCHES="0")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "nest_timeline.py"), "M6", "medium"],
                         capture_output=True, text=True, env=env, check=True).stdout
    products = re.findall(r"product (\S+) @ (\S+): m=(\d+) n=(\d+) k=(\d+)", out)
    shapes = [(a, b, int(m), int(n), int(k)) for a, b, m, n, k in products]
    # forward X @ W1, A1 @ W2 (A2 @ W3 has 4 columns: gradc's narrow kernel, not timed),
    # backward dZ3 @ W3^T, dZ2 @ W2^T, A1^T @ dZ2, X^T @ dZ1
    assert shapes == [("A", "B", 2048, 64, 16), ("A", "B", 2048, 64, 64), ("A", "B^T", 2048, 64, 4),
                      ("A", "B^T", 2048, 64, 64), ("A^T", "B", 64, 64, 2048), ("A^T", "B", 16, 64, 2048)]
    assert "threaded nest" in out
    total = re.search(r"call median (\d+) us", out)
    assert total and int(total.group(1)) > 0
