"""Non-temporal ("streaming") stores of large results (``pyx/_stream.h``).

The streamed path stores whole 64-byte-aligned blocks through local buffers; everything
else goes through plain stores.  Every kernel that streams is run here both ways on data
placed at every element offset from a cache line (and float64 4 bytes off an element
boundary, which never streams), with lengths around the block size and across chunk
boundaries, on 1 and 2 threads: the streamed result
must equal an independent NumPy reference where the formula is exact (ReLU, leaky ReLU,
clipped ReLU, the residual sum, sigmoid's backward), and, bit for bit, the plain path
(which the other kernel tests check against their references) everywhere.  Through the
seams, a threshold of 0 bytes makes every call stream."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _act, _buffers, _norm, _ops_act, _ops_norm
from mlayers.functional import activations as A

BLOCK = 256                 # bytes per streamed block (STREAM_BYTES)


def _placed(values, offset):
    """``values`` copied into a buffer ``offset`` bytes after a cache line."""
    raw, start = _buffers._aligned(values.nbytes + 128)
    out = np.ndarray(values.shape, values.dtype, buffer=raw, offset=start + offset)
    out[...] = values
    return out


def _values(n, dtype, rng):
    x = rng.standard_normal(n) * 3
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40]
    x[rng.integers(0, n, min(n, 12))] = rng.choice(special, min(n, 12))
    return x.astype(dtype)


def _cases(dtype):
    """(length, byte offset from a line, rng): every element offset within a line (and,
    for float64, two offsets of 4 bytes past an element) for short lengths, two for long
    ones."""
    size = np.dtype(dtype).itemsize
    per = BLOCK // size
    every = [k * size for k in range(64 // size)] + ([4, 36] if size == 8 else [])
    lengths = (0, 1, per - 1, per, per + 1, 2 * per + 5, 5 * per + 3, 16384 * 2 + 77)
    rng = np.random.default_rng(len(lengths) + per)
    for n in lengths:
        for offset in every if n < 1000 else (0, 5 * size):
            yield n, offset, rng


def _same_bits(a, b):
    """Bitwise equal, except that a NaN equals any NaN (its sign and payload are not a
    value: libm's float64 exp in two copies of one loop may give NaNs of either sign)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_kernels_streamed(dtype, threads):
    with np.errstate(all="ignore"):
        for n, off, rng in _cases(dtype):
            x = _placed(_values(n, dtype, rng), off)
            dy = _placed(_values(n, dtype, rng), (off + 2 * x.itemsize) % 64)
            ys = {}
            for stream in (False, True):
                y = _placed(np.zeros(n, dtype), (off + x.itemsize) % 64)
                _norm.relu_forward(x, y, threads, stream)
                ys[stream] = y.copy()
                np.testing.assert_array_equal(y, np.where(x <= 0, dtype(0), x))
                d = _placed(np.zeros(n, dtype), off)
                _norm.relu_backward(x, dy, d, threads, stream)
                np.testing.assert_array_equal(d, np.where(x > 0, dy, dtype(0)))
                for rect in (False, True):
                    s = x + dy
                    _norm.add(x, dy, d, rect, threads, stream)
                    np.testing.assert_array_equal(d, np.where(s <= 0, dtype(0), s) if rect
                                                  else s)
                _act.forward(0, x, y, 0.25, threads, stream)
                np.testing.assert_array_equal(y, np.where(x > 0, x, x * dtype(0.25)))
                _act.forward(1, x, y, 2.0, threads, stream)
                np.testing.assert_array_equal(
                    y, np.where(x != x, x, np.where(x > 0, np.minimum(x, dtype(2)), 0)))
                _act.backward(0, x, x, dy, d, 0.25, threads, stream)
                np.testing.assert_array_equal(d, np.where(x > 0, dy, dy * dtype(0.25)))
                _act.backward(5, x, x, dy, d, 0.0, threads, stream)      # sigmoid: from y
                np.testing.assert_array_equal(d, dy * x * (dtype(1) - x))
            assert _same_bits(ys[False], ys[True])
            # in place (the seam never streams in place, the kernel allows it)
            z = x.copy()
            _norm.relu_forward(z, z, threads, True)
            assert _same_bits(z, ys[False])


@pytest.mark.parametrize("kind", list(_ops_act.KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_activation_streamed_bitwise(kind, dtype):
    """The streamed blocks run the plain path's vector code: the same bits, every kind,
    including those the seam does not stream."""
    code = _ops_act.KINDS[kind]
    with np.errstate(all="ignore"):
        for n, off, rng in _cases(dtype):
            x = _placed(_values(n, dtype, rng), off)
            y0 = np.empty_like(x)
            _act.forward(code, x, y0, 0.7, 2, False)
            dy = _values(n, dtype, rng)
            out = []
            for stream in (False, True):
                y = _placed(np.zeros(n, dtype), (off + 3 * x.itemsize) % 64)
                _act.forward(code, x, y, 0.7, 2, stream)
                d = _placed(np.zeros(n, dtype), (off + 7 * x.itemsize) % 64)
                _act.backward(code, x, y0, dy, d, 0.7, 2, stream)
                out.append((y.copy(), d.copy()))
            assert _same_bits(out[0][0], out[1][0]) and _same_bits(out[0][1], out[1][1])


def test_seam_threshold(monkeypatch):
    """Large results stream, small ones do not; the threshold is the last-level cache."""
    assert _ops_norm.STREAM_MIN_BYTES >= 1 << 20
    small = np.zeros(1000, np.float32)
    big = np.zeros(_ops_norm.STREAM_MIN_BYTES // 8 + 1, np.float32)
    assert not _ops_norm._stream(small, small)
    assert _ops_norm._stream(big, big, big, big)
    monkeypatch.setattr(_ops_norm, "STREAM_MIN_BYTES", 0)
    assert _ops_norm._stream(small)


#: the kernels the seams ask to stream, and where the flag goes: the last argument
STREAMING = {_norm: ("relu_forward", "relu_backward", "add", "bn_train_forward",
                     "bn_train_backward", "bn_infer_backward", "channel_affine",
                     "gn_forward", "gn_backward"),
             _act: ("forward", "backward")}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_streamed_equal_plain(monkeypatch, dtype):
    """Every operation whose kernel streams: the same bits with every call streamed (a
    threshold of 0 bytes) as with none, forward and backward, on 1 and 2 threads (the
    arrays are small: the one-thread threshold is lifted); the flag reaches every such
    kernel."""
    rng = np.random.default_rng(3)
    x = np.asfortranarray(rng.standard_normal((20, 13, 6, 5)).astype(dtype))  # rows of 260
    x[0, 0, 0, 0] = np.nan
    dy = np.asfortranarray(rng.standard_normal(x.shape).astype(dtype))
    off, sc = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    mean, var = rng.standard_normal(6).astype(dtype), rng.random(6).astype(dtype) + 0.5
    monkeypatch.setattr(_ops_norm, "_PARALLEL_MIN", 0)
    flags = set()
    for module, names in STREAMING.items():
        for name in names:
            def spy(*args, _f=getattr(module, name), _name=name, **kwargs):
                flags.add((_name, bool(args[-1])))
                return _f(*args, **kwargs)
            monkeypatch.setattr(module, name, spy)

    DY = ml.dlarray(dy, "SSCB")
    calls = [
        ml.relu, lambda X: ml.leakyrelu(X, 0.1), lambda X: A.clippedrelu(X, 1.5),
        ml.sigmoid, lambda X: A.elu(X, 0.5), lambda X: X + DY,
        lambda X: ml.batchnorm(X, off, sc),
        lambda X: ml.batchnorm(X, off, sc, _rectify=True),    # (the executor's BN + ReLU)
        lambda X: ml.batchnorm(X, off, sc, mean, var),
        lambda X: ml.groupnorm(X, 3, off, sc),
        lambda X: ml.layernorm(X, off, sc),
        lambda X: ml.instancenorm(X, off, sc),
    ]

    def run():
        out = []
        for f in calls:
            def grads(X):
                Y = f(X)
                return Y, ml.dlgradient(ml.sum(Y * DY, "all"), X)
            for t in (1, 2):
                with ml.threads(t):
                    Y, G = ml.dlfeval(grads, ml.dlarray(x, "SSCB"))
                out.append((ml.extractdata(Y).copy(), ml.extractdata(G).copy()))
        return out

    plain = run()
    assert all(not on for _, on in flags)
    monkeypatch.setattr(_ops_norm, "STREAM_MIN_BYTES", 0)
    streamed = run()
    assert {name for name, on in flags if on} == {n for v in STREAMING.values() for n in v}
    assert len(plain) == 2 * len(calls)
    for (y0, g0), (y1, g1) in zip(plain, streamed):
        assert _same_bits(y0, y1) and _same_bits(g0, g1)
