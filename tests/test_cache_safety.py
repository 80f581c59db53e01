"""The on-disk object cache holds code gradc executes, so it is treated as code
(gradc/backends/cache.py).  tests/backends/test_llvm_backend.py covers hits,
corruption, truncation and a group/world-writable directory; here: the directory's
mode, a directory owned by someone else, a writable entry file, a symlinked entry,
an entry whose header does not match, unusable cache paths, and that no pickle is
used anywhere in gradc."""
from __future__ import annotations

import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest

from gradc.backends import cache

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = {"gradc": "t", "llvm": "0", "cpu": "testcpu", "features": "+sse2,+avx2", "name": "k"}
OBJ = b"\x7fELF not really an object" * 10


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "gradc-cache"
    monkeypatch.setenv("GRADC_CACHE_DIR", str(d))
    monkeypatch.setattr(cache, "_warned", set())
    return d


def test_directory_is_created_private(cache_dir, monkeypatch):
    old = os.umask(0)                       # even with a permissive umask
    try:
        d = cache.directory()
    finally:
        os.umask(old)
    assert d == str(cache_dir)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_store_load_round_trip_is_raw_bytes_and_json(cache_dir):
    key = cache.make_key("ir", "parts")
    cache.store(key, HEADER, OBJ)
    data = (cache_dir / f"{key}.o").read_bytes()
    assert data.startswith(cache.MAGIC) and data.endswith(OBJ)
    n = int.from_bytes(data[len(cache.MAGIC):len(cache.MAGIC) + 4], "little")
    meta = json.loads(data[len(cache.MAGIC) + 4:len(cache.MAGIC) + 4 + n])
    assert meta["key"] == key and meta["cpu"] == "testcpu"
    assert cache.load(key, HEADER) == OBJ
    assert not list(cache_dir.glob(".tmp-*"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root can give a directory to another user")
def test_directory_owned_by_another_user_is_refused(cache_dir):
    cache_dir.mkdir(mode=0o700)
    os.chown(cache_dir, 54321, 54321)
    with pytest.warns(cache.CacheWarning, match="owned by uid 54321, not by you"):
        assert cache.directory() is None
    cache.store(cache.make_key("x"), HEADER, OBJ)           # silently not stored
    assert not any(cache_dir.iterdir())


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="only root can give a file to another user")
def test_entry_owned_by_another_user_is_refused(cache_dir):
    key = cache.make_key("other-owner")
    cache.store(key, HEADER, OBJ)
    os.chown(cache_dir / f"{key}.o", 54321, 54321)
    with pytest.warns(cache.CacheWarning, match="refusing to load cached code.*owned by uid 54321"):
        assert cache.load(key, HEADER) is None


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_writable_entry_file_is_refused(cache_dir, mode):
    key = cache.make_key("writable", mode)
    cache.store(key, HEADER, OBJ)
    path = cache_dir / f"{key}.o"
    path.chmod(mode)
    with pytest.warns(cache.CacheWarning, match=r"refusing to load cached code.*other users can write"):
        assert cache.load(key, HEADER) is None


def test_symlinked_entry_is_not_followed(cache_dir, tmp_path):
    key = cache.make_key("symlink")
    cache.store(key, HEADER, OBJ)
    path = cache_dir / f"{key}.o"
    elsewhere = tmp_path / "planted.o"
    elsewhere.write_bytes(path.read_bytes())               # a perfectly valid entry ...
    path.unlink()
    path.symlink_to(elsewhere)                             # ... reached through a symlink
    assert cache.load(key, HEADER) is None
    # storing replaces the link itself; the file it pointed to is not written through it
    before = elsewhere.read_bytes()
    cache.store(key, HEADER, OBJ + b"new")
    assert elsewhere.read_bytes() == before
    assert not path.is_symlink() and cache.load(key, HEADER) == OBJ + b"new"


def test_symlinked_directory_owned_by_you_still_checked(cache_dir, tmp_path):
    """A cache path that is a symlink to a world-writable directory is refused (the
    check is on the directory it resolves to)."""
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o777)
    cache_dir.symlink_to(target)
    with pytest.warns(cache.CacheWarning, match="other users can write"):
        assert cache.directory() is None


