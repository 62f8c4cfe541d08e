"""The reference oracle (mlayers.reference) against hand-computed MATLAB facts.

Pins MATLAB_SEMANTICS §3.6-§3.8 and the §8 pitfalls (items 1-5, 8, 9) with explicit pads
and crops, checks the oracle against plain loops written from the §3.1/§3.2 formulas,
and checks the adjoint relations and the gradients.
"""
import itertools

import numpy as np
import pytest

from mlayers import reference as R


def col(*v):
    """A 1-D single-channel single-observation MATLAB array ``numel x 1 x 1``."""
    return np.array(v, dtype=float).reshape(-1, 1, 1)


# --------------------------------------------------------------------------- plain loops

def loop_conv(x, w, stride, dilation, pb, pa, groups):
    """§3.1 literally: y(j,f) = sum_k sum_c W(k,c,f) xp((j-1)S + (k-1)D + 1, c), 1-based."""
    d = x.ndim - 2
    cg, ftot = w.shape[d], w.shape[d + 1]
    fg = ftot // groups
    out = [(x.shape[i] + pb[i] + pa[i] - ((w.shape[i] - 1) * dilation[i] + 1)) // stride[i] + 1
           for i in range(d)]
    y = np.zeros(out + [ftot, x.shape[-1]])
    for n in range(x.shape[-1]):
        for f in range(1, ftot + 1):
            g = (f - 1) // fg  # 0-based group
            for j in itertools.product(*(range(1, o + 1) for o in out)):
                acc = 0.0
                for k in itertools.product(*(range(1, F + 1) for F in w.shape[:d])):
                    # index into the padded input, then back to x (1-based)
                    p = [(j[i] - 1) * stride[i] + (k[i] - 1) * dilation[i] + 1 - pb[i]
                         for i in range(d)]
                    if any(q < 1 or q > x.shape[i] for i, q in enumerate(p)):
                        continue
                    for c in range(1, cg + 1):
                        acc += (w[tuple(kk - 1 for kk in k) + (c - 1, f - 1)]
                                * x[tuple(q - 1 for q in p) + (g * cg + c - 1, n)])
                y[tuple(jj - 1 for jj in j) + (f - 1, n)] = acc
    return y


def loop_conv_transpose(x, w, stride, dilation, cb, ca, groups, offset):
    """§3.2 literally: scatter into yfull, crop, append the offset positions (1-based)."""
    d = x.ndim - 2
    fg, ctot = w.shape[d], w.shape[d + 1]
    cg = ctot // groups
    full = [stride[i] * (x.shape[i] - 1) + (w.shape[i] - 1) * dilation[i] + 1 for i in range(d)]
    yfull = np.zeros(full + [fg * groups, x.shape[-1]])
    for n in range(x.shape[-1]):
        for c in range(1, ctot + 1):
            g = (c - 1) // cg
            for i in itertools.product(*(range(1, s + 1) for s in x.shape[:d])):
                for k in itertools.product(*(range(1, F + 1) for F in w.shape[:d])):
                    q = tuple((i[a] - 1) * stride[a] + (k[a] - 1) * dilation[a] for a in range(d))
                    for f in range(1, fg + 1):
                        yfull[q + (g * fg + f - 1, n)] += (
                            w[tuple(kk - 1 for kk in k) + (f - 1, c - 1)]
                            * x[tuple(ii - 1 for ii in i) + (c - 1, n)])
    crop = tuple(slice(cb[i], full[i] - ca[i]) for i in range(d))
    y = yfull[crop]
    for i in range(d):
        shape = list(y.shape)
        shape[i] = offset[i]
        y = np.concatenate([y, np.zeros(shape)], axis=i)
    return y


