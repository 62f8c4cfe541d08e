"""The compiled engine (through mlayers._ops) against the reference oracle.

A seeded list of random geometries (d = 1, 2, 3; ungrouped, grouped, channel-wise with one
and several filters per group; stride, dilation, asymmetric padding/cropping, offsets;
batch 1 and more; float32 and float64) checks the forward and transposed convolutions and
all three gradients of both against :mod:`mlayers.reference`.  Further tests: large
geometries spanning several column tiles, 1x1 convolutions, the adjoint identity on the
engine, bitwise-identical results for 1 and 2 threads, memory order, NaN/Inf propagation
and MATLAB's PaddingValue modes.
"""
import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from mlayers import _ops
from mlayers import reference as R

F32, F64 = np.float32, np.float64
KINDS = ("ungrouped", "grouped", "channelwise", "channelwise-multi")


# --------------------------------------------------------------------------- case generation

def _channels(rng, kind):
    """(Cg, Fg, G) for a kind of grouping."""
    if kind == "ungrouped":
        return int(rng.integers(1, 5)), int(rng.integers(1, 5)), 1
    if kind == "grouped":
        return int(rng.integers(2, 4)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
    if kind == "channelwise":
        return 1, 1, int(rng.integers(1, 5))
    return 1, int(rng.integers(2, 4)), int(rng.integers(1, 4))


def _spatial(rng, d):
    hi_in, hi_k = {1: (13, 5), 2: (9, 4), 3: (6, 3)}[d]
    return ([int(rng.integers(1, hi_in)) for _ in range(d)],
            [int(rng.integers(1, hi_k)) for _ in range(d)])


def _form(rng, v):
    """A per-dimension list as a scalar (when all equal), a list, or a numpy vector."""
    if len(set(v)) == 1 and rng.random() < 0.5:
        return v[0]
    return list(v) if rng.random() < 0.5 else np.array(v)


def _pad_form(rng, before, after):
    """Padding/cropping as a scalar, a symmetric vector or a 2 x d [before; after] array."""
    if before == after:
        return _form(rng, before)
    return np.array([before, after])


def make_case(rng, d, kind, transposed, dtype, n=None):
    cg, fg, g = _channels(rng, kind)
    size, k = _spatial(rng, d)
    s = [int(rng.integers(1, 4)) for _ in range(d)]
    dl = [int(rng.integers(1, 3)) if rng.random() < 0.5 else 1 for _ in range(d)]
    feff = [(kk - 1) * dd + 1 for kk, dd in zip(k, dl)]
    case = dict(d=d, kind=kind, dtype=dtype, groups=g, cg=cg, fg=fg, size=size, k=k,
                n=int(rng.integers(1, 4)) if n is None else n,
                stride=_form(rng, s), dilation=_form(rng, dl), seed=int(rng.integers(2**31)))
    if transposed:
        full = [ss * (m - 1) + fe for ss, m, fe in zip(s, size, feff)]
        b = [int(rng.integers(0, min(f, 4))) for f in full]
        a = [int(rng.integers(0, min(f - bb, 4))) for f, bb in zip(full, b)]
        off = [int(rng.integers(0, ss)) if rng.random() < 0.5 else 0 for ss in s]
        case.update(cropping=_pad_form(rng, b, a), offset=_form(rng, off),
                    before=b, after=a, off=off)
    else:
        b = [int(rng.integers(0, 4)) for _ in range(d)]
        a = [max(int(rng.integers(0, 4)), fe - m - bb) for fe, m, bb in zip(feff, size, b)]
        case.update(padding=_pad_form(rng, b, a), before=b, after=a)
    return case


def case_id(c):
    geo = "x".join(map(str, c["size"])) + "-k" + "x".join(map(str, c["k"]))
    return (f"{c['d']}d-{c['kind']}-{geo}-cg{c['cg']}fg{c['fg']}g{c['groups']}"
            f"-n{c['n']}-{np.dtype(c['dtype']).name}")


def _case_list(transposed, count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        d = (1, 2, 3)[i % 3]
        kind = KINDS[(i // 3) % 4]
        dtype = (F32, F64)[(i // 12) % 2]
        cases.append(make_case(rng, d, kind, transposed, dtype, n=1 if i % 5 == 0 else None))
    return cases


CONV_CASES = _case_list(False, 96, 20261121)
TCONV_CASES = _case_list(True, 72, 20261122)


def conv_arrays(c, transposed=False):
    """X, weights and bias of case ``c``; the weights of a transposed convolution are
    k x Fg x (Cg G) (MATLAB's layout), of a convolution k x Cg x (Fg G)."""
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["size"] + [c["cg"] * c["groups"], c["n"]])
    w_last = [c["fg"], c["cg"] * c["groups"]] if transposed else [c["cg"], c["fg"] * c["groups"]]
    w = rng.standard_normal(c["k"] + w_last)
    b = rng.standard_normal(c["fg"] * c["groups"])
    return (np.asfortranarray(x, dtype=c["dtype"]), np.asfortranarray(w, dtype=c["dtype"]),
            b.astype(c["dtype"]))


def check_conv(c):
    """The convolution and its gradients against the sparse-matrix oracle."""
    _check_against_oracle(c, conv_arrays(c), (c["stride"], c["dilation"], c["padding"],
                                              c["groups"]),
                          (_ops.conv, R.conv, _ops.conv_backward, R.conv_grads),
                          dw_terms=None)


def check_conv_transpose(c):
    """The transposed convolution and its gradients against the sparse-matrix oracle."""
    _check_against_oracle(c, conv_arrays(c, transposed=True),
                          (c["stride"], c["dilation"], c["cropping"], c["groups"], c["offset"]),
                          (_ops.conv_transpose, R.conv_transpose,
                           _ops.conv_transpose_backward, R.conv_transpose_grads),
                          dw_terms=c["n"] * int(np.prod(c["size"])))


def _check_against_oracle(c, arrays, args, functions, dw_terms):
    """forward, reference, backward, reference gradients = ``functions``; ``dw_terms`` is
    the number of terms in a dW sum (None: one per output position and image)."""
    forward, reference, backward, reference_grads = functions
    x, w, b = arrays
    b = None if c["seed"] % 3 == 0 else b   # the no-bias path too
    dtype, d = c["dtype"], c["d"]
    y = forward(x, w, b, *args)
    ref = reference(x, w, b, *args)
    assert y.dtype == dtype and y.shape == ref.shape and y.flags.f_contiguous
    ktot = int(np.prod(c["k"]))
    assert_close(y, ref, dtype, c["cg"] * ktot + 1, "forward")

    dy = np.asfortranarray(np.random.default_rng(c["seed"] + 1).standard_normal(y.shape),
                           dtype=dtype)
    dx, dw, db = backward(x, w, dy, *args)
    rdx, rdw, rdb = reference_grads(x, w, dy, *args)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert dx.shape == x.shape and dw.shape == w.shape
    terms = c["n"] * int(np.prod(y.shape[:d]))
    assert_close(dx, rdx, dtype, c["fg"] * ktot, "dX")
    assert_close(dw, rdw, dtype, terms if dw_terms is None else dw_terms, "dW")
    assert_close(np.ravel(db), rdb, dtype, terms, "dB")


@pytest.mark.parametrize("c", CONV_CASES, ids=case_id)
def test_conv_random(c):
    check_conv(c)


@pytest.mark.parametrize("c", TCONV_CASES, ids=case_id)
def test_conv_transpose_random(c):
    check_conv_transpose(c)


def _channelwise_cases(count, seed):
    """Channel-wise geometries with long first dimensions (the contiguous, vectorised one),
    strides beyond the filter, wide dilations and padding wider than the filter."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        d = (1, 2, 3)[i % 3]
        c = make_case(rng, d, ("channelwise", "channelwise-multi")[i % 2], False,
                      (F32, F64)[(i // 2) % 2])
        c["size"][0] = int(rng.integers(1, {1: 90, 2: 70, 3: 40}[d]))
        s = [int(rng.integers(1, 6)) for _ in range(d)]
        dl = [int(rng.integers(1, 5)) for _ in range(d)]
        feff = [(k - 1) * dd + 1 for k, dd in zip(c["k"], dl)]
        b = [int(rng.integers(0, 6)) for _ in range(d)]
        a = [max(int(rng.integers(0, 6)), fe - m - bb)
             for fe, m, bb in zip(feff, c["size"], b)]
        c.update(stride=s, dilation=dl, padding=np.array([b, a]), before=b, after=a)
        cases.append(c)
    return cases


CHANNELWISE_CASES = _channelwise_cases(36, 99)


@pytest.mark.parametrize("c", CHANNELWISE_CASES, ids=case_id)
def test_channelwise_wide_geometries(c):
    check_conv(c)
    # the same geometry as a transposed convolution: crop what the conv padded
    t = dict(c, cropping=c["padding"], offset=0)
    t["size"] = list(R.conv_output_size(c["size"], c["k"], c["stride"], c["dilation"],
                                        c["before"], c["after"]))
    t["cg"], t["fg"] = c["fg"], c["cg"]
    full = [s * (m - 1) + (k - 1) * dd + 1 for s, m, k, dd in
            zip(c["stride"], t["size"], c["k"], c["dilation"])]
    if all(f > bb + aa for f, bb, aa in zip(full, c["before"], c["after"])):
        check_conv_transpose(t)


# --------------------------------------------------------------------------- larger geometries

def _fixed(d, size, k, cg, fg, g, n, dtype, stride=1, dilation=1, before=None, after=None,
           off=None, kind="fixed"):
    before = before or [0] * d
    after = after or [0] * d
    c = dict(d=d, kind=kind, dtype=dtype, groups=g, cg=cg, fg=fg, size=list(size), k=list(k),
             n=n, stride=stride, dilation=dilation, seed=sum(size) * 7 + cg + fg + g,
             before=before, after=after, off=off or [0] * d)
    c["padding"] = c["cropping"] = np.array([before, after])
    c["offset"] = c["off"]
    return c


# Output > 2000 positions with many channels: several column tiles of the im2col matrix
# (a tile holds several hundred KiB of it), and every dispatch path (gemm, channel-wise,
# 1x1).
LARGE_CONV = [
    _fixed(2, (45, 50), (3, 3), 16, 8, 1, 2, F64, before=[1, 2], after=[0, 1]),
    _fixed(2, (48, 47), (3, 3), 8, 4, 4, 2, F64, stride=[1, 1], before=[1, 1], after=[1, 1]),
    _fixed(1, (6000,), (5,), 8, 8, 1, 1, F64, dilation=2, before=[3], after=[1]),
    _fixed(2, (64, 64), (3, 3), 1, 2, 8, 2, F64, before=[1, 0], after=[1, 2]),  # depthwise
    _fixed(2, (70, 70), (1, 1), 32, 16, 1, 2, F64),                             # pointwise
    _fixed(2, (50, 44), (1, 1), 8, 6, 2, 1, F64),                               # 1x1 grouped
    _fixed(2, (60, 62), (1, 1), 4, 4, 2, 1, F64, stride=2),                     # 1x1 strided
    _fixed(3, (14, 14, 12), (3, 3, 3), 4, 6, 1, 1, F64, before=[1, 1, 1], after=[1, 1, 1]),
    _fixed(1, (4000,), (1,), 64, 8, 1, 1, F64),                                 # 1x1, 1-D
    _fixed(1, (20000,), (3,), 16, 4, 1, 1, F64, before=[1], after=[1]),        # many tiles
]
LARGE_TCONV = [
    _fixed(2, (24, 25), (3, 3), 16, 8, 1, 2, F64, stride=2, before=[1, 0], after=[0, 1]),
    _fixed(2, (30, 30), (4, 4), 2, 4, 4, 1, F64, stride=2, before=[1, 1], after=[1, 1]),
    _fixed(2, (32, 40), (3, 3), 1, 1, 8, 2, F64, stride=2, before=[1, 1], after=[0, 0],
           off=[0, 0]),                                                           # channel-wise
    _fixed(2, (50, 50), (1, 1), 32, 16, 1, 1, F64),                               # pointwise
    _fixed(1, (3000,), (4,), 8, 8, 1, 1, F64, stride=2, before=[1], after=[0]),
    _fixed(3, (8, 8, 8), (2, 2, 2), 4, 4, 1, 1, F64, stride=2),
]


def _with_dtype(cases, dtype):
    return [dict(c, dtype=dtype) for c in cases]


@pytest.mark.parametrize("c", _with_dtype(LARGE_CONV, F64) + _with_dtype(LARGE_CONV, F32),
                         ids=case_id)
def test_conv_large(c):
    check_conv(c)


@pytest.mark.parametrize("c", _with_dtype(LARGE_TCONV, F64) + _with_dtype(LARGE_TCONV, F32),
                         ids=case_id)
def test_conv_transpose_large(c):
    check_conv_transpose(c)


# Reductions longer than one group of GROUP_CHUNKS chunks (the direct kernel's third level
# of sums), with a bias: the bias goes into the first group's sums only (the seventh
# session's kernels added it to every group's, 1-14 % of the largest output off: 3 x 3
# convolutions of more than 85 channels to at most 8 filters, and of more than 256 channels
# by F(2, 3) along rows).  The convolution, its transposed convolution, both with a bias.
MANY_GROUPS = [
    _fixed(2, (7, 9), (3, 3), 150, 6, 1, 2, F64, stride=[1, 1], dilation=[1, 1],
           before=[1, 1], after=[1, 1]),                                  # direct, 1350 terms
    _fixed(2, (8, 8), (3, 3), 300, 17, 1, 2, F64, stride=[1, 1], dilation=[1, 1],
           before=[1, 1], after=[1, 1]),                        # F(2, 3) along rows
]


@pytest.mark.parametrize("c", _with_dtype(MANY_GROUPS, F64) + _with_dtype(MANY_GROUPS, F32),
                         ids=case_id)
def test_bias_once_over_several_groups_of_chunks(c, monkeypatch):
    # a bias, and two groups of 8 chunks or more (a pass has 3 taps under F(2, 3) along
    # rows, 9 in the plain direct kernel)
    taps = 3 if min(c["cg"], c["fg"]) * 3 >= _ops._WINOGRAD_ROWS_MIN_WORK else 9
    assert c["seed"] % 3 and c["cg"] * taps > _ops._conv.CHUNK_TERMS * 8
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_use_winograd2d", lambda *args, **kwargs: False)
    check_conv_both_ways(c)


POINTWISE = [
    _fixed(1, (7,), (1,), 3, 2, 1, 2, F64), _fixed(2, (4, 5), (1, 1), 4, 3, 2, 3, F32),
    _fixed(3, (3, 2, 4), (1, 1, 1), 2, 5, 1, 1, F64), _fixed(2, (5, 5), (1, 1), 1, 3, 3, 2, F64),
    _fixed(2, (5, 6), (1, 1), 2, 2, 2, 2, F32, stride=[2, 3]),
    _fixed(2, (5, 6), (1, 1), 3, 2, 1, 2, F64, before=[1, 0], after=[0, 2]),
]


@pytest.mark.parametrize("c", POINTWISE, ids=case_id)
def test_pointwise(c):
    check_conv(c)
    check_conv_transpose(c)


def test_offset_after_crop():
    # MATLAB_SEMANTICS §3.2: crop yfull first, then append the offset positions, which
    # receive only the bias.  yfull = [10 0 20]; Cropping [0 1] removes the 20.
    x, w = np.array([1.0, 2.0]).reshape(2, 1, 1), np.array([10.0]).reshape(1, 1, 1)
    crop = np.array([[0], [1]])
    y = _ops.conv_transpose(x, w, np.array([0.5]), stride=2, cropping=crop, offset=1)
    np.testing.assert_array_equal(y.ravel(), [10.5, 0.5, 0.5])
    c = _fixed(2, (3, 4), (3, 2), 2, 3, 1, 2, F64, stride=[2, 3], before=[1, 0],
               after=[2, 1], off=[1, 2])
    check_conv_transpose(c)


@pytest.mark.parametrize("n,crop,offset,expect", [
    (1, [0, 1], 1, [0.5]),          # everything cropped: the offset position is bias only
    (1, [0, 2], 2, [0.5]),          # MATLAB manual mode: offset = max(0, 1 - (1 - 2)) = 2
    (1, [1, 1], 2, [0.5]),
    (1, [3, 0], 3, [0.5]),
    (2, [0, 4], 2, [0.5]),          # full = 3 (stride 2), crop 4, offset 2 -> 1 position
    (2, [1, 1], 1, [0.5, 0.5]),
])
def test_offset_with_crop_beyond_the_result(n, crop, offset, expect):
    # §3.2: out = S*(in-1) + Feff - cb - ca + offset, whatever the crop consumed
    x, w = np.arange(1.0, n + 1).reshape(n, 1, 1), np.array([10.0]).reshape(1, 1, 1)
    y = _ops.conv_transpose(x, w, np.array([0.5]), stride=2, cropping=np.array([crop]).T,
                            offset=offset)
    np.testing.assert_array_equal(y.ravel(), expect)


def test_offset_with_crop_beyond_the_result_2d():
    # along dim 1: full 3, crop 1 + 3, offset 2 -> 1 bias-only row; all four results
    check_conv_transpose(_fixed(2, (2, 3), (2, 2), 2, 3, 1, 2, F64, stride=[1, 2],
                                before=[1, 0], after=[3, 1], off=[2, 0]))


# --------------------------------------------------------------------------- engine adjoint

@pytest.mark.parametrize("c", [c for c in CONV_CASES if c["dtype"] is F64][:24], ids=case_id)
def test_engine_adjoint_identity(c):
    """<conv(x), z> = <x, conv_transpose(z)>: the transposed conv is the conv's adjoint."""
    x, w, _ = conv_arrays(c)
    y = _ops.conv(x, w, None, c["stride"], c["dilation"], c["padding"], c["groups"])
    z = np.random.default_rng(c["seed"] + 2).standard_normal(y.shape)
    # the transposed conv from y's space back to x's: crop = pad before; the offset
    # restores the positions the strided conv never reached (no crop at the end then)
    d = c["d"]
    s = np.broadcast_to(c["stride"], (d,))
    dl = np.broadcast_to(c["dilation"], (d,))
    full = [si * (o - 1) + (k - 1) * di + 1 for si, o, k, di in zip(s, y.shape[:d], c["k"], dl)]
    b = c["before"]
    tail = [n + bb - f for n, bb, f in zip(c["size"], b, full)]   # can be < 0: crop instead
    crop = np.array([b, [max(-t, 0) for t in tail]])
    off = [max(t, 0) for t in tail]
    xt = _ops.conv_transpose(z, w, None, c["stride"], c["dilation"], crop, c["groups"], off)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, z), np.vdot(x, xt), rtol=1e-11, atol=1e-11)
    # and the backward pass's dX is exactly that transposed convolution
    dx, _, _ = _ops.conv_backward(x, w, z, c["stride"], c["dilation"], c["padding"],
                                  c["groups"])
    np.testing.assert_allclose(dx, xt, rtol=1e-13, atol=1e-13)


@st.composite
def adjoint_geometries(draw):
    d = draw(st.integers(1, 3))
    g = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.lists(st.integers(1, 3), min_size=d, max_size=d))
    s = draw(st.lists(st.integers(1, 3), min_size=d, max_size=d))
    dl = draw(st.lists(st.integers(1, 2), min_size=d, max_size=d))
    size = draw(st.lists(st.integers(1, {1: 12, 2: 7, 3: 4}[d]), min_size=d, max_size=d))
    b = draw(st.lists(st.integers(0, 2), min_size=d, max_size=d))
    feff = [(kk - 1) * dd + 1 for kk, dd in zip(k, dl)]
    a = [max(draw(st.integers(0, 2)), fe - m - bb) for fe, m, bb in zip(feff, size, b)]
    n = draw(st.integers(1, 2))
    return dict(d=d, groups=g, cg=cg, fg=fg, k=k, stride=s, dilation=dl, size=size,
                before=b, after=a, n=n, seed=draw(st.integers(0, 2**31 - 1)))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(adjoint_geometries())
def test_engine_adjoint_property(c):
    """Hypothesis: for any geometry, the engine's transposed convolution (cropping the
    padding, offset for the positions the stride skipped) is the adjoint of its conv."""
    rng = np.random.default_rng(c["seed"])
    d, pads = c["d"], np.array([c["before"], c["after"]])
    x = rng.standard_normal(c["size"] + [c["cg"] * c["groups"], c["n"]])
    w = rng.standard_normal(c["k"] + [c["cg"], c["fg"] * c["groups"]])
    y = _ops.conv(x, w, None, c["stride"], c["dilation"], pads, c["groups"])
    z = rng.standard_normal(y.shape)
    full = [si * (o - 1) + (k - 1) * di + 1
            for si, o, k, di in zip(c["stride"], y.shape[:d], c["k"], c["dilation"])]
    tail = [m + bb - f for m, bb, f in zip(c["size"], c["before"], full)]
    crop = np.array([c["before"], [max(-t, 0) for t in tail]])
    xt = _ops.conv_transpose(z, w, None, c["stride"], c["dilation"], crop, c["groups"],
                             [max(t, 0) for t in tail])
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, z), np.vdot(x, xt), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(
        y, R.conv(x, w, None, c["stride"], c["dilation"], pads, c["groups"]),
        rtol=1e-12, atol=1e-13 * c["cg"] * np.prod(c["k"]))


# --------------------------------------------------------------------------- threads

# Each case is big enough (> 2**20 multiply-adds) for _ops to hand it to every thread.
THREAD_CASES = [
    _fixed(2, (45, 50), (3, 3), 16, 8, 1, 3, F64, before=[1, 2], after=[0, 1]),
    _fixed(2, (90, 100), (3, 3), 16, 8, 1, 1, F32, stride=2, before=[1, 1], after=[1, 1]),
    _fixed(2, (40, 41), (3, 3), 4, 4, 4, 2, F64, before=[1, 1], after=[1, 1]),      # grouped
    _fixed(2, (60, 61), (3, 3), 4, 4, 4, 1, F32, dilation=2, before=[2, 2], after=[2, 2]),
    _fixed(2, (96, 96), (3, 3), 1, 1, 16, 2, F64, before=[1, 1], after=[1, 1]),     # depthwise
    _fixed(2, (160, 160), (5, 5), 1, 2, 6, 1, F32, stride=2, before=[2, 2], after=[2, 2]),
    _fixed(3, (12, 12, 12), (3, 3, 3), 6, 4, 2, 1, F64, before=[1, 1, 1], after=[1, 1, 1]),
    _fixed(2, (50, 50), (1, 1), 32, 16, 1, 2, F32),                                 # pointwise
    _fixed(1, (3000,), (5,), 32, 24, 1, 3, F64, dilation=2, before=[2], after=[1]),  # Winograd
    _fixed(2, (45, 50), (3, 3), 16, 16, 1, 3, F32, before=[1, 0], after=[2, 1]),  # F(2, 3)
    # one input channel, several filters: one image's filters shared out between threads
    _fixed(2, (200, 200), (3, 3), 1, 8, 1, 1, F32, before=[1, 1], after=[1, 1]),
    # long reductions on small planes: im2col + gemm, several images a product (a shorter
    # last group), and conv_cv past 768 terms (5 x 5 over 40 channels)
    _fixed(2, (4, 4), (3, 3), 256, 256, 1, 5, F32, before=[1, 1], after=[1, 1]),
    _fixed(2, (7, 7), (5, 5), 40, 32, 1, 5, F32, before=[2, 2], after=[2, 2]),
]


# One input channel, several filters (N1's first layer): one plane per (image, group) and
# its slab's rows as one wide row where that costs fewer vector operations; stride 2 along
# the rows and a 3-D slab keep rows apart; 7-wide rows (below one AVX-512 vector).
ONE_CHANNEL_CASES = [
    _fixed(2, (28, 28), (3, 3), 1, 8, 1, 3, F32, before=[1, 1], after=[1, 1]),
    _fixed(2, (7, 9), (3, 3), 1, 5, 1, 2, F64, before=[1, 1], after=[1, 1]),
    _fixed(2, (7, 7), (3, 3), 1, 3, 2, 2, F32, dilation=2, before=[2, 2], after=[2, 2]),
    _fixed(2, (30, 31), (5, 3), 1, 4, 1, 2, F32, stride=[1, 2], before=[2, 1], after=[2, 1]),
    _fixed(2, (31, 30), (3, 5), 1, 4, 1, 2, F64, stride=[2, 1], before=[0, 2], after=[1, 2]),
    _fixed(3, (9, 8, 10), (3, 3, 3), 1, 4, 1, 2, F32, before=[1, 1, 1], after=[1, 1, 1]),
]


@pytest.mark.parametrize("c", ONE_CHANNEL_CASES, ids=case_id)
def test_one_channel_geometries(c):
    check_conv(c)


# im2col's wide case (stride 1, output rows as long as the input's: a tap's rows copied as
# one run, then the edge columns zeroed): every split of the padding, dilation, 1-D, rows
# shorter than the filter's reach, and several column tiles (64 channels x 3 x 3: tiles of
# whole rows); and beside them a stride-1 case whose rows are shorter (the general walk).
IM2COL_WIDE_CASES = [
    _fixed(2, (14, 14), (3, 3), 8, 16, 1, 1, F32, before=[1, 1], after=[1, 1]),
    _fixed(2, (7, 7), (3, 3), 16, 32, 1, 2, F64, before=[1, 1], after=[1, 1]),
    _fixed(2, (9, 6), (3, 3), 3, 4, 2, 1, F32, before=[2, 2], after=[0, 0]),
    _fixed(2, (6, 9), (5, 3), 3, 4, 1, 2, F64, dilation=[1, 2], before=[0, 1], after=[4, 3]),
    _fixed(2, (5, 2), (3, 5), 2, 3, 1, 1, F64, dilation=[2, 1], before=[2, 4], after=[2, 0]),
    _fixed(1, (40,), (7,), 4, 5, 1, 2, F32, before=[6], after=[0]),
    _fixed(2, (40, 20), (3, 3), 64, 8, 1, 1, F32, before=[1, 1], after=[1, 1]),
    _fixed(2, (12, 10), (3, 3), 4, 4, 1, 1, F64, before=[0, 1], after=[0, 0]),
    # 3-D, one output plane of the outer dimension: padding before it (all taps read zeros
    # there), and none (the wide case)
    _fixed(3, (8, 8, 1), (3, 3, 1), 3, 4, 1, 1, F64, stride=[1, 1, 3], before=[1, 1, 1],
           after=[1, 1, 1]),
    _fixed(3, (8, 7, 1), (3, 3, 1), 3, 4, 1, 2, F32, before=[1, 1, 0], after=[1, 1, 0]),
    # rows whose padding covers whole vectors and more (shift_rows: lanes read from none
    # to all of a vector, and tails of every length)
    _fixed(1, (40,), (41,), 2, 3, 1, 1, F32, before=[20], after=[20]),
    _fixed(1, (37,), (35,), 2, 3, 1, 2, F64, before=[30], after=[4]),
    _fixed(2, (5, 23), (3, 19), 2, 3, 1, 1, F32, before=[1, 18], after=[1, 0]),
]


@pytest.mark.parametrize("c", IM2COL_WIDE_CASES, ids=case_id)
def test_im2col_gemm_path(c, monkeypatch, isa_level):
    """The im2col + gemm kernel's wide case (stride 1, rows as long as the input's) on
    every instruction set this CPU has: each tap's rows copied with the zeros around them
    in vectors (_simd.h shift_rows, a masked load on AVX-512, lane by lane elsewhere)."""
    monkeypatch.setattr(_ops, "_use_direct", lambda *a, **k: False)
    for level in range(_ops._conv.isa()[1] + 1):
        isa_level(level)
        check_conv(c)


# Small planes through im2col + gemm: several images' columns side by side in one product
# (_conv_forward's and conv_adjoint's image groups: at most half the images, the last
# group shorter), with groups, bias, strides, 1-D and 3-D; and as transposed convolutions
# (their forward is conv_adjoint)
IMAGE_GROUP_CASES = [
    _fixed(2, (4, 4), (3, 3), 24, 16, 1, 7, F32, before=[1, 1], after=[1, 1]),
    _fixed(2, (7, 6), (3, 2), 6, 4, 2, 5, F64, stride=[2, 1], before=[1, 0], after=[1, 1]),
    _fixed(1, (9,), (5,), 8, 8, 1, 3, F64, dilation=2, before=[4], after=[0]),
    _fixed(3, (3, 4, 3), (2, 2, 2), 4, 6, 1, 4, F32, before=[1, 1, 0], after=[0, 1, 1]),
]
IMAGE_GROUP_TCASES = [
    _fixed(2, (4, 3), (3, 3), 8, 12, 1, 5, F64, stride=2, before=[1, 0], after=[0, 1]),
    _fixed(2, (5, 5), (2, 2), 4, 4, 2, 7, F32),
]


@pytest.mark.parametrize("c", IMAGE_GROUP_CASES, ids=case_id)
def test_gemm_images_side_by_side(c, monkeypatch):
    monkeypatch.setattr(_ops, "_use_direct", lambda *a, **k: False)
    check_conv(c)


@pytest.mark.parametrize("c", IMAGE_GROUP_TCASES, ids=case_id)
def test_gemm_images_side_by_side_transposed(c, monkeypatch):
    monkeypatch.setattr(_ops, "_use_direct", lambda *a, **k: False)
    check_conv_transpose(c)


@pytest.mark.skipif(not _ops.openmp_enabled(), reason="built without OpenMP")
@pytest.mark.parametrize("c", THREAD_CASES, ids=case_id)
def test_threads_bitwise_identical(c):
    x, w, b = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    out = R.conv_output_size(c["size"], c["k"], c["stride"], c["dilation"], c["before"],
                             c["after"])
    macs = c["n"] * c["fg"] * c["groups"] * c["cg"] * np.prod(out) * np.prod(c["k"])
    assert macs >= getattr(_ops, "_PARALLEL_MIN_MACS", 0), "too small to run in parallel"
    results = []
    for nt in (1, 2):
        with _ops.threads(nt):
            assert _ops.get_num_threads() == nt
            y = _ops.conv(x, w, b, *args)
            dy = np.asfortranarray(np.random.default_rng(1).standard_normal(y.shape),
                                   dtype=c["dtype"])
            grads = _ops.conv_backward(x, w, dy, *args)
            # the adjoint as a layer: the transposed conv with the same weights, from y
            t = _ops.conv_transpose(dy, w, None, c["stride"], c["dilation"], c["padding"],
                                    c["groups"], 0)
            tg = _ops.conv_transpose_backward(dy, w, t, c["stride"], c["dilation"],
                                              c["padding"], c["groups"], 0)
        results.append((y,) + tuple(grads) + (t,) + tuple(tg))
    names = ["Y", "dX", "dW", "dB", "tconv Y", "tconv dX", "tconv dW", "tconv dB"]
    for name, a, bb in zip(names, *results):
        assert a.tobytes() == bb.tobytes(), f"{name} differs between 1 and 2 threads"


def test_threads_context_restores():
    before = _ops.get_num_threads()
    with _ops.threads(1):
        assert _ops.get_num_threads() == 1
    assert _ops.get_num_threads() == before
    with pytest.raises(RuntimeError), _ops.threads(1):
        raise RuntimeError
    assert _ops.get_num_threads() == before


# --------------------------------------------------------------------------- memory order

@pytest.mark.parametrize("d", [1, 2, 3])
def test_fortran_input_is_not_copied(d, dtype):
    x = np.asfortranarray(np.ones([5] * d + [3, 2], dtype=dtype))
    e = _ops._to_engine(x, d, dtype)
    assert np.shares_memory(e, x)
    w = np.asfortranarray(np.ones([2] * d + [3, 4], dtype=dtype))
    assert np.shares_memory(_ops._to_engine(w, d, dtype), w)
    y = _ops.conv(x, w, None)
    assert y.flags.f_contiguous and y.dtype == dtype
    y = _ops.conv_transpose(x, np.asfortranarray(np.ones([2] * d + [4, 3], dtype=dtype)))
    assert y.flags.f_contiguous and y.dtype == dtype


@pytest.mark.parametrize("c", [CONV_CASES[i] for i in (3, 5, 14, 22, 31, 40)], ids=case_id)
def test_memory_order_does_not_change_results(c):
    x, w, b = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    y = _ops.conv(x, w, b, *args)
    yc = _ops.conv(np.ascontiguousarray(x), np.ascontiguousarray(w), b, *args)
    assert y.tobytes() == yc.tobytes()
    # a strided (non-contiguous) view of a larger array
    big = np.zeros(tuple(2 * s for s in x.shape), dtype=x.dtype, order="F")
    view = big[tuple(slice(None, None, 2) for _ in x.shape)]
    view[...] = x
    assert _ops.conv(view, w, b, *args).tobytes() == y.tobytes()
    dy = np.random.default_rng(5).standard_normal(y.shape).astype(c["dtype"])
    g = _ops.conv_backward(x, w, np.asfortranarray(dy), *args)
    gc = _ops.conv_backward(np.ascontiguousarray(x), np.ascontiguousarray(w),
                            np.ascontiguousarray(dy), *args)
    for a, bb in zip(g, gc):
        assert a.tobytes() == bb.tobytes()


def test_mixed_precision_computes_in_double():
    x = np.ones((4, 2, 1), dtype=F32)
    w = np.ones((2, 2, 3), dtype=F64)
    assert _ops.conv(x, w).dtype == F64
    assert _ops.conv(x, w.astype(F32)).dtype == F32


# --------------------------------------------------------------------------- NaN and Inf

NAN_CASES = [
    _fixed(2, (7, 6), (3, 2), 3, 2, 1, 2, F64, stride=[2, 1], before=[1, 0], after=[1, 1]),
    _fixed(2, (7, 6), (3, 3), 2, 2, 2, 2, F32, dilation=[1, 2], before=[1, 2], after=[1, 2]),
    _fixed(2, (7, 6), (3, 3), 1, 2, 3, 1, F64, before=[1, 1], after=[0, 1]),        # depthwise
    _fixed(2, (7, 6), (1, 1), 4, 3, 1, 2, F32),                                     # pointwise
    _fixed(1, (11,), (4,), 2, 3, 1, 1, F64, stride=3, before=[2], after=[1]),
    _fixed(3, (4, 5, 3), (2, 3, 2), 2, 2, 1, 1, F64, before=[1, 1, 0], after=[0, 1, 1]),
]


def _random_index(rng, shape):
    return tuple(int(rng.integers(0, s)) for s in shape)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("c", NAN_CASES, ids=case_id)
def test_nan_inf_propagate(c, bad):
    """A non-finite input element makes exactly the outputs that depend on it non-finite."""
    rng = np.random.default_rng(c["seed"])
    x, w, b = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    for trial in range(3):
        xb = x.copy(order="F")
        xb[_random_index(rng, x.shape)] = bad
        y = _ops.conv(xb, w, b, *args)
        ref = R.conv(xb, w, b, *args)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
        assert_close(y, ref, c["dtype"], c["cg"] * int(np.prod(c["k"])) + 1)
    # the transposed convolution (and so dX of the backward pass)
    xt = np.asfortranarray(rng.standard_normal(
        c["size"] + [c["fg"] * c["groups"], c["n"]]), dtype=c["dtype"])
    for trial in range(3):
        xt[_random_index(rng, xt.shape)] = bad
        t = _ops.conv_transpose(xt, w, None, c["stride"], c["dilation"], c["padding"],
                                c["groups"])
        ref = R.conv_transpose(xt, w, None, c["stride"], c["dilation"], c["padding"],
                               c["groups"])
        np.testing.assert_array_equal(np.isnan(t), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(t), np.isinf(ref))
        xt[np.isnan(xt) | np.isinf(xt)] = 0.5


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("c", [
    _fixed(2, (30, 30), (3, 3), 16, 16, 1, 2, F64, before=[1, 1], after=[1, 1]),
    _fixed(2, (31, 30), (3, 3), 8, 8, 1, 2, F32, stride=2, before=[1, 0], after=[1, 1]),
    _fixed(2, (30, 30), (3, 3), 1, 1, 16, 2, F64, before=[1, 1], after=[1, 1]),   # depthwise
], ids=case_id)
def test_nan_inf_in_the_grid_kernels(c, bad, monkeypatch):
    """The direct and channel-wise kernels pad dY with zeros or lay it on a grid with zero
    gaps; a non-finite x or weight must still only reach the gradients that have a real
    term with it (0 * Inf is not one of them), as in the oracle."""
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    rng = np.random.default_rng(c["seed"])
    x, w, _ = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    dy = np.asfortranarray(rng.standard_normal(R.conv(x, w, None, *args).shape),
                           dtype=c["dtype"])
    for trial in range(3):
        xb, wb = x.copy(order="F"), w.copy(order="F")
        xb[_random_index(rng, x.shape)] = bad
        wb[_random_index(rng, w.shape)] = bad
        for xi, wi in ((xb, w), (x, wb)):
            got = _ops.conv_backward(xi, wi, dy, *args)
            ref = R.conv_grads(xi, wi, dy, *args)
            for name, a, r in zip(("dX", "dW"), got, ref):
                np.testing.assert_array_equal(np.isnan(a), np.isnan(r), err_msg=name)
                np.testing.assert_array_equal(np.isinf(a), np.isinf(r), err_msg=name)
        # the transposed convolution of dy with a bad weight: the direct adjoint
        t = _ops.conv_transpose(dy, wb, None, *args)
        ref = R.conv_transpose(dy, wb, None, *args)
        np.testing.assert_array_equal(np.isnan(t), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(t), np.isinf(ref))


@pytest.mark.parametrize("c", NAN_CASES[:3], ids=case_id)
def test_nan_bias_fills_its_channel(c):
    x, w, b = conv_arrays(c)
    b = b.copy()
    b[1] = np.nan
    y = _ops.conv(x, w, b, c["stride"], c["dilation"], c["padding"], c["groups"])
    d = c["d"]
    assert np.isnan(y.take(1, axis=d)).all()
    assert not np.isnan(np.delete(y, 1, axis=d)).any()


# --------------------------------------------------------------------------- PaddingValue

def _padding_cases():
    rng = np.random.default_rng(777)
    out = []
    for mode in (7.0, -2.5, "symmetric-include-edge", "symmetric-exclude-edge", "replicate"):
        for d in (1, 2, 3):
            for kind in ("ungrouped", "grouped", "channelwise"):
                c = make_case(rng, d, kind, False, (F32, F64)[len(out) % 2])
                c["size"] = [max(s, 4) for s in c["size"]]
                # mirror modes can mirror at most n (include edge) or n - 1 elements
                lim = [s - 1 for s in c["size"]]
                b = [min(bb, li) for bb, li in zip(c["before"], lim)]
                a = [min(aa, li) for aa, li in zip(c["after"], lim)]
                feff = [(k - 1) * dd + 1 for k, dd in
                        zip(c["k"], np.broadcast_to(c["dilation"], (d,)))]
                if any(s + bb + aa < fe for s, bb, aa, fe in zip(c["size"], b, a, feff)):
                    c["dilation"] = 1
                c.update(padding=np.array([b, a]), before=b, after=a, mode=mode)
                out.append(c)
    return out


@pytest.mark.parametrize("c", _padding_cases(), ids=lambda c: f"{c['mode']}-" + case_id(c))
def test_padding_value_modes(c):
    x, w, b = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    y = _ops.conv(x, w, b, *args, padding_value=c["mode"])
    ref = R.conv(x, w, b, *args, padding_value=c["mode"])
    assert y.dtype == c["dtype"] and y.shape == ref.shape
    assert_close(y, ref, c["dtype"], c["cg"] * int(np.prod(c["k"])) + 1)


def test_padding_value_table_1d():
    # MATLAB_SEMANTICS §3.7 through the engine: a 1-tap identity filter returns the row
    x = np.arange(1.0, 6.0).reshape(5, 1, 1)
    rows = {0: [0, 0, 1, 2, 3, 4, 5, 0, 0], 7: [7, 7, 1, 2, 3, 4, 5, 7, 7],
            "symmetric-include-edge": [2, 1, 1, 2, 3, 4, 5, 5, 4],
            "symmetric-exclude-edge": [3, 2, 1, 2, 3, 4, 5, 4, 3],
            "replicate": [1, 1, 1, 2, 3, 4, 5, 5, 5]}
    for value, row in rows.items():
        y = _ops.conv(x, np.ones((1, 1, 1)), padding=2, padding_value=value)
        np.testing.assert_array_equal(y.ravel(), row, err_msg=str(value))


# --------------------------------------------------------------------------- §8 through the engine

def col(*v):
    return np.array(v, dtype=float).reshape(-1, 1, 1)


def test_pitfalls_through_the_engine():
    ones3 = np.ones((3, 1, 1))
    np.testing.assert_array_equal(
        _ops.conv(col(1, 2, 3, 4, 5, 6), ones3, stride=2, padding=[[0], [1]]).ravel(),
        [6, 12, 11])
    np.testing.assert_array_equal(
        _ops.conv_transpose(col(1, 2, 3), ones3, stride=2, cropping=[[0], [1]]).ravel(),
        [1, 1, 3, 2, 5, 3])
    np.testing.assert_array_equal(
        _ops.conv_transpose(col(1, 2), col(1, 2), np.array([0.5]), stride=3, offset=1).ravel(),
        [1.5, 2.5, 0.5, 2.5, 4.5, 0.5])
    np.testing.assert_array_equal(
        _ops.conv_transpose(col(1, 2, 3), col(1, 2, 3), stride=2, cropping=[[1], [0]]).ravel(),
        [2, 5, 4, 9, 6, 9])
    np.testing.assert_array_equal(
        _ops.conv(col(0, 0, 1, 0, 0), col(1, 2, 3), padding=1).ravel(), [0, 3, 2, 1, 0])
    np.testing.assert_array_equal(
        _ops.conv_transpose(col(0, 1, 0), col(1, 2, 3)).ravel(), [0, 1, 2, 3, 0])
    wm = np.zeros((1, 1, 2, 2, 2))
    wm[0, 0, :, 0, 0], wm[0, 0, :, 1, 0] = [1, 0], [0, 1]
    wm[0, 0, :, 0, 1], wm[0, 0, :, 1, 1] = [1, 1], [1, -1]
    y = _ops.conv(np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1),
                  wm.reshape(1, 1, 2, 4, order="F"), groups=2)
    np.testing.assert_array_equal(y.ravel(), [1, 2, 7, -1])
    np.testing.assert_array_equal(
        _ops.conv(col(1, 2, 3, 4, 5), col(1, 2, 3), padding=[[2], [0]]).ravel(),
        [3, 8, 14, 20, 26])
    np.testing.assert_array_equal(
        _ops.conv(col(1, 2, 3, 4, 5), col(1, 2, 3), dilation=2, padding=[[4], [0]]).ravel(),
        [3, 6, 11, 16, 22])