@pytest.mark.parametrize("field,value", [("features", "+sse2"), ("cpu", "othercpu"), ("llvm", "99"),
                                         ("gradc", "0.0.0-other"), ("name", "other_kernel")])
def test_header_mismatch_is_a_miss(cache_dir, field, value):
    key = cache.make_key("hdr", field)
    cache.store(key, HEADER, OBJ)
    assert cache.load(key, dict(HEADER, **{field: value})) is None
    assert cache.load(key, HEADER) == OBJ
    assert cache.load(cache.make_key("another key"), HEADER) is None


def _meta(path) -> dict:
    data = path.read_bytes()
    m = len(cache.MAGIC)
    n = int.from_bytes(data[m:m + 4], "little")
    return json.loads(data[m + 4:m + 4 + n])


def _kernel_entry(cache_dir):
    """The kernel's entry (the others hold the vector math functions it calls)."""
    (entry,) = [e for e in cache_dir.glob("*.o") if not _meta(e)["name"].startswith("gradc_vm_")]
    return entry


def _rewrite_meta(path, **changes):
    data = path.read_bytes()
    m = len(cache.MAGIC)
    n = int.from_bytes(data[m:m + 4], "little")
    meta = _meta(path)
    meta.update(changes)
    new = json.dumps(meta).encode()
    path.write_bytes(data[:m] + len(new).to_bytes(4, "little") + new + data[m + 4 + n:])


@pytest.mark.parametrize("bad", [
    lambda d: d[:len(cache.MAGIC)] + b"\xff\xff\xff\x7f" + d[len(cache.MAGIC) + 4:],   # huge header length
    lambda d: d[:len(cache.MAGIC)] + b"\x00\x00\x00\x00" + d[len(cache.MAGIC) + 4:],   # empty header
    lambda d: d[:len(cache.MAGIC) + 4] + b"[1, 2]" + d[len(cache.MAGIC) + 4 + 6:],     # not a dict
    lambda d: d[:len(cache.MAGIC) + 4] + b"\xff\xfe" + d[len(cache.MAGIC) + 6:],      # not UTF-8
    lambda d: d[:-1] + bytes([d[-1] ^ 1]),                                           # object bit flip
    lambda d: cache.MAGIC[:-1],                                                       # truncated magic
    lambda d: b"",
], ids=["huge_len", "zero_len", "list_header", "bad_utf8", "bitflip", "short", "empty"])
def test_malformed_entries_are_misses_not_crashes(cache_dir, bad):
    key = cache.make_key("malformed")
    cache.store(key, HEADER, OBJ)
    path = cache_dir / f"{key}.o"
    path.write_bytes(bad(path.read_bytes()))
    assert cache.load(key, HEADER) is None


@pytest.mark.parametrize("where", ["file", "dir_in_place_of_entry", "fifo_in_place_of_entry"])
def test_unusable_paths_do_not_crash(cache_dir, where):
    if where == "file":
        cache_dir.write_bytes(b"not a directory")
        with pytest.warns(cache.CacheWarning, match="cannot create"):
            assert cache.directory() is None
        cache.store(cache.make_key("x"), HEADER, OBJ)
        assert cache.load(cache.make_key("x"), HEADER) is None
    elif where == "fifo_in_place_of_entry":            # regression: open() used to block forever
        key = cache.make_key("fifo")
        cache_dir.mkdir(mode=0o700)
        os.mkfifo(cache_dir / f"{key}.o", 0o600)
        assert cache.load(key, HEADER) is None
    else:                                               # regression: load() raised IsADirectoryError
        key = cache.make_key("dir")
        (cache_dir / f"{key}.o").mkdir(parents=True)
        cache_dir.chmod(0o700)
        assert cache.load(key, HEADER) is None
        with pytest.warns(cache.CacheWarning, match="could not write the cache entry"):
            cache.store(key, HEADER, OBJ)
        assert not list(cache_dir.glob(".tmp-*")), "a failed store left its temporary file"


