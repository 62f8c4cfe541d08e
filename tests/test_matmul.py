"""mlayers._ops.matmul (fullyconnect's and mtimes' products: BLAS on the kernels' own
threads, and for a few rows against a long reduction the skinny kernel of pyx/_simd.h)
against float64 products, every memory order, empty and degenerate shapes, and the same
bits for any thread count."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from test_kernels import isa_level  # noqa: F401  (a fixture)


def _operand(rng, shape, dtype, order):
    if order == "T":        # a transposed view: Fortran-contiguous without a copy
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    return np.asarray(rng.standard_normal(shape).astype(dtype), order=order)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("orders", [("C", "C"), ("F", "F"), ("C", "F"), ("T", "C")])
@pytest.mark.parametrize("mnk", [(10, 128, 1568), (1568, 128, 10), (10, 1568, 128),
                                 (1, 1, 300), (300, 1, 7), (1, 257, 3), (65, 33, 17),
                                 (3, 5, 70000), (10, 32, 9000),    # the reduction cut
                                 # one observation: gemv for weights in rows, in chunks
                                 # of rows for a large one
                                 (10, 1, 1568), (1000, 1, 2048)])
def test_values_and_threads(dtype, orders, mnk):
    m, n, k = mnk
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    a = _operand(rng, (m, k), dtype, orders[0])
    b = _operand(rng, (k, n), dtype, orders[1])
    outs = []
    for t in (1, 2, 3):
        with ml.threads(t):
            outs.append(_ops.matmul(a, b))
    c = outs[0]
    assert c.shape == (m, n) and c.dtype == dtype and c.flags.f_contiguous
    ref = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(c - ref) <= 2 * k * eps * scale)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, c)
    # a bias added by the kernel (fullyconnect): the bits of adding it to the product
    bias = rng.standard_normal(m).astype(dtype)
    bias[0] = np.nan if m > 1 else bias[0]
    want = c + bias.reshape(-1, 1)
    for t in (1, 2, 3):
        with ml.threads(t):
            got = _ops.matmul(a, b, bias)
        assert got.flags.f_contiguous
        np.testing.assert_array_equal(got, want)


def test_empty_and_strided():
    f = np.float32
    assert _ops.matmul(np.ones((0, 3), f), np.ones((3, 4), f)).shape == (0, 4)
    assert _ops.matmul(np.ones((2, 3), f), np.ones((3, 0), f)).shape == (2, 0)
    z = _ops.matmul(np.ones((2, 0), f), np.ones((0, 4), f))
    np.testing.assert_array_equal(z, np.zeros((2, 4), f))
    a = np.arange(60, dtype=np.float64).reshape(6, 10)[:, ::2]     # neither order
    b = np.arange(20, dtype=np.float64).reshape(5, 4)
    np.testing.assert_array_equal(_ops.matmul(a, b), a @ b)


def test_nan_inf_propagate():
    a = np.array([[np.nan, 1.0], [np.inf, 0.0], [1.0, 2.0]], np.float32)
    b = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    c = _ops.matmul(a, b)
    assert np.isnan(c[0, 0]) and np.isinf(c[1, 0]) and np.isnan(c[1, 1])
    np.testing.assert_array_equal(c[2], [3.0, 2.0])


def test_mixed_dtypes_follow_numpy():
    a = np.ones((3, 2), np.float32)
    b = np.ones((2, 4), np.float64)
    c = _ops.matmul(a, b)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, np.full((3, 4), 2.0))


def test_inner_dimensions_checked():
    with pytest.raises(ValueError, match="matmul: inner dimensions must agree"):
        _ops.matmul(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="matmul: bias must have 3 elements, got 2"):
        _ops.matmul(np.ones((3, 4), np.float32), np.ones((4, 2), np.float32),
                    np.ones(2, np.float32))


def test_bias_with_empty_or_mixed_operands():
    f = np.float32
    bias = np.array([1.0, -2.0], f)
    np.testing.assert_array_equal(_ops.matmul(np.ones((2, 0), f), np.ones((0, 3), f), bias),
                                  np.repeat(bias.reshape(-1, 1), 3, axis=1))
    z = _ops.matmul(np.ones((2, 0), f), np.ones((0, 3), np.float64), bias)
    assert z.dtype == np.float64 and z.flags.f_contiguous
    c = _ops.matmul(np.ones((2, 2), f), np.ones((2, 3), np.float64), bias)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, 2.0 + np.repeat(bias.reshape(-1, 1), 3, axis=1))


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_rows_long_reduction(level, dtype, isa_level):  # noqa: F811
    """A fully connected layer's forward (OutputSize x batch over every feature) cuts the
    reduction into chunks and, where 4 or more rows fit in two vectors and both operands
    are column-major, runs each chunk in the skinny kernel: rows of one vector, two vectors
    and less, batches that are not multiples of its 8 columns, chunks whose last columns'
    vectors would run past them, non-finite values in A (a column's spare lanes read the
    next column's values) and in B, every instruction set, 1 to 3 threads."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    lanes = _ops._conv.isa()[2] // np.dtype(dtype).itemsize
    rng = np.random.default_rng(level * 10 + np.dtype(dtype).itemsize)
    for m, n, k in [(4, 3, 60000), (lanes, 8, 20000), (lanes + 1, 9, 12345),
                    (2 * lanes, 17, 9001), (lanes - 1, 2, 70000)]:
        split, _, pieces = _ops._matmul_split(m, n, k, _ops._MATMUL_SPLIT_MACS,
                                              _ops._MATMUL_SMALL_RESULT, _ops._MATMUL_K_CHUNK)
        assert split == 2 and pieces > 1, (m, n, k)
        a = np.asfortranarray(rng.standard_normal((m, k)).astype(dtype))
        b = np.asfortranarray(rng.standard_normal((k, n)).astype(dtype))
        a[0, [7, k // 2, k - 1]] = [np.inf, np.nan, -np.inf]     # row 0: non-finite sums
        b[11, n - 1] = np.nan                                    # the last column: NaN
        bias = rng.standard_normal(m).astype(dtype)
        outs = []
        for t in (1, 2, 3):
            with ml.threads(t):
                outs.append(_ops.matmul(a, b, bias))
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])
        c = outs[0]
        with np.errstate(invalid="ignore"):
            ref = a.astype(np.float64) @ b.astype(np.float64) + bias[:, None]
            scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
        assert np.array_equal(np.isnan(c), np.isnan(ref)), (m, n, k)
        fin = np.isfinite(ref)
        assert np.array_equal(np.isfinite(c), fin), (m, n, k)
        # (blocks of 256 terms summed from zero, in double across blocks, the chunks
        # added in dtype: far inside k * eps)
        eps = np.finfo(dtype).eps
        assert np.all(np.abs(c - ref)[fin] <= 300 * eps * (scale[fin] + np.abs(bias)[
            np.nonzero(fin)[0]])), (m, n, k)


def _guarded(shape, dtype):
    """A Fortran-ordered array whose last element ends a page followed by an inaccessible
    page (a read past its end faults), or None where mprotect is unavailable."""
    import ctypes
    import mmap
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = mmap.PAGESIZE
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        pages = -(-nbytes // page) + 1
        buf = mmap.mmap(-1, pages * page)
        base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
        libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        if libc.mprotect(ctypes.c_void_p(base + (pages - 1) * page), page, 0) != 0:
            return None
    except (OSError, AttributeError, ValueError):
        return None
    start = (pages - 1) * page - nbytes
    return np.ndarray(shape, dtype=dtype, buffer=buf, offset=start, order="F")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_rows_never_read_past_their_operands(dtype):
    """The skinny kernel reads A's columns as whole vectors; the last ones, whose vectors
    would pass A's end, come from a padded copy: A ending at an inaccessible page."""
    lanes = _ops._conv.isa()[2] // np.dtype(dtype).itemsize
    for m in (4, 5, lanes - 1, lanes + 1):
        k, n = 40000, 5
        a = _guarded((m, k), dtype)
        if a is None:
            pytest.skip("no mprotect here")
        rng = np.random.default_rng(m)
        a[...] = rng.standard_normal((m, k))
        b = np.asfortranarray(rng.standard_normal((k, n)).astype(dtype))
        c = _ops.matmul(a, b)           # (a fault here would end the test process)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4 if dtype ==
                                   np.float32 else 1e-12, atol=1e-3 if dtype ==
                                   np.float32 else 1e-10)


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_connected_backward_products(level, dtype, isa_level):  # noqa: F811
    """A fully connected layer's backward with few outputs (pyx/_simd.h fanout_ and
    fanin_): the input gradient W^T dY (W OutputSize x features column-major, so W^T is its
    C-ordered transpose; a reduction of 4-16 terms) and the weight gradient dY X^T (4-16
    rows; X features x batch column-major), in chunks of rows or of columns or whole;
    features not a multiple of the kernels' blocks, batches not a multiple of their column
    groups, batches longer than their 256-term blocks, non-finite values, every
    instruction set, 1 to 3 threads: against float64 products, the same bits on every
    thread count."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    rng = np.random.default_rng(level * 10 + np.dtype(dtype).itemsize)
    for nout, feat, batch in [(10, 20000, 32), (4, 777, 5), (16, 3001, 9), (5, 65, 1),
                              (9, 50000, 3), (13, 1000, 600), (8, 33, 300)]:
        w = np.asfortranarray(rng.standard_normal((nout, feat)).astype(dtype))
        x = np.asfortranarray(rng.standard_normal((feat, batch)).astype(dtype))
        g = np.asfortranarray(rng.standard_normal((nout, batch)).astype(dtype))
        w[nout - 1, feat // 3] = np.inf                 # a row of dX: Inf or NaN
        x[feat - 1, batch - 1] = np.nan                 # dW's last column: NaN
        for a, b in ((w.T, g), (g, x.T)):
            outs = []
            for t in (1, 2, 3):
                with ml.threads(t):
                    outs.append(_ops.matmul(a, b))
            for o in outs[1:]:
                np.testing.assert_array_equal(o, outs[0])
            c = outs[0]
            assert c.shape == (a.shape[0], b.shape[1]) and c.dtype == dtype
            assert c.flags.f_contiguous
            with np.errstate(invalid="ignore"):
                ref = a.astype(np.float64) @ b.astype(np.float64)
                scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
            assert np.array_equal(np.isnan(c), np.isnan(ref)), (nout, feat, batch)
            fin = np.isfinite(ref)
            assert np.array_equal(np.isfinite(c), fin) and np.array_equal(
                c[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])
            eps = np.finfo(dtype).eps
            assert np.all(np.abs(c - ref)[fin] <= 300 * eps * scale[fin]), (nout, feat,
                                                                            batch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_products_never_read_past_their_operands(dtype):
    """fanin_ reads the input's features in whole vectors, a block past the last feature
    from a padded copy; fanout_ turns the weights' blocks around from whole vectors of
    each feature's OutputSize weights, up to a vector past the last, and the blocks whose
    vectors would pass the weights' end go element by element: each operand ending at an
    inaccessible page (the weights' features in whole blocks up to the last one,
    OutputSize below, at and above one vector)."""
    lanes = _ops._conv.isa()[2] // np.dtype(dtype).itemsize
    cases = ([("input", (feat, 5), 6) for feat in (37, 64, 1001)]
             + [("weights", (nout, 3008), nout)
                for nout in sorted({4, 5, min(lanes + 1, 16), 16})])
    for which, shape, nout in cases:
        a = _guarded(shape, dtype)
        if a is None:
            pytest.skip("no mprotect here")
        rng = np.random.default_rng(shape[0])
        a[...] = rng.standard_normal(shape)
        g = np.asfortranarray(rng.standard_normal((nout, 5)).astype(dtype))
        left, right = (g, a.T) if which == "input" else (a.T, g)
        c = _ops.matmul(left, right)    # (a fault here would end the test process)
        np.testing.assert_allclose(c, left.astype(np.float64) @ right, rtol=1e-5 if dtype ==
                                   np.float32 else 1e-12, atol=1e-5 if dtype ==
                                   np.float32 else 1e-12)
