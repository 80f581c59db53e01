"""The persistent on-disk cache of compiled object code.

Cached code is executed, so it is treated as code: the directory is per user
(``$GRADC_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradc``, else ``~/.cache/gradc``),
created with mode 0700, and gradc refuses (with a warning saying why) to read a
directory or file that another user owns or can write.  Each entry carries its key
(the graph's text and constants, gradc version, a hash of gradc's source and call
path, LLVM version, CPU name and features)
and a SHA-256 of the object code; a mismatch, truncation or corruption means a
rebuild, never a crash or the wrong code.  Entries are written to a temporary file
and renamed, so concurrent writers cannot leave a torn file.  No pickle: a small
JSON header and raw object bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import warnings

MAGIC = b"GRADC-OBJ\x01"
_warned: set = set()


class CacheWarning(UserWarning):
    """The on-disk cache was not used (and why)."""


def _warn_once(msg):
    if msg not in _warned:
        _warned.add(msg)
        warnings.warn(msg, CacheWarning, stacklevel=3)


def directory() -> str | None:
    """The cache directory, or None when caching is off or the directory is unsafe."""
    path = os.environ.get("GRADC_CACHE_DIR")
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "gradc")
    if path in ("", "0", "off"):
        return None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError as e:
        _warn_once(f"gradc: not caching compiled code: cannot create {path}: {e}")
        return None
    why = _unsafe(st)
    if why:
        _warn_once(f"gradc: refusing to use the cache directory {path}: {why}")
        return None
    return path


def _unsafe(st) -> str | None:
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"it is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):o}); chmod go-w it"
    return None


def make_key(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def load(key: str, header: dict) -> bytes | None:
    d = directory()
    if d is None:
        return None
    path = os.path.join(d, key + ".o")
    try:
        # O_NONBLOCK: a FIFO planted in place of an entry must not block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):   # a directory, FIFO, device: not an entry
            return None
        why = _unsafe(st)
        if why:
            _warn_once(f"gradc: refusing to load cached code {path}: {why}")
            return None
        with os.fdopen(fd, "rb") as f:
            fd = None
            data = f.read()
    except OSError:                         # unreadable (EIO, EISDIR, ...): a miss
        return None
    finally:
        if fd is not None:
            os.close(fd)
    return _parse(data, key, header)


def _parse(data: bytes, key: str, header: dict) -> bytes | None:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        return None
    n = int.from_bytes(data[len(MAGIC):len(MAGIC) + 4], "little")
    start = len(MAGIC) + 4
    try:
        meta = json.loads(data[start:start + n].decode())
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or any(meta.get(k) != v for k, v in header.items()):
        return None
    digest, obj = data[start + n:start + n + 32], data[start + n + 32:]
    if len(obj) != meta.get("size") or hashlib.sha256(obj).digest() != digest:
        return None
    return obj


def store(key: str, header: dict, obj: bytes) -> None:
    d = directory()
    if d is None:
        return
    meta = json.dumps({"key": key, "size": len(obj), **header}).encode()
    data = MAGIC + len(meta).to_bytes(4, "little") + meta + hashlib.sha256(obj).digest() + obj
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".o")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(d, key + ".o"))
    except OSError as e:
        _warn_once(f"gradc: could not write the cache entry in {d}: {e}")
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