def test_cache_off_values(monkeypatch):
    for v in ("", "0", "off"):
        monkeypatch.setenv("GRADC_CACHE_DIR", v)
        assert cache.directory() is None


SCRIPT = r"""
import numpy as onp, gradc, gradc.numpy as np
f = gradc.value_and_grad(lambda w, X: np.sum(np.tanh(X @ w) ** 2))
v, g = f(onp.linspace(-1, 1, 3), onp.arange(12.0).reshape(4, 3) / 10)
art = list(f._cache.values())[0][0].run.artifact
print(art.cached, repr(float(v)), [repr(float(t)) for t in g])
"""


def _run(cache_dir):
    out = subprocess.run([sys.executable, "-W", "always", "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env=dict(os.environ, GRADC_CACHE_DIR=str(cache_dir),
                                                         PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    cached, rest = out.stdout.split(None, 1)
    return cached, rest, out.stderr


def test_entry_from_another_cpu_is_rebuilt_end_to_end(tmp_path):
    """A real entry whose header says another CPU (key and object digest intact): gradc
    recompiles instead of running it, gives the same answer, and overwrites it."""
    c1, v1, _ = _run(tmp_path)
    assert c1 == "False"
    entry = _kernel_entry(tmp_path)
    _rewrite_meta(entry, features="+sse2", cpu="i386")
    c2, v2, _ = _run(tmp_path)
    assert c2 == "False" and v2 == v1
    c3, v3, _ = _run(tmp_path)
    assert c3 == "True" and v3 == v1


def test_writable_entry_end_to_end(tmp_path):
    _run(tmp_path)
    entry = _kernel_entry(tmp_path)
    entry.chmod(0o666)
    cached, _v, err = _run(tmp_path)
    assert cached == "False" and "refusing to load cached code" in err and "other users can write" in err


def test_no_pickle_anywhere_in_gradc():
    """Cached code and everything else gradc persists is raw bytes and JSON; pickle (or
    its relatives) would turn a cache entry into arbitrary code on load.  (gradc's
    objects define ``__reduce__`` so that users can send them to other processes with
    the pickle of their choice; gradc itself never pickles nor unpickles.)"""
    pkg = ROOT / "gradc"
    bad = []
    for p in pkg.rglob("*"):
        if p.suffix not in (".py", ".c", ".h", ".pyx") or not p.is_file():
            continue
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            if re.search(r"(import|from)\s+(c?pickle|dill|cloudpickle|marshal|shelve|joblib)\b|"
                         r"\b(c?pickle|marshal|dill|shelve)\.\w", line):
                bad.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    for p in (ROOT / "runtime").glob("*.c"):
        if re.search(r"PyImport_Import\w*\(.*pickle|\"pickle\"", p.read_text(errors="replace")):
            bad.append(str(p))
    assert not bad, "\n".join(bad)


def test_a_change_anywhere_in_gradc_is_a_miss(tmp_path):
    """Cached object code is keyed on every source file of the package, not only on the
    code generators: an entry compiled before a change to the passes (which decide the
    scheduled graph and so the workspace's layout) must not be loaded after it.  With
    the backends and ops alone in the key, such an entry was loaded and wrote past the
    workspace of the new layout.  A copy of the package, a cached run, a comment added
    to gradc/passes.py: the next run compiles again."""
    import shutil
    copy = tmp_path / "pkg"
    shutil.copytree(ROOT / "gradc", copy / "gradc", ignore=shutil.ignore_patterns("__pycache__"))
    cache_dir = tmp_path / "cache"

    def run():
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, env=dict(os.environ, GRADC_CACHE_DIR=str(cache_dir),
                                                    PYTHONPATH=str(copy)))
        assert out.returncode == 0, out.stderr
        return out.stdout.split(None, 1)

    first, v1 = run()
    again, v2 = run()
    assert (first, again) == ("False", "True") and v1 == v2
    with open(copy / "gradc" / "passes.py", "a") as f:
        f.write("\n# a change\n")
    changed, v3 = run()
    assert changed == "False" and v3 == v1