def random_geometry(rng, d, transposed):
    """A small random grouped geometry (kept tiny: the loops above are slow)."""
    groups = int(rng.integers(1, 4))
    cg, fg = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    k = [int(rng.integers(1, 4)) for _ in range(d)]
    s = [int(rng.integers(1, 4)) for _ in range(d)]
    dl = [int(rng.integers(1, 3)) for _ in range(d)]
    n = int(rng.integers(1, 3))
    size = [int(rng.integers(1, 6 if d < 3 else 4)) for _ in range(d)]
    feff = [(kk - 1) * dd + 1 for kk, dd in zip(k, dl)]
    if transposed:
        full = [ss * (m - 1) + fe for ss, m, fe in zip(s, size, feff)]
        b = [int(rng.integers(0, f)) for f in full]
        a = [int(rng.integers(0, f - bb)) for f, bb in zip(full, b)]
        off = [int(rng.integers(0, ss)) for ss in s]
        x = rng.standard_normal(size + [cg * groups, n])
        w = rng.standard_normal(k + [fg, cg * groups])
        return x, w, s, dl, b, a, groups, off
    b = [int(rng.integers(0, 3)) for _ in range(d)]
    a = [max(int(rng.integers(0, 3)), fe - m - bb) for fe, m, bb in zip(feff, size, b)]
    x = rng.standard_normal(size + [cg * groups, n])
    w = rng.standard_normal(k + [cg, fg * groups])
    return x, w, s, dl, b, a, groups, None


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_conv_matches_definition(d, seed):
    rng = np.random.default_rng(100 * d + seed)
    x, w, s, dl, b, a, groups, _ = random_geometry(rng, d, transposed=False)
    got = R.conv(x, w, None, s, dl, np.array([b, a]), groups)
    np.testing.assert_allclose(got, loop_conv(x, w, s, dl, b, a, groups), rtol=1e-13,
                               atol=1e-13)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_conv_transpose_matches_definition(d, seed):
    rng = np.random.default_rng(200 * d + seed)
    x, w, s, dl, b, a, groups, off = random_geometry(rng, d, transposed=True)
    got = R.conv_transpose(x, w, None, s, dl, np.array([b, a]), groups, off)
    np.testing.assert_allclose(got, loop_conv_transpose(x, w, s, dl, b, a, groups, off),
                               rtol=1e-13, atol=1e-13)


def test_vectorisation_is_column_major():
    # one observation 2x3 with one channel; a 1x1 weight 1 gives the identity on X(:)
    A = R.conv_matrix((2, 3), np.ones((1, 1, 1, 1)))
    x = np.arange(6.0).reshape(2, 3, order="F")
    np.testing.assert_array_equal(A @ x.ravel(order="F"), x.ravel(order="F"))
    # a 2x1 filter [1; 10] sums down columns: y(1, j) = x(1, j) + 10 x(2, j)
    A = R.conv_matrix((2, 3), np.array([1.0, 10.0]).reshape(2, 1, 1, 1))
    assert A.shape == (3, 6)
    np.testing.assert_array_equal(A @ x.ravel(order="F"), x[0] + 10 * x[1])


# --------------------------------------------------------------------------- §8 pitfalls

def test_pitfall1_same_with_stride_pads_the_end():
    x, w = col(1, 2, 3, 4, 5, 6), np.ones((3, 1, 1))
    y = R.conv(x, w, stride=2, padding=[[0], [1]])
    np.testing.assert_array_equal(y.ravel(), [6, 12, 11])
    # symmetric padding 1 (PyTorch, or the extra at the start) differs
    np.testing.assert_array_equal(R.conv(x, w, stride=2, padding=1).ravel(), [3, 9, 15])


def test_pitfall2_transposed_same_odd_crop():
    x, w = col(1, 2, 3), np.ones((3, 1, 1))
    np.testing.assert_array_equal(R.conv_transpose(x, w, stride=2).ravel(),
                                  [1, 1, 3, 2, 5, 3, 3])
    np.testing.assert_array_equal(R.conv_transpose(x, w, stride=2, cropping=[[0], [1]]).ravel(),
                                  [1, 1, 3, 2, 5, 3])
    np.testing.assert_array_equal(R.conv_transpose(x, w, stride=2, cropping=[[1], [0]]).ravel(),
                                  [1, 3, 2, 5, 3, 3])