# --------------------------------------------------------------------------- direct kernel

def _direct_cases(count, seed, max_stride):
    """Cases with several channels and filters per group: the direct kernel's domain.
    Filter counts straddle its register block; strides, dilation, asymmetric padding,
    output size offsets (for the transposed convolution)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        d = 1 + i % 3
        k = [int(v) for v in rng.integers(1, 5, d)]
        dil = [int(v) for v in rng.integers(1, 3, d)]
        # strides up to the filter's span, so that every stride phase has taps
        stride = [int(rng.integers(1, min(max_stride, (kk - 1) * dd + 1) + 1))
                  for kk, dd in zip(k, dil)]
        size = [(kk - 1) * dd + 1 + int(rng.integers(0, {1: 150, 2: 20, 3: 7}[d]))
                for kk, dd in zip(k, dil)]
        cases.append(_fixed(d, size, k, int(rng.integers(2, 7)), int(rng.integers(3, 15)),
                            int(rng.integers(1, 3)), int(rng.integers(1, 3)),
                            (F32, F64)[i % 2], stride=stride, dilation=dil,
                            before=[int(v) for v in rng.integers(0, 3, d)],
                            after=[int(v) for v in rng.integers(0, 3, d)],
                            off=[int(rng.integers(0, s)) for s in stride], kind="direct"))
    return cases


@pytest.mark.parametrize("c", _direct_cases(24, 20261123, 1) + _direct_cases(24, 20261121, 4),
                         ids=case_id)
def test_conv_random_direct_kernel(c, monkeypatch):
    """Cases through the direct (no im2col) kernel, which _ops otherwise keeps for problems
    above a work threshold: the forward convolution, its dX (the adjoint, one pass per
    stride phase), and the transposed convolution with its dX (a strided forward)."""
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)    # whatever this CPU has
    monkeypatch.setattr(_ops, "_POINTWISE_GEMM", False)   # 1 x 1 filters too
    d = c["d"]
    geom = _ops.conv_geometry("t", c["size"], c["k"], tuple(c["stride"]), tuple(c["dilation"]),
                              *_ops._pads(c["padding"], d, "t", "Padding"))
    assert _ops._use_direct(geom, c["n"], c["cg"], c["fg"], c["groups"])
    assert _ops._use_direct(geom, c["n"], c["cg"], c["fg"], c["groups"], adjoint=True)
    check_conv_both_ways(c)


def check_conv_both_ways(c):
    """check_conv, and check_conv_transpose where the cropping leaves an output."""
    check_conv(c)
    full = [s * (n - 1) + (k - 1) * dl + 1
            for n, k, s, dl in zip(c["size"], c["k"], c["stride"], c["dilation"])]
    if all(f - b - a >= 1 for f, b, a in zip(full, c["before"], c["after"])):
        check_conv_transpose(c)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 6), st.integers(0, 6),
       st.integers(0, 5), st.data())
def test_direct_volume_rows_share_only_zeros(n, s, p_lo, p_hi, span, data):
    """The direct kernel's volume rows overlap (_ops._row_stride): written one after the
    other, each row still reads back as its own padded row wherever a grid position's
    taps read it, in every stride phase; and the overlap saves what the padding allows."""
    nph = min(s, span + 1)
    o = (p_lo + n + p_hi - span - 1) // s + 1      # outputs per row, each stride phase
    if o < 1:
        return
    length = o + span // s
    grid = data.draw(st.integers(1, o), label="grid")
    stride = _ops._row_stride(n, s, p_lo, nph, length, grid)
    assert grid <= stride <= length
    rng = np.random.default_rng(n * 1000 + s * 100 + p_lo * 10 + p_hi)
    rows = 4
    padded = np.zeros((nph, rows, length))
    buf = np.full(nph * rows * stride + length, np.nan)
    for r in range(nph):
        for k in range(rows):
            x = rng.uniform(1, 2, n)            # nonzero, so that any clobbering shows
            m = np.arange(length)
            src = s * m + r - p_lo
            inside = (src >= 0) & (src < n)
            padded[r, k, inside] = x[src[inside]]
            start = (r * rows + k) * stride
            buf[start:start + length] = padded[r, k]
    for r in range(nph):
        for k in range(rows):
            start = (r * rows + k) * stride
            # grid positions g < grid read g + shift, shift <= length - grid
            np.testing.assert_array_equal(buf[start:start + length], padded[r, k])
    every_row = padded.reshape(-1, length)
    if every_row.any(axis=1).all():     # (a phase of padding only keeps the full length)
        shared = min(min(np.argmax(row != 0), np.argmax(row[::-1] != 0)) for row in every_row)
        assert stride == max(grid, length - shared)


@pytest.mark.parametrize("budget", [1, 2 * 6 * 45 * 4 * 8])
def test_direct_kernel_in_image_batches(budget, monkeypatch):
    """With a volume budget below all images' padded inputs the direct kernel works in
    batches of images (one, or a few at a time here); every output lands in its own image.
    On 2 threads four of the five images go one per thread, the fifth in batches."""
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)    # whatever this CPU has
    monkeypatch.setattr(_ops, "_VOLUME_BUDGET", budget)
    monkeypatch.setitem(_ops._state, "threads", 2)
    c = _fixed(2, (9, 40), (3, 3), 6, 5, 1, 5, F64, stride=[1, 2], before=[1, 1],
               after=[1, 0], off=[0, 1])
    geom = _ops.conv_geometry("t", c["size"], c["k"], (1, 2), (1, 1), (1, 1), (1, 0))
    assert _ops._use_direct(geom, c["n"], c["cg"], c["fg"], c["groups"], adjoint=True)
    check_conv(c)
    check_conv_transpose(c)


@pytest.mark.parametrize("k", [(3, 3), (2, 2)])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_weight_gradient_register_blocks_agree(dtype, k, monkeypatch):
    """The direct weight gradient takes blocks of 8 filters x 3 rows for 16 filters and of
    6 x 4 for 12 (_conv.dw_filter_block's cost rule); each sum is the same vector of
    partial sums, reduced the same way, so on every instruction set the 16-filter
    gradient's first 12 filters are bitwise the 12-filter gradient's, and both match the
    reference.  (2 x 2 taps of 5 channels: 20 rows, so each shape ends in a short block.)"""
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    # (these planes are the direct kernel's when conv_cv's lanes hold 16 filters; with
    # fewer lanes its weight gradient would take them, tested in test_conv_cv.py)
    monkeypatch.setattr(_ops, "_CVW_MAX_PLANE", _ops._CV_MAX_PLANE)
    assert _ops._conv.dw_filter_block(16) == 8 and _ops._conv.dw_filter_block(12) == 6
    rng = np.random.default_rng(20261206)
    x = rng.standard_normal((15, 16, 5, 2)).astype(dtype)
    w = rng.standard_normal(k + (5, 16)).astype(dtype)
    out = (16 - k[0] + 2, 17 - k[1] + 2)
    dy = rng.standard_normal(out + (16, 2)).astype(dtype)
    geom = _ops.conv_geometry("t", (15, 16), k, (1, 1), (1, 1), (1, 1), (1, 1))
    _, ref, _ = R.conv_grads(x.astype(F64), w.astype(F64), dy.astype(F64), padding=1)
    before = _ops._conv.isa()[0]
    try:
        for level in range(_ops._conv.isa()[1] + 1):
            _ops._conv.set_isa(level)
            for f in (16, 12):
                assert _ops._use_direct(geom, 2, 5, f, 1) and not _ops._cv_vectors(
                    geom, 2, 5, f, 1, dtype, weight_grad=True)
            _, dw16, _ = _ops.conv_backward(x, w, dy, padding=1, need_dx=False)
            _, dw12, _ = _ops.conv_backward(x, w[..., :12], dy[:, :, :12], padding=1,
                                            need_dx=False)
            np.testing.assert_array_equal(dw16[..., :12], dw12)
            assert_close(dw16, ref, dtype, fan_in=out[0] * out[1] * 2)
    finally:
        _ops._conv.set_isa(before)


@pytest.fixture
def isa_level():
    """Set the SIMD kernels' instruction set level for one test, then restore it."""
    before = _ops._conv.isa()[0]
    yield _ops._conv.set_isa
    _ops._conv.set_isa(before)


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_every_instruction_set(level, isa_level, monkeypatch):
    """The C kernels are built once per instruction set with that set's vector width
    (AVX-512, AVX2+FMA, baseline); each set this CPU has runs direct, strided, transposed
    and channel-wise cases and their gradients against the oracle."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    assert isa_level(level) == level
    if level:   # (the baseline is as wide as the compiler's own target)
        assert _ops._conv.isa()[2] == 16 << level
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    for c in _direct_cases(6, 20261125, 3):
        check_conv_both_ways(c)
    for c in _channelwise_grid_cases(6, 20261126):
        check_conv(c)


def _channelwise_stride2_cases():
    """1-D channel-wise convolutions with stride 2 whose dX rows are about one to five
    AVX-512 vectors long, every padding 0..2 on each side: the channel-wise adjoint
    interleaves the two stride phases in whole vectors, the last one overlapping."""
    cases = []
    for i, length in enumerate((3, 16, 17, 32, 33, 34, 47, 70, 81)):
        before, after = i % 3, (i // 3) % 3
        cases.append(_fixed(1, (length,), (3 + i % 2,), 1, 1 + i % 2, 2, 1, (F32, F64)[i % 2],
                            stride=2, before=[before], after=[after], kind="chw2"))
    return cases


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_channelwise_adjoint_interleaves_stride_phases(level, isa_level):
    """dX and the transposed convolution of channel-wise stride-2 problems, per SIMD
    instruction set, against the oracle."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    for c in _channelwise_stride2_cases():
        check_conv(c)
        check_conv_transpose(c)


def _stride_phase_cases():
    """1-D convolutions with stride 2, 4 and 8 whose rows are about one to five AVX-512
    vectors per stride phase, paddings 0..3 on each side, several channels and filters:
    the transposed convolution's direct kernel interleaves its output phases (vector zips,
    the last group moved back to a phase-0 position), and the forward pass splits its
    input rows into phases (strides 4 and 8: vector unzips)."""
    cases = []
    for i, length in enumerate((5, 17, 40, 64, 67, 130, 211)):
        for s in (2, 4, 8):
            # (stride 8's filters have 9..11 taps: rows two strides longer)
            cases.append(_fixed(1, (length + (2 * s if s == 8 else 0),), (s + 1 + i % 3,),
                                3 + i % 2, 6 + i % 3, 1,
                                1 + i % 2, (F32, F64)[i % 2], stride=s, before=[i % 4],
                                after=[(i + s) % 4], kind="phases"))
    return cases


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_direct_kernel_stride_phases(level, isa_level, monkeypatch):
    """The direct kernel's stride-phase stores and splits, per SIMD instruction set (it
    runs below AVX-512 here only because the test asks), against the oracle."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    isa_level(level)
    for c in _stride_phase_cases():
        check_conv(c)
        check_conv_transpose(c)


def _channelwise_grid_cases(count, seed):
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        d = 1 + i % 3
        k = [int(v) for v in rng.integers(1, 5, d)]
        dil = [int(v) for v in rng.integers(1, 3, d)]
        stride = [int(v) for v in rng.integers(1, 4, d)]
        size = [(kk - 1) * dd + 1 + int(rng.integers(0, {1: 90, 2: 15, 3: 6}[d]))
                for kk, dd in zip(k, dil)]
        cases.append(_fixed(d, size, k, 1, int(rng.integers(1, 4)), int(rng.integers(1, 6)),
                            int(rng.integers(1, 3)), (F32, F64)[i % 2], stride=stride,
                            dilation=dil, before=[int(v) for v in rng.integers(0, 3, d)],
                            after=[int(v) for v in rng.integers(0, 3, d)], kind="chw"))
    return cases


@pytest.mark.parametrize("c", _channelwise_grid_cases(18, 20261124), ids=case_id)
def test_channelwise_weight_gradient_on_the_grid(c, monkeypatch):
    """Channel-wise weight gradients through the phase-volume kernel, which _ops otherwise
    keeps for problems above a work threshold."""
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)    # whatever this CPU has
    check_conv(c)


# --------------------------------------------------------------------------- Winograd

@pytest.mark.parametrize("k", range(3, 8))
def test_winograd_matrices(k):
    """F(9 - k, k): the transforms compute the correlation of 8 inputs with k taps."""
    bt, g, at = _ops._winograd_matrices(k)
    assert bt.shape == (8, 8) and g.shape == (8, k) and at.shape == (9 - k, 8)
    rng = np.random.default_rng(k)
    for _ in range(20):
        d, w = rng.standard_normal(8), rng.standard_normal(k)
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), np.correlate(d, w, "valid"),
                                   rtol=1e-13, atol=1e-14)


def _winograd_cases():
    """Float64 1-D stride-1 convolutions in Winograd's domain: every filter size 3..7
    (F(6, 3) .. F(2, 7)) with dilation 1..3, so tiles of S = dilation * m = 2..18 outputs
    (the 2-, 4- and 8-phase vector stores and the others); asymmetric padding; filter
    counts straddling the register blocks; groups; lengths from under one block of
    tiles to several; 1..3 images (on 2 threads, 3 = two owned and one shared)."""
    cases = []
    for i, (k, dil) in enumerate((k, dil) for k in range(3, 8) for dil in (1, 2, 3)):
        span = (k - 1) * dil
        length = span + 1 + (7, 40, 150, 333, 700)[i % 5]
        cases.append(_fixed(1, (length,), (k,), 16 + i % 5, (16, 17, 22, 24, 30)[i % 5],
                            1 + i % 2, 1 + i % 3, F64, dilation=dil,
                            before=[i % 4], after=[(i + 2) % 5], kind="winograd"))
    return cases


def _spy(monkeypatch, name):
    """The results of every call of _ops.<name> from now on, in a list."""
    calls = []
    run = getattr(_ops, name)

    def spy(*args):
        calls.append(run(*args))
        return calls[-1]
    monkeypatch.setattr(_ops, name, spy)
    return calls


@pytest.fixture
def winograd_calls(monkeypatch):
    """Every conv_winograd call's result (False: not finite, recomputed directly)."""
    calls = _spy(monkeypatch, "_run_winograd")
    # small problems, so that the oracle stays quick: past the thresholds where Winograd
    # is faster, which are performance policy (test_winograd_policy)
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_WINOGRAD_MIN_CHANNELS", 16)
    monkeypatch.setattr(_ops, "_WINOGRAD_MAX_WASTE", np.inf)
    return calls


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_winograd(level, isa_level, winograd_calls, monkeypatch):
    """Winograd's convolutions (forward only; the gradients are the direct kernels')
    against the oracle, per SIMD instruction set, on 2 threads."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    monkeypatch.setitem(_ops._state, "threads", 2)
    isa_level(level)
    for c in _winograd_cases():
        check_conv(c)
    assert winograd_calls == [True] * len(_winograd_cases())


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan, "overflow"])
def test_winograd_non_finite_falls_back(bad, winograd_calls, monkeypatch):
    """A non-finite input, weight or bias, or inputs whose transformed products overflow,
    make conv_winograd give up: the result is the direct kernel's, bit for bit."""
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    c = _fixed(1, (300,), (5,), 16, 16, 1, 2, F64, dilation=2, before=[3], after=[1])
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    rng = np.random.default_rng(7)
    x, w, b = conv_arrays(c)
    for i in range(1 if bad == "overflow" else 3):
        operands = [x.copy(order="F"), w.copy(order="F"), b.copy()]
        if bad == "overflow":
            # outputs up to 1e308, finite; the transformed products overflow
            operands[0] *= 1e308 / np.abs(R.conv(x, w, None, *args)).max()
        else:
            operands[i][_random_index(rng, operands[i].shape)] = bad
        y = _ops.conv(*operands, *args)
        with monkeypatch.context() as m:
            m.setattr(_ops, "_use_winograd", lambda *a: False)
            np.testing.assert_array_equal(y, _ops.conv(*operands, *args))
        if bad == "overflow":
            ref = R.conv(*operands, *args)
            assert np.isfinite(y).all()
            np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-13 * np.abs(ref).max())
    assert winograd_calls == [False] * (1 if bad == "overflow" else 3)


