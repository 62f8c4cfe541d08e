"""Result buffers for the kernels' outputs, reused once nothing references them.

A fresh large numpy array costs a page fault per 4 KiB page on its first write (glibc
gives freed large blocks back to the system, and keeps handing out fresh pages while the
arrays of a training step are alive): about 2 us a page here, several times the kernels'
own time (a 3 MB ReLU output: ~1.6 ms of faults for a 0.1 ms pass; N4's training step
faulted 44 MB, 11,000 pages, every iteration).  Large results therefore come from a pool
of buffers, and a buffer is handed out again only when nothing references it any more:
its reference count shows the pool alone, as every array or view made from it and every
buffer export holds a reference.  So results keep value semantics: no live array ever
shares memory with a new result.  The search and the taking of a buffer happen under a
lock, so two Python threads never receive the same free buffer.  Results of 256 KiB and
more start on a 64-byte cache line (the kernels' streamed stores write whole lines).
"""
import math
import os
import sys
import threading

import numpy as np

_POOL_MIN = 1 << 18             # bytes: smaller blocks come from malloc's own free lists
_POOL_MAX = 1 << 26             # a single block larger than this is not kept
_POOL_BYTES = 1 << 27           # free bytes kept at most
_POOL_PER_SIZE = 48             # a training step holds a few dozen results of one size
_POOL_OWNED = 1 << 28           # bytes the pool owns at most, in use or free: past this a
                                # new result is a plain array (so a spike is not retained)
_ALIGN = 64                     # bytes: large results start on a cache line
_pool = {}                      # nbytes -> list of (uint8 buffer, offset of the line start)
_lock = threading.Lock()


def _after_fork_in_child():
    # a fork while another thread held the lock would leave the child's copy held forever
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _free_refs():
    """The reference count getrefcount reports for a buffer only the pool's list holds,
    seen from a loop like _take's (3 on CPython 3.10-3.13: the entry, the loop variable,
    getrefcount's argument; measured, as newer interpreters may borrow references)."""
    probe = [(np.empty(1, dtype=np.uint8), 0)]
    for b, _ in probe:
        return sys.getrefcount(b)


_FREE_REFS = _free_refs()


def _aligned(nbytes):
    """``(buffer, start)``: a new uint8 buffer with ``nbytes`` from ``start`` on, where a
    cache line begins.  The kernels store large results with non-temporal stores in whole
    aligned lines (``pyx/_stream.h``); rows that start mid-line leave partial lines to
    plain stores, and those switches cost more than streaming saves (batch normalization's
    rows, 6.4 M floats: 1.16 ms streamed into an aligned result, 1.34 ms into one 16 bytes
    off, 1.29-1.35 ms plain).  Arrays wrap the buffer itself (numpy keeps a view's owner
    as the base), so its reference count shows who uses it."""
    b = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    return b, -b.__array_interface__["data"][0] % _ALIGN


def _take(nbytes):
    """``(buffer, start)`` as :func:`_aligned` for ``nbytes`` (a size the pool keeps:
    pooled), reused when free, else new.  The caller holds _lock."""
    bufs = _pool.setdefault(nbytes, [])
    for b, start in bufs:
        if sys.getrefcount(b) <= _FREE_REFS:
            return b, start
    entry = _aligned(nbytes)
    if len(bufs) >= _POOL_PER_SIZE:
        return entry        # every buffer of this size is in use: a plain array
    if _free_bytes() + nbytes > _POOL_BYTES:
        _trim()
        bufs = _pool.setdefault(nbytes, [])
    if _owned_bytes() + nbytes <= _POOL_OWNED:
        bufs.append(entry)
    return entry


def _free_bytes():
    return sum(n for n, bufs in _pool.items() for b, _ in bufs
               if sys.getrefcount(b) <= _FREE_REFS)


def _owned_bytes():
    return sum(n * len(bufs) for n, bufs in _pool.items())


def _trim():
    for n in list(_pool):
        _pool[n] = [(b, start) for b, start in _pool[n] if sys.getrefcount(b) > _FREE_REFS]
        if not _pool[n]:
            del _pool[n]


def free_bytes():
    """Bytes of the pool's buffers that nothing references."""
    with _lock:
        return _free_bytes()


def trim():
    """Drop every free buffer of the pool (the memory goes back to the allocator)."""
    with _lock:
        _trim()


def pooled(nbytes):
    """Whether results of ``nbytes`` come from the pool."""
    return _POOL_MIN <= nbytes <= _POOL_MAX


def _buffer(nbytes):
    """``(buffer, start)`` for a result of ``nbytes`` >= ``_POOL_MIN``: from the pool when
    it keeps that size, else new; either way starting on a cache line.  (The lock covers
    the search and the taking of the reference that the returned tuple holds: from then
    on the buffer's count shows it in use.)"""
    if nbytes > _POOL_MAX:
        return _aligned(nbytes)
    with _lock:
        return _take(nbytes)


def empty(shape, dtype, order="F"):
    """``np.empty(shape, dtype, order)``, from the pool when large; from ``_POOL_MIN``
    bytes on, starting on a cache line."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < _POOL_MIN:
        return np.empty(shape, dtype=dtype, order=order)
    b, start = _buffer(nbytes)
    return np.ndarray(shape, dtype=dtype, buffer=b, offset=start, order=order)


def empty_like(x):
    """``np.empty_like(x)`` for a dense x (its strides kept), from the pool when large;
    from ``_POOL_MIN`` bytes on, starting on a cache line."""
    if x.nbytes < _POOL_MIN or (0 in x.strides and x.size > 1):
        # (small; or broadcast, whose strides would overlap elements)
        return np.empty_like(x)
    b, start = _buffer(x.nbytes)
    if x.flags.c_contiguous or x.flags.f_contiguous:
        return np.ndarray(x.shape, dtype=x.dtype, buffer=b, offset=start,
                          order="C" if x.flags.c_contiguous else "F")
    offset = start - sum((n - 1) * s for n, s in zip(x.shape, x.strides) if s < 0)
    return np.ndarray(x.shape, dtype=x.dtype, buffer=b, strides=x.strides, offset=offset)


def add(a, b):
    """``a + b``, into a pooled result when both are large dense arrays of one shape and
    dtype (residual additions and the gradient sums of values used twice); numpy's own
    ``a + b`` (and its broadcasting and type rules) otherwise."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and pooled(a.nbytes)
            and (a.flags.c_contiguous or a.flags.f_contiguous)):
        return np.add(a, b, out=empty_like(a))
    return a + b