def test_pitfall3_transposed_same_filter_shorter_than_stride():
    y = R.conv_transpose(col(1, 2), col(1, 2), 0.5, stride=3, offset=1)
    np.testing.assert_array_equal(y.ravel(), [1.5, 2.5, 0.5, 2.5, 4.5, 0.5])


def test_pitfall4_pytorch_output_padding_is_a_crop():
    x, w = col(1, 2, 3), col(1, 2, 3)
    np.testing.assert_array_equal(R.conv_transpose(x, w, stride=2).ravel(),
                                  [1, 2, 5, 4, 9, 6, 9])
    # PyTorch padding=1, output_padding=1 returns full[1 : L-1+1] = MATLAB Cropping [1 0]
    np.testing.assert_array_equal(R.conv_transpose(x, w, stride=2, cropping=[[1], [0]]).ravel(),
                                  [2, 5, 4, 9, 6, 9])


def test_pitfall4_pytorch_2d_strides_3_2():
    # ConvTranspose2d(strides [3, 2], padding 1, output_padding 1) == Cropping [1 0 1 0]
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 4, 2, 1)), rng.standard_normal((3, 3, 2, 2))
    full = R.conv_transpose(x, w, stride=[3, 2])
    p, o = 1, 1
    torch_like = full[p:full.shape[0] - p + o, p:full.shape[1] - p + o]
    np.testing.assert_array_equal(
        R.conv_transpose(x, w, stride=[3, 2], cropping=[[1, 1], [0, 0]]), torch_like)


def test_pitfall5_no_kernel_flip():
    w = col(1, 2, 3)
    np.testing.assert_array_equal(R.conv(col(0, 0, 1, 0, 0), w, padding=1).ravel(),
                                  [0, 3, 2, 1, 0])
    np.testing.assert_array_equal(R.conv_transpose(col(0, 1, 0), w).ravel(), [0, 1, 2, 3, 0])


def test_pitfall8_grouped_channel_order():
    x = np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1)
    wm = np.zeros((1, 1, 2, 2, 2))  # MATLAB F x F x Cg x Fg x G
    wm[0, 0, :, 0, 0] = [1, 0]
    wm[0, 0, :, 1, 0] = [0, 1]
    wm[0, 0, :, 0, 1] = [1, 1]
    wm[0, 0, :, 1, 1] = [1, -1]
    w = wm.reshape(1, 1, 2, 4, order="F")
    np.testing.assert_array_equal(R.conv(x, w, groups=2).ravel(), [1, 2, 7, -1])


