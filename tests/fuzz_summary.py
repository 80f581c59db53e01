"""Sum a fuzz campaign's per-program log (tests/test_fuzz.py, GRADC_FUZZ_LOG): how many
programs passed and failed, and the coverage counts of the fuzz report over them.

    python tests/fuzz_summary.py fuzz.jsonl [more.jsonl ...]
"""
from __future__ import annotations

import json
import sys
from collections import Counter


def summarize(paths):
    status, counts, depths, ops, failed = Counter(), Counter(), Counter(), Counter(), []
    seen = set()
    for path in paths:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                # a regression seed every shard runs: once; an MLP program shares its
                # seed with a plain one (a log without "kind" conflates them)
                key = (r.get("kind"), r["seed"])
                if key in seen:
                    continue
                seen.add(key)
                status[r["status"]] += 1
                counts.update(r["counts"])
                depths[r["depth"]] += 1
                ops.update(r["ops"])
                if r["status"] != "passed":
                    failed.append(r["seed"] if key[0] is None else f"{key[0]}:{r['seed']}")
    return status, counts, depths, ops, failed


if __name__ == "__main__":
    status, counts, depths, ops, failed = summarize(sys.argv[1:])
    print(f"programs: {dict(status)}  failed seeds: {sorted(failed, key=str)}")
    print(f"counts: {dict(sorted(counts.items()))}")
    print(f"live depth: {dict(sorted(depths.items()))}")
    print(f"live ops: {dict(sorted(ops.items()))}")
