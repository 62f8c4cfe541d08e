"""mlayers._ops.matmul (fullyconnect's and mtimes' products: BLAS on the kernels' own
threads) against float64 products, every memory order, empty and degenerate shapes, and
the same bits for any thread count."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops


def _operand(rng, shape, dtype, order):
    if order == "T":        # a transposed view: Fortran-contiguous without a copy
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    return np.asarray(rng.standard_normal(shape).astype(dtype), order=order)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("orders", [("C", "C"), ("F", "F"), ("C", "F"), ("T", "C")])
@pytest.mark.parametrize("mnk", [(10, 128, 1568), (1568, 128, 10), (10, 1568, 128),
                                 (1, 1, 300), (300, 1, 7), (1, 257, 3), (65, 33, 17),
                                 (3, 5, 70000), (10, 32, 9000)])   # the reduction cut
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