def _winograd_rows_cases():
    """Convolutions in the domain of Winograd F(2, 3) along rows (the first MATLAB
    dimension three taps wide, stride and dilation 1 there), 1-D to 3-D, both dtypes:
    outputs along it from 1 to over two vectors of tiles, odd and even (the last tile's
    second output dropped), exactly two vectors of outputs, asymmetric padding; the
    other dimensions with 1 to 4 taps, strides and dilations; filter counts straddling
    the register blocks; groups; 1..3 images (on 2 threads, 3 = two owned and one
    shared)."""
    cases = []
    rows = (1, 2, 3, 8, 15, 16, 17, 31, 32, 33, 40, 67)
    for i, r in enumerate(rows * 2):
        d = 1 + i % 3
        dtype = (F32, F64)[i // len(rows)]
        before, after = [i % 3] + [1] * (d - 1), [(i + 1) % 4] + [i % 2] * (d - 1)
        size = [r + 2 - before[0] - after[0]] + [(5, 4)[j] + i % 3 for j in range(d - 1)]
        k = [3] + [(2, 3, 4, 1)[(i + j) % 4] for j in range(d - 1)]
        stride = [1] + [1 + (i + j) % 2 for j in range(d - 1)]
        dilation = [1] + [1 + (i + j + 1) % 2 for j in range(d - 1)]
        size[1:] = [max(sz, (kk - 1) * dl + 1) for sz, kk, dl in
                    zip(size[1:], k[1:], dilation[1:])]
        size[0] = max(size[0], 1)
        cases.append(_fixed(d, size, k, (3, 5, 8, 12)[i % 4], (6, 8, 13, 16, 17)[i % 5],
                            1 + i % 2, 1 + i % 3, dtype, stride=[1] + stride[1:],
                            dilation=dilation, before=before, after=after, kind="f23"))
    return cases


@pytest.fixture
def winograd_rows_calls(monkeypatch):
    """Every F(2, 3) call's result (False: not finite, recomputed directly)."""
    calls = _spy(monkeypatch, "_run_winograd_rows")
    # small problems, so that the oracle stays quick: past the threshold where Winograd
    # is faster, which is performance policy (test_winograd_rows_policy); small planes
    # would take conv_cv first (tested in test_conv_cv.py)
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_WINOGRAD_ROWS_MIN_WORK", 1)
    monkeypatch.setattr(_ops, "_CV_MAX_PLANE", 0)
    return calls


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_winograd_rows(level, isa_level, winograd_rows_calls, monkeypatch):
    """F(2, 3) along rows against the oracle, per SIMD instruction set, on 2 threads: the
    forward convolution, its dX where the adjoint is a stride-1 convolution with padding
    (_adjoint_as_forward), and the transposed convolution of the same geometry; every
    case takes it, and every output is finite."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    monkeypatch.setitem(_ops._state, "threads", 2)
    # the kernel on every case, whatever its filters' spread (the fallback for extreme
    # filters is tested in test_accuracy.py)
    monkeypatch.setattr(_ops, "_WINOGRAD_ROWS_MAX_SPREAD", np.inf)
    isa_level(level)
    adjoints = 0
    for c in _winograd_rows_cases():
        calls = len(winograd_rows_calls)
        check_conv_both_ways(c)
        span = [(k - 1) * dl for k, dl in zip(c["k"], c["dilation"])]
        adjoint = (c["stride"][1:] == [1] * (c["d"] - 1) and max(c["before"]) <= min(span)
                   and max(c["after"]) <= min(span))
        adjoints += adjoint
        assert len(winograd_rows_calls) >= calls + 1 + adjoint, case_id(c)
    assert all(winograd_rows_calls) and adjoints >= 4


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_winograd_rows_non_finite_falls_back(bad, dtype, winograd_rows_calls, monkeypatch):
    """A non-finite input, weight or bias makes F(2, 3) give up (its transforms could
    make Inf - Inf = NaN where the direct sums give Inf): the result is the direct
    kernel's, bit for bit."""
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    c = _fixed(2, (37, 9), (3, 3), 8, 8, 1, 2, dtype, before=[1, 1], after=[1, 1])
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    rng = np.random.default_rng(8)
    for i in range(3):
        operands = [a.copy(order="F") for a in conv_arrays(c)]
        operands[i][_random_index(rng, operands[i].shape)] = bad
        y = _ops.conv(*operands, *args)
        with monkeypatch.context() as m:
            m.setattr(_ops, "_use_winograd_rows", lambda *a: False)
            np.testing.assert_array_equal(y, _ops.conv(*operands, *args))
    assert winograd_rows_calls == [False] * 3


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("rows", ["long", "short"])
@pytest.mark.parametrize("second", [False, True])
def test_winograd_rows_overflow_falls_back(dtype, rows, second, winograd_rows_calls,
                                           monkeypatch):
    """Inputs whose transform overflows where the direct sums stay finite: in the first
    outputs of tiles only or the second only, in rows whose outputs are stored as whole
    vectors (long) or as one vector's pieces (short: fewer than a group of outputs).
    F(2, 3) gives up and the result is the direct kernel's, bit for bit, and finite."""
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    size = (300,) if rows == "long" else (9, 5)
    d = len(size)
    c = _fixed(d, size, (3,) * d, 8, 8, 1, 1, dtype, before=[1] * d, after=[1] * d)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    x, w, b = conv_arrays(c)
    # the padded row d[j] = x[j - 1]: d[2j + r] (r = 1 for the second outputs) of 0.6
    # times the largest finite value, signs alternating from tile to tile, so that
    # d[2j + r] - d[2j + r + 2] overflows; zero elsewhere, and in long rows outside a few
    # tiles in the middle of a block; small weights keep the direct sums finite
    j = np.arange(size[0]) + 1 - second
    on = (j % 2 == 0) & ((rows == "short") | ((j >= 100) & (j < 116)))
    sign = np.where(on, np.where(j // 2 % 2, -1.0, 1.0), 0.0)
    x = np.asfortranarray(np.broadcast_to(
        sign.reshape((-1,) + (1,) * (x.ndim - 1)) * (0.6 * np.finfo(dtype).max), x.shape),
        dtype)
    w = w * dtype(1e-3 / w.size)
    y = _ops.conv(x, w, b, *args)
    assert winograd_rows_calls == [False]
    with monkeypatch.context() as m:
        m.setattr(_ops, "_use_winograd_rows", lambda *a: False)
        np.testing.assert_array_equal(y, _ops.conv(x, w, b, *args))
    assert np.isfinite(y).all()


def test_winograd_rows_policy():
    """F(2, 3) along rows where it measured faster: C1, G1, C3 and other 3-wide first
    dimensions with enough channels, filters and other taps; not 1-D with few channels,
    other filter widths, strides or dilations along the first dimension, or switched
    off."""
    def use(size=(56, 56), k=(3, 3), stride=(1, 1), dil=(1, 1), cg=64, fg=64):
        d = len(k)
        geom = _ops.conv_geometry("t", size, k, stride, dil, (1,) * d, (1,) * d)
        return _ops._use_winograd_rows(geom, cg, fg)
    assert use() and use(cg=16, fg=16) and use(cg=64, fg=16)                # C1, G1
    assert use(size=(32, 32, 32), k=(3, 3, 3), stride=(1, 1, 1), dil=(1, 1, 1), cg=16,
               fg=32) and use(size=(32, 32, 32), k=(3, 3, 3), stride=(1, 1, 1),
                              dil=(1, 1, 1), cg=4, fg=4)                        # C3
    assert not use(cg=8, fg=8) and not use(cg=64, fg=8)        # 8 x 3 other taps < 32
    assert use(size=(4096,), k=(3,), stride=(1,), dil=(1,), cg=32, fg=32)
    assert not use(size=(4096,), k=(3,), stride=(1,), dil=(1,), cg=16, fg=64)
    assert use(k=(3, 5)) and use(stride=(1, 2)) and use(dil=(1, 2))
    assert not use(k=(5, 3)) and not use(stride=(2, 1)) and not use(dil=(2, 1))
    assert not use(k=(2, 3)) and not use(k=(4, 3))
    try:
        _ops.set_winograd(False)
        assert not use()
    finally:
        _ops.set_winograd(True)


def test_winograd_policy():
    """Winograd where it measured faster: C2; not with few channels, large dilations, rows
    much shorter than a block of tiles, strides, float32, or 2-D."""
    def use(size=(2048,), k=(5,), stride=(1,), dil=(2,), cg=64, fg=128, dtype=F64):
        geom = _ops.conv_geometry("t", size, k, stride, dil, (0,) * len(k), (0,) * len(k))
        return _ops._use_winograd(geom, np.dtype(dtype), cg, fg)
    assert use()                                    # C2
    assert use(k=(3,), dil=(1,), cg=64, fg=64) and use(k=(7,), dil=(4,))
    assert not use(cg=32) and not use(fg=32)
    assert not use(dil=(8,)) and not use(size=(100,)) and not use(stride=(2,))
    assert use(size=(300,)) and not use(size=(208,))      # 37 and 25 tiles in blocks of 24
    assert not use(k=(2,)) and not use(k=(8,)) and not use(dtype=F32)
    assert not use(size=(64, 64), k=(5, 1), stride=(1, 1), dil=(1, 1))


# Plans (the layers' per-size calls): a plan made for these shapes and dtypes gives the
# one-off call's numbers bit for bit, with and without a bias, for C- and F-ordered
# operands, and declines (None) operands of other shapes.
PLAN_CASES = [
    (False, (9,), (3,), 2, 4, 1, dict(stride=2, padding=1)),
    (False, (7, 6), (3, 2), 4, 6, 2, dict(dilation=[1, 2], padding=np.array([[1, 0], [2, 1]]))),
    (False, (5, 4, 6), (2, 3, 3), 3, 5, 1, dict(padding=1)),
    (True, (6, 5), (3, 3), 4, 4, 2, dict(stride=2, cropping=1)),
    (True, (8,), (4,), 3, 2, 1, dict(stride=3)),
]


@pytest.mark.parametrize("case", PLAN_CASES)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_plans_equal_one_off_calls(case, dtype):
    transposed, size, k, cin, cout, groups, opts = case
    rng = np.random.default_rng(len(size) + cin)
    x = rng.standard_normal(size + (cin, 2)).astype(dtype)
    w_last = (cout // groups, cin) if transposed else (cin // groups, cout)
    w = rng.standard_normal(k + w_last).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    make, call = ((_ops.conv_transpose_plan, _ops.conv_transpose) if transposed
                  else (_ops.conv_plan, _ops.conv))
    for bias in (b, None):
        for xx, ww in ((x, w), (np.asfortranarray(x), np.asfortranarray(w))):
            plan = make(xx, ww, bias, groups=groups, **opts)
            ref = call(xx, ww, bias, groups=groups, **opts)
            for _ in range(2):
                y = plan(xx, ww, bias)
                assert y.shape == ref.shape and y.dtype == ref.dtype
                np.testing.assert_array_equal(y, ref)
            assert plan(np.concatenate([xx, xx], axis=-1), ww, bias) is None


@pytest.mark.parametrize("shape", [(5,), (7, 3), (33, 17), (2, 3, 4, 5, 6), (1, 1, 16, 32),
                                   (17, 33, 2, 19), (32, 32, 3, 32), (40, 1, 1, 1)])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_reverse_axes_is_numpys_transpose_copy(shape, dtype):
    """The tiled axis reversal that turns C-ordered MATLAB-order operands into the engine
    layout: numpy's own transpose copy, element for element, tiles cut at any size."""
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    y = np.full(shape[::-1], np.nan, dtype)
    _ops._conv.reverse_axes(x.reshape(-1), y.reshape(-1), np.array(shape, dtype=np.intp))
    np.testing.assert_array_equal(y, np.ascontiguousarray(x.T))
    if len(shape) >= 3:
        e = _ops._to_engine(x, len(shape) - 2, dtype)
        ref = np.ascontiguousarray(x.T)
        np.testing.assert_array_equal(e.reshape(ref.shape), ref)
    with pytest.raises(ValueError, match="reverse_axes: x and y must hold"):
        _ops._conv.reverse_axes(x.reshape(-1), y.reshape(-1)[1:], np.array(shape, np.intp))


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
@pytest.mark.parametrize("dtype", [F32, F64])
def test_one_channel_filters_four_at_a_time_as_one_at_a_time(level, dtype, isa_level):
    """A single-channel input's filters run four at a time (taps_rows4: each input vector
    loaded once for the four): every filter's plane has the bits of that filter run alone
    (taps_row), on every instruction set, with and without the ReLU and the pooling, for
    wide runs, row by row (rows of whole vectors, 1-D) and short rows, NaN and Inf in x."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    rng = np.random.default_rng(level)
    # (the last case's rows are an odd number apart: pooled from a compact copy)
    for size, k, nf, pad in [((28, 28), (3, 3), 8, 1), ((10, 32), (3, 3), 7, 1),
                             ((1, 70), (1, 5), 6, [[0, 2], [0, 2]]), ((3, 5), (3, 3), 5, 1),
                             ((12, 6), (5, 5), 4, 2), ((8, 10), (2, 2), 5, [[1, 1], [0, 0]])]:
        x = rng.standard_normal(size + (1, 3)).astype(dtype)
        x[-1, 2, 0, 0], x[0, 1, 0, 2] = np.nan, np.inf
        w = rng.standard_normal(k + (1, nf)).astype(dtype)
        b = rng.standard_normal(nf).astype(dtype)
        plan = _ops.conv_plan(x, w, b, 1, 1, pad)
        we, be, _ = plan.operands(w, b)
        xe = _ops._to_engine(x, 2, dtype, plan._xe_shape)
        n, c, _, o1, o2 = plan._shape
        packed = plan._geom.packed
        pools = (False, True) if plan.can_pool else (False,)
        assert plan.can_pool == (size[0] > 3)
        for rectify in (False, True):
            for pool in pools:
                shape = (n, c, 1, o1 // 2, o2 // 2) if pool else plan._shape
                got = np.empty(shape, dtype)
                _ops._conv.conv_forward(xe, we, be, got, packed, 1, 2, rectify, pool)
                for f in range(nf):
                    alone = np.empty(shape[:1] + (1,) + shape[2:], dtype)
                    _ops._conv.conv_forward(xe, we[f:f + 1], be[f:f + 1], alone, packed, 1,
                                            1, rectify, pool)
                    np.testing.assert_array_equal(got[:, f:f + 1], alone)
                    np.testing.assert_array_equal(np.signbit(got[:, f:f + 1]),
                                                  np.signbit(alone))


@pytest.mark.parametrize("seed", [1, 2])
def test_channel_wise_random_geometries_pool_and_filter_blocks_bitwise(seed):
    """Random single-channel geometries (filters 1-5 x 1-5, strides and dilations 1-3,
    padding 0-2 a side, 1-9 filters, float32 and float64, 1 and 2 threads): every filter
    run in a block of four equals it run alone, and the pooled kernel equals the unpooled
    result pooled, bit for bit (a fuzz of this kind found rows shorter than a vector
    summed with two roundings where the vector loops fuse them)."""
    from mlayers import _ops_pool
    rng = np.random.default_rng(seed)
    pooled = 0
    for it in range(200):
        dt = (F32, F64)[it % 2]
        k = tuple(int(v) for v in rng.integers(1, 6, 2))
        s = [int(v) for v in rng.integers(1, 4, 2)]
        dl = [int(v) for v in rng.integers(1, 3, 2)]
        size = tuple(int(v) for v in rng.integers(1, 20, 2))
        nf, n, thr = int(rng.integers(1, 10)), int(rng.integers(1, 4)), 1 + it % 2
        pad = np.array(rng.integers(0, 3, 4)).reshape(2, 2)
        x = rng.standard_normal(size + (1, n)).astype(dt)
        w = rng.standard_normal(k + (1, nf)).astype(dt)
        b = rng.standard_normal(nf).astype(dt)
        try:
            plan = _ops.conv_plan(x, w, b, s, dl, pad)
        except ValueError:
            continue                    # (no output for this geometry)
        we, be, _ = plan.operands(w, b)
        xe = _ops._to_engine(x, 2, dt, plan._xe_shape)
        nn, c, _, o1, o2 = plan._shape
        rect = bool(it % 3)
        full = np.empty(plan._shape, dt)
        _ops._conv.conv_forward(xe, we, be, full, plan._geom.packed, 1, thr, rect)
        for f in range(nf):
            alone = np.empty((nn, 1) + plan._shape[2:], dt)
            _ops._conv.conv_forward(xe, we[f:f + 1], be[f:f + 1], alone, plan._geom.packed,
                                    1, 1, rect)
            np.testing.assert_array_equal(full[:, f:f + 1], alone)
        if plan.can_pool:
            pooled += 1
            got = np.empty((nn, c, 1, o1 // 2, o2 // 2), dt)
            _ops._conv.conv_forward(xe, we, be, got, plan._geom.packed, 1, thr, rect, True)
            got = got.reshape(nn, c, o1 // 2, o2 // 2).T
            want = _ops_pool.pool(np.asfortranarray(full.reshape(nn, c, o1, o2).T), 2, 2, 0,
                                  "max")
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    assert pooled >= 20
