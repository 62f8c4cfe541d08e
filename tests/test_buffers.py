"""mlayers._buffers: the pool that the kernels' large results come from (page faults of
fresh arrays were several times the kernels' time inside a training step).  Value
semantics: a new result never shares memory with a live array; a freed one is reused;
two Python threads never receive the same buffer; ``add`` is numpy's ``a + b``."""
import threading

import numpy as np
import pytest

import mlayers as ml
from mlayers import _buffers

BIG = (300, 200, 3)      # 720 KB of float32: pooled


def _address(a):
    return a.__array_interface__["data"][0]


def test_live_results_never_share_and_freed_ones_are_reused():
    a = _buffers.empty(BIG, np.float32)
    a[...] = 1
    b = _buffers.empty(BIG, np.float32)
    assert not np.shares_memory(a, b)
    view = a[10:20]                      # a view keeps the buffer taken
    addr = _address(a)
    del a
    c = _buffers.empty(BIG, np.float32)
    assert _address(c) != addr and np.all(view == 1)
    del view, c
    d = _buffers.empty(BIG, np.float32)
    e = _buffers.empty(BIG, np.float32)
    assert addr in (_address(d), _address(e))        # free again: handed out again
    assert d.flags.f_contiguous and d.shape == BIG and d.dtype == np.float32


def test_empty_like_keeps_the_layout():
    x = np.zeros((400, 300), np.float64)
    for src in (x, np.asfortranarray(x), x.T):
        y = _buffers.empty_like(src)
        assert y.shape == src.shape and y.strides == src.strides and y.dtype == src.dtype
    small = _buffers.empty((3, 4), np.float32)        # below the pool's size: numpy's
    assert small.shape == (3, 4)


def test_threads_never_share_a_buffer():
    results, barrier = [], threading.Barrier(4)

    def work():
        barrier.wait()
        for _ in range(200):
            a = _buffers.empty(BIG, np.float32)
            results.append(a)
            if len(results) > 40:
                results.pop(0)
            a[0, 0, 0] = threading.get_ident()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    live = list(results)
    for i, a in enumerate(live):
        for b in live[i + 1:]:
            assert not np.shares_memory(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_is_numpys_sum(dtype):
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal(BIG).astype(dtype))
    b = np.asfortranarray(rng.standard_normal(BIG).astype(dtype))
    b[0, 0, 0] = np.inf
    s = _buffers.add(a, b)
    np.testing.assert_array_equal(s, a + b)
    assert s.flags.f_contiguous and s.dtype == dtype and not np.shares_memory(s, a)
    # broadcasting and mixed types follow numpy
    np.testing.assert_array_equal(_buffers.add(a, b[:1]), a + b[:1])
    m = _buffers.add(a.astype(np.float32), b.astype(np.float64))
    assert m.dtype == np.float64


def test_training_results_keep_their_values():
    """A dlgradient result stays what it was while later calls reuse the pool."""
    x = ml.dlarray(np.random.default_rng(1).standard_normal((60, 60, 8, 4)).astype(
        np.float32), "SSCB")

    def f(x):
        y = ml.relu(x) + ml.relu(x)                    # a sum, and a gradient sum
        return ml.dlgradient(ml.sum(y, "all"), x)
    g1 = np.array(ml.extractdata(ml.dlfeval(f, x)))
    kept = ml.extractdata(ml.dlfeval(f, x))
    for _ in range(3):
        ml.dlfeval(f, x * 2)
    np.testing.assert_array_equal(np.asarray(kept), g1)
    np.testing.assert_array_equal(g1, 2 * (np.asarray(ml.extractdata(x)) > 0))


def test_a_spike_is_not_retained(monkeypatch):
    """Past the bytes the pool may own, new results are plain arrays: after a spike of
    live results the pool keeps at most that much."""
    monkeypatch.setattr(_buffers, "_POOL_OWNED", 4 << 20)
    _buffers.trim()
    live = [_buffers.empty(BIG, np.float32) for _ in range(20)]      # 20 x 720 KB
    assert _buffers._owned_bytes() <= 4 << 20
    del live
    _buffers.trim()
    assert _buffers.free_bytes() == 0


def test_free_reference_count_is_measured():
    assert _buffers._FREE_REFS == _buffers._free_refs()
    b = _buffers.empty(BIG, np.float32)
    addr = _address(b)
    c = _buffers.empty(BIG, np.float32)               # b alive: another buffer
    assert _address(c) != addr


def _alloc_in_child():
    return _buffers.empty(BIG, np.float32).shape


@pytest.mark.skipif(not hasattr(__import__("os"), "register_at_fork"), reason="needs fork")
def test_fork_while_the_lock_is_held():
    """A process forked while the pool's lock was held (by another thread at that moment)
    gets a free lock: its first result does not deadlock."""
    import multiprocessing as mp
    _buffers._lock.acquire()
    try:
        with mp.get_context("fork").Pool(1) as pool:
            shape = pool.apply_async(_alloc_in_child).get(timeout=60)
    finally:
        _buffers._lock.release()
    assert shape == BIG


def test_large_results_start_on_a_cache_line():
    """Results from _POOL_MIN bytes on (pooled, reused, and larger than the pool keeps)
    start on a 64-byte line in every dense layout (streamed stores need whole lines)."""
    x = np.zeros((300, 200, 3), np.float32)
    kept = []
    for _ in range(3):          # new buffers, then reused ones
        for a in (_buffers.empty(x.shape, np.float32, "F"), _buffers.empty(x.shape, "f8", "C"),
                  _buffers.empty_like(x), _buffers.empty_like(np.asfortranarray(x)),
                  _buffers.empty_like(x.transpose(1, 0, 2)), _buffers.empty_like(x[::-1])):
            assert _address(a) % 64 == 0 or (a.strides[0] < 0 and
                                              (_address(a) + a.strides[0] * (a.shape[0] - 1))
                                              % 64 == 0)
            a[...] = 1          # the whole range is the array's own
            kept.append(a)
        kept = kept[::2]
    big = _buffers.empty((_buffers._POOL_MAX // 4 + 16,), np.float32)
    assert _address(big) % 64 == 0 and big.size == _buffers._POOL_MAX // 4 + 16
    assert _address(_buffers.empty((100,), np.float32)) % 16 == 0      # small: numpy's own