def test_pitfall9_causal_padding():
    x, w = col(1, 2, 3, 4, 5), col(1, 2, 3)
    np.testing.assert_array_equal(R.pad_array(x, [2], [0]).ravel(), [0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(R.conv(x, w, padding=[[2], [0]]).ravel(), [3, 8, 14, 20, 26])
    np.testing.assert_array_equal(R.conv(x, w, dilation=2, padding=[[4], [0]]).ravel(),
                                  [3, 6, 11, 16, 22])


def test_pitfall9_exclude_edge_is_reflect_not_symmetric():
    x = col(1, 2, 3, 4, 5)
    inc = R.pad_array(x, [2], [2], "symmetric-include-edge").ravel()
    exc = R.pad_array(x, [2], [2], "symmetric-exclude-edge").ravel()
    np.testing.assert_array_equal(exc, np.pad(np.arange(1.0, 6), 2, mode="reflect"))
    np.testing.assert_array_equal(inc, np.pad(np.arange(1.0, 6), 2, mode="symmetric"))
    assert not np.array_equal(inc, exc)


# --------------------------------------------------------------------------- §3.6 tables

def same_conv_pads(n, f, s, d):
    """§3.4, written out here for the table (the oracle takes explicit pads)."""
    feff = (f - 1) * d + 1
    out = -(-n // s)
    total = max((out - 1) * s + feff - n, 0)
    return total // 2, total - total // 2


def same_transposed_crop(f, s):
    """§3.5: (crop_before, crop_after, offset)."""
    total = f - s
    if total >= 0:
        return total // 2, total - total // 2, 0
    return 0, 0, s - f


CONV_SAME = [  # in, F, S, D, total, before, after, out  (§3.6 rows 1-10)
    (5, 3, 1, 1, 2, 1, 1, 5), (5, 4, 1, 1, 3, 1, 2, 5), (6, 2, 1, 1, 1, 0, 1, 6),
    (6, 3, 2, 1, 1, 0, 1, 3), (5, 3, 2, 1, 2, 1, 1, 3), (10, 3, 4, 1, 1, 0, 1, 3),
    (8, 2, 4, 1, 0, 0, 0, 2), (5, 3, 1, 2, 4, 2, 2, 5), (6, 2, 1, 3, 3, 1, 2, 6),
    (227, 11, 4, 1, 8, 4, 4, 57),
]
TCONV_SAME = [  # in, F, S, before, after, offset, out  (§3.6 rows 11-15)
    (3, 3, 2, 0, 1, 0, 6), (3, 4, 2, 1, 1, 0, 6), (3, 5, 2, 1, 2, 0, 6),
    (4, 11, 4, 3, 4, 0, 16), (3, 2, 4, 0, 0, 2, 12),
]


@pytest.mark.parametrize("n,f,s,dl,total,before,after,out", CONV_SAME)
def test_table_conv_same(n, f, s, dl, total, before, after, out):
    assert same_conv_pads(n, f, s, dl) == (before, after)
    assert before + after == total
    assert R.conv_output_size((n,), (f,), s, dl, before, after) == (out,)
    rng = np.random.default_rng(n * 100 + f)
    x, w = rng.standard_normal((n, 1, 1)), rng.standard_normal((f, 1, 1))
    y = R.conv(x, w, stride=s, dilation=dl, padding=[[before], [after]])
    assert y.shape == (out, 1, 1)
    if n < 50:
        np.testing.assert_allclose(y, loop_conv(x, w, [s], [dl], [before], [after], 1),
                                   rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("n,f,s,before,after,offset,out", TCONV_SAME)
def test_table_transposed_same(n, f, s, before, after, offset, out):
    assert same_transposed_crop(f, s) == (before, after, offset)
    assert out == s * n
    assert R.conv_transpose_output_size((n,), (f,), s, 1, before, after, offset) == (out,)
    rng = np.random.default_rng(n * 100 + f)
    x, w = rng.standard_normal((n, 1, 1)), rng.standard_normal((f, 1, 1))
    y = R.conv_transpose(x, w, stride=s, cropping=[[before], [after]], offset=offset)
    assert y.shape == (out, 1, 1)
    np.testing.assert_allclose(
        y, loop_conv_transpose(x, w, [s], [1], [before], [after], 1, [offset]), rtol=1e-13)


def test_table_transposed_manual_crop_row16():
    # §3.6 row 16: manual [1 0], in 3, F 3, S 2 -> 6 (= PyTorch p = 1, o = 1)
    assert R.conv_transpose_output_size((3,), (3,), 2, 1, 1, 0) == (6,)


PADDED_ROWS = [  # §3.7, x = [1 2 3 4 5], padding [2 2]
    (0, [0, 0, 1, 2, 3, 4, 5, 0, 0]),
    (7, [7, 7, 1, 2, 3, 4, 5, 7, 7]),
    ("symmetric-include-edge", [2, 1, 1, 2, 3, 4, 5, 5, 4]),
    ("symmetric-exclude-edge", [3, 2, 1, 2, 3, 4, 5, 4, 3]),
    ("replicate", [1, 1, 1, 2, 3, 4, 5, 5, 5]),
]


@pytest.mark.parametrize("value,row", PADDED_ROWS, ids=[str(v) for v, _ in PADDED_ROWS])
def test_table_padding_values(value, row):
    x = col(1, 2, 3, 4, 5)
    np.testing.assert_array_equal(R.pad_array(x, [2], [2], value).ravel(), row)
    # a 1-tap identity filter returns the padded row itself
    y = R.conv(x, np.ones((1, 1, 1)), padding=2, padding_value=value)
    np.testing.assert_array_equal(y.ravel(), row)


def test_padding_values_per_dimension_2d():
    x = np.arange(12.0).reshape(3, 4, 1, 1, order="F")
    got = R.pad_array(x, [2, 1], [1, 3], "symmetric-exclude-edge")
    np.testing.assert_array_equal(
        got[:, :, 0, 0], np.pad(x[:, :, 0, 0], [(2, 1), (1, 3)], mode="reflect"))
    got = R.pad_array(x, [3, 0], [1, 4], "symmetric-include-edge")
    np.testing.assert_array_equal(
        got[:, :, 0, 0], np.pad(x[:, :, 0, 0], [(3, 1), (0, 4)], mode="symmetric"))
    got = R.pad_array(x, [5, 1], [0, 6], "replicate")
    np.testing.assert_array_equal(
        got[:, :, 0, 0], np.pad(x[:, :, 0, 0], [(5, 0), (1, 6)], mode="edge"))


@pytest.mark.parametrize("mode,limit", [("symmetric-include-edge", 5),
                                        ("symmetric-exclude-edge", 4)])
def test_mirror_padding_longer_than_input_raises(mode, limit):
    x = col(1, 2, 3, 4, 5)
    R.pad_array(x, [limit], [limit], mode)
    with pytest.raises(ValueError):
        R.pad_array(x, [limit + 1], [0], mode)
    with pytest.raises(ValueError):
        R.conv(x, col(1, 1), padding=[[0], [limit + 1]], padding_value=mode)


def test_zero_padding_value_paths_agree():
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((6, 5, 3, 2)), rng.standard_normal((3, 2, 3, 4))
    pads = np.array([[2, 0], [1, 3]])
    a = R.conv(x, w, padding=pads)                        # no entries for padding
    b = R.conv(x, w, padding=pads, padding_value=0.0 + 1e-300 * 0)
    c = R.conv(R.pad_array(x, pads[0], pads[1]), w)          # explicit zeros
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- adjoint

# The relation needs, per dimension, offset == 0 or crop_after == 0: otherwise the
# convolution from the output space would read the offset positions, which the cropping
# emptied and which receive nothing in the transposed convolution.
ADJOINT_CASES = [  # d, in, F, S, D, crop_before, crop_after, offset, Cg, Fg, G
    (1, [5], [3], [2], [1], [0], [1], [0], 2, 3, 1),
    (1, [4], [2], [3], [2], [1], [0], [2], 1, 2, 3),
    (2, [3, 4], [3, 2], [2, 1], [1, 2], [1, 0], [0, 1], [1, 0], 2, 2, 2),
    (2, [2, 3], [1, 1], [3, 2], [1, 1], [0, 0], [0, 0], [2, 1], 1, 1, 4),
    (3, [2, 3, 2], [2, 3, 1], [1, 2, 2], [2, 1, 1], [1, 2, 0], [0, 1, 0], [0, 0, 1], 2, 1, 2),
]


@pytest.mark.parametrize("case", ADJOINT_CASES)
def test_transposed_matrix_is_the_adjoint_of_conv(case):
    _, n, f, s, dl, cb, ca, off, cg, fg, g = case
    rng = np.random.default_rng(sum(n) + sum(f))
    w = rng.standard_normal(f + [fg, cg * g])  # tconv layout = conv layout from the output
    T = R.conv_transpose_matrix(n, w, s, dl, cb, ca, g, off)
    out = R.conv_transpose_output_size(n, f, s, dl, cb, ca, off)
    # conv from the tconv output: pad before by the crop; pad after so the conv output is n
    pa = [max(a - o, 0) for a, o in zip(ca, off)]
    assert R.conv_output_size(out, f, s, dl, cb, pa) == tuple(n)
    C = R.conv_matrix(out, w, s, dl, cb, pa, g)
    assert T.shape == C.T.shape
    assert (T != C.T).nnz == 0


@pytest.mark.parametrize("case", ADJOINT_CASES)
def test_adjoint_identity_batched(case):
    d, n, f, s, dl, cb, ca, off, cg, fg, g = case
    rng = np.random.default_rng(3 + sum(n))
    w = rng.standard_normal(f + [fg, cg * g])
    x = rng.standard_normal(list(n) + [cg * g, 2])
    y = R.conv_transpose(x, w, None, s, dl, np.array([cb, ca]), g, off)
    z = rng.standard_normal(y.shape)
    out = y.shape[:d]
    pa = [max(a - o, 0) for a, o in zip(ca, off)]
    cz = R.conv(z, w, None, s, dl, np.array([cb, pa]), g)
    # <T x, z> = <x, C z>
    np.testing.assert_allclose(np.vdot(y, z), np.vdot(x, cz), rtol=1e-12)
    C = R.conv_matrix(out, w, s, dl, cb, pa, g)
    u, v = rng.standard_normal(C.shape[1]), rng.standard_normal(C.shape[0])
    np.testing.assert_allclose(np.vdot(C @ u, v), np.vdot(u, C.T @ v), rtol=1e-12)


# --------------------------------------------------------------------------- gradients

def unit_weight_grads(x, w, dy, op):
    """dW[e] = <op(x, unit_e), dy> exactly, one weight entry at a time (op is linear in w)."""
    dw = np.zeros(w.size)
    for e in range(w.size):
        u = np.zeros(w.size)
        u[e] = 1.0
        dw[e] = np.vdot(op(x, u.reshape(w.shape, order="F")), dy)
    return dw.reshape(w.shape, order="F")


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_conv_grads(d, seed):
    rng = np.random.default_rng(300 * d + seed)
    x, w, s, dl, b, a, groups, _ = random_geometry(rng, d, transposed=False)
    pads = np.array([b, a])
    y = R.conv(x, w, None, s, dl, pads, groups)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.conv_grads(x, w, dy, s, dl, pads, groups)
    A = R.conv_matrix(x.shape[:d], w, s, dl, b, a, groups)
    n = x.shape[-1]
    np.testing.assert_allclose(
        dx, (A.T @ dy.reshape(-1, n, order="F")).reshape(x.shape, order="F"), rtol=1e-13)
    expect = unit_weight_grads(x, w, dy, lambda xx, ww: R.conv(xx, ww, None, s, dl, pads, groups))
    np.testing.assert_allclose(dw, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=tuple(range(d)) + (d + 1,)), rtol=1e-13)
    # bias gradient is the derivative of <conv(x) + b, dy> in b
    assert db.shape == (w.shape[-1],)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_conv_transpose_grads(d, seed):
    rng = np.random.default_rng(400 * d + seed)
    x, w, s, dl, b, a, groups, off = random_geometry(rng, d, transposed=True)
    crop = np.array([b, a])
    y = R.conv_transpose(x, w, None, s, dl, crop, groups, off)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = R.conv_transpose_grads(x, w, dy, s, dl, crop, groups, off)
    # dX through the adjoint relation: the conv from the output space
    def op(xx, ww):
        return R.conv_transpose(xx, ww, None, s, dl, crop, groups, off)

    n = x.shape[-1]
    A = R.conv_transpose_matrix(x.shape[:d], w, s, dl, b, a, groups, off)
    np.testing.assert_allclose(
        dx, (A.T @ dy.reshape(-1, n, order="F")).reshape(x.shape, order="F"), rtol=1e-13)
    np.testing.assert_allclose(dw, unit_weight_grads(x, w, dy, op), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=tuple(range(d)) + (d + 1,)), rtol=1e-13)


@pytest.mark.parametrize("value", [3.5, "symmetric-include-edge", "symmetric-exclude-edge",
                                   "replicate"])
def test_conv_grads_with_padding_values(value):
    # conv is affine in x, so each dX entry is exactly <conv(x + e_i) - conv(x), dy>
    rng = np.random.default_rng(11)
    x, w = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((3, 2, 2, 3))
    pads = np.array([[2, 1], [1, 2]])
    y = R.conv(x, w, None, [2, 1], 1, pads, 1, value)
    dy = rng.standard_normal(y.shape)
    dx, dw, _ = R.conv_grads(x, w, dy, [2, 1], 1, pads, 1, value)
    expect = np.zeros(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1.0
        xe = x + e.reshape(x.shape, order="F")
        expect[i] = np.vdot(R.conv(xe, w, None, [2, 1], 1, pads, 1, value) - y, dy)
    np.testing.assert_allclose(dx, expect.reshape(x.shape, order="F"), rtol=1e-10, atol=1e-10)
    xp = R.pad_array(x, pads[0], pads[1], value)
    np.testing.assert_allclose(
        dw, unit_weight_grads(xp, w, dy, lambda xx, ww: R.conv(xx, ww, None, [2, 1])),
        rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- conventions

def test_missing_trailing_singletons_and_scalar_bias():
    # a (3,) weight is MATLAB 3x1x1 (trailing singletons dropped)
    x = col(1, 2, 3, 4)
    np.testing.assert_array_equal(R.conv(x, np.array([1.0, 1, 1]), 1.0).ravel(), [7, 10])


def test_bias_is_per_output_channel_column_major():
    x = np.ones((2, 2, 1, 1))
    w = np.zeros((1, 1, 1, 6))
    b = np.arange(6.0).reshape(1, 1, 3, 2, order="F")  # any shape, MATLAB order
    y = R.conv(x, w, b)
    np.testing.assert_array_equal(y[0, 0, :, 0], np.arange(6.0))


def test_bad_arguments():
    x, w = col(1, 2, 3), col(1, 1)
    with pytest.raises(ValueError):
        R.conv(x, w, padding=-1)
    with pytest.raises(ValueError):
        R.conv(x, w, stride=0)
    with pytest.raises(ValueError):
        R.conv(x, np.ones((5, 1, 1)))                      # empty output
    with pytest.raises(ValueError):
        R.conv(np.ones((3, 2, 1)), np.ones((1, 1, 3)), groups=2)  # 2 groups, 3 filters
    with pytest.raises(ValueError):
        R.conv_transpose(x, w, cropping=[[2], [2]])        # nothing left
    with pytest.raises(ValueError):
        R.pad_array(x, [1], [1], "symmetric")


def test_offset_positions_receive_nothing_even_after_a_crop():
    # yfull = [10 0 20]; Cropping [0 1] removes the 20; the offset position is bias only
    x, w = col(1, 2), col(10)
    y = R.conv_transpose(x, w, 0.5, stride=2, cropping=[[0], [1]], offset=1)
    np.testing.assert_array_equal(y.ravel(), [10.5, 0.5, 0.5])
    y = R.conv_transpose(col(1), w, 0.5, cropping=[[0], [1]], offset=1)
    np.testing.assert_array_equal(y.ravel(), [0.5])
    # a crop beyond the result: MATLAB's manual offset max(0, 1 - (1 - 2)) = 2 leaves
    # S*(in-1) + F - cb - ca + offset = 1 position
    y = R.conv_transpose(col(1), w, 0.5, cropping=[[0], [2]], offset=2)
    np.testing.assert_array_equal(y.ravel(), [0.5])
