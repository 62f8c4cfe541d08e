"""Traced dlarray arithmetic and math against NumPy references and finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlayers as ml

from gradcheck import check

TOL = 1e-7      # relative error of central differences in float64


def _weights(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --------------------------------------------------------------------------- arithmetic

@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (1, 4)), ((3, 1), (1, 4)),
                                    ((3, 4), ())])
def test_binary_ops_gradients(op, shapes, rng):
    a = rng.uniform(0.5, 2.0, shapes[0])
    b = rng.uniform(0.5, 2.0, shapes[1])
    w = _weights(np.broadcast_shapes(a.shape, b.shape))
    f = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
         "/": lambda x, y: x / y, "**": lambda x, y: x ** y}[op]
    errs = check(lambda x, y: ml.sum(f(x, y) * w, "all"), [a, b], ["SC", "SC" if b.ndim
                                                                  else ""])
    assert max(errs) < TOL
    # the value against numpy
    z = f(ml.dlarray(a, "SC"), ml.dlarray(b, "SC") if b.ndim else ml.dlarray(b))
    np.testing.assert_allclose(ml.extractdata(z), f(a, b), rtol=1e-15)
    assert z.dims == "SC"


def test_numpy_and_scalar_operands_are_constants():
    x = ml.dlarray(np.array([1.0, 2.0]))
    c = np.array([3.0, 4.0])
    for expr, grad in ((lambda x: c * x, c), (lambda x: x * c, c), (lambda x: 2.0 - x, -1),
                       (lambda x: c / x, -c / np.array([1.0, 4.0])), (lambda x: -x, -1)):
        g = ml.dlfeval(lambda x: ml.dlgradient(ml.sum(expr(x), "all"), x), x)
        np.testing.assert_allclose(ml.extractdata(g), np.broadcast_to(grad, (2,)))


def test_label_alignment_of_different_formats():
    # "CB" (3 x 2) + "C" ... and "SCB" + "CB": dimensions matched by label
    a = np.arange(6.0).reshape(3, 2)            # C x B
    b = np.arange(12.0).reshape(2, 3, 2)        # S x C x B
    z = ml.dlarray(a, "CB") + ml.dlarray(b, "SCB")
    assert z.dims == "SCB"
    np.testing.assert_array_equal(ml.extractdata(z), b + a[None])
    w = _weights(z.shape)
    errs = check(lambda x, y: ml.sum((x * y) * w, "all"), [a, b], ["CB", "SCB"])
    assert max(errs) < TOL


def test_incompatible_sizes_raise():
    with pytest.raises(ValueError, match="plus: arrays have incompatible sizes"):
        ml.dlarray(np.ones((2, 3))) + ml.dlarray(np.ones((4, 3)))


def test_mtimes():
    a, b = _weights((3, 4), 1), _weights((4, 2), 2)
    z = ml.dlarray(a) @ ml.dlarray(b)
    np.testing.assert_allclose(ml.extractdata(z), a @ b)
    w = _weights((3, 2), 3)
    assert max(check(lambda x, y: ml.sum((x @ y) * w, "all"), [a, b], ["", ""])) < TOL
    with pytest.raises(ValueError, match="mtimes: operands must be unformatted"):
        ml.dlarray(a, "CB") @ ml.dlarray(b)
    with pytest.raises(ValueError, match="mtimes: inner matrix dimensions must agree"):
        ml.dlarray(a) @ ml.dlarray(a)


# --------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("fn,ref", [(ml.sum, np.sum), (ml.mean, np.mean)])
@pytest.mark.parametrize("dim", [None, 1, 2, 3, [1, 3], "all", 5])
def test_sum_mean(fn, ref, dim, rng):
    x = rng.standard_normal((3, 4, 2))
    X = ml.dlarray(x, "SCB")
    y = fn(X, dim) if dim is not None else fn(X)
    if dim == "all":
        expect = ref(x).reshape(())
        assert y.dims == ""
    else:
        axes = (0,) if dim is None else tuple(d - 1 for d in np.atleast_1d(dim) if d <= 3)
        expect = ref(x, axis=axes, keepdims=True)
        assert y.dims == "SCB"
    np.testing.assert_allclose(ml.extractdata(y), expect, rtol=1e-14)
    w = _weights(np.shape(expect))
    assert max(check(lambda x: ml.sum(fn(x, dim) * w, "all") if dim is not None
                     else ml.sum(fn(x) * w, "all"), [x], ["SCB"])) < TOL


def test_sum_first_nonsingleton_default():
    x = np.arange(4.0).reshape(1, 4)
    np.testing.assert_array_equal(ml.extractdata(ml.sum(ml.dlarray(x))), [[6.0]])


def test_bad_dim_raises():
    X = ml.dlarray(np.ones((2, 2)))
    for bad in (0, 1.5, "some", [1, 1]):
        with pytest.raises(ValueError, match="sum: dim must"):
            ml.sum(X, bad)


@pytest.mark.parametrize("fn,pick", [(ml.max, np.max), (ml.min, np.min)])
def test_max_min(fn, pick, rng):
    x = rng.permutation(24).astype(float).reshape(2, 3, 4)     # no ties
    X = ml.dlarray(x)
    M, I = fn(X, [], 2, nargout=2)
    np.testing.assert_array_equal(ml.extractdata(M), pick(x, axis=1, keepdims=True))
    arg = (np.argmax if pick is np.max else np.argmin)(x, axis=1)
    np.testing.assert_array_equal(ml.extractdata(I)[:, 0, :], arg + 1)        # 1-based
    M, I = fn(X, [], "all", nargout=2)
    flat = x.reshape(-1, order="F")
    k = (np.argmax if pick is np.max else np.argmin)(flat)
    assert float(ml.extractdata(I)) == k + 1 and float(ml.extractdata(M)) == flat[k]
    w = _weights((2, 1, 4))
    assert max(check(lambda x: ml.sum(fn(x, [], 2) * w, "all"), [x], [""])) < TOL
    # elementwise form with implicit expansion
    y = rng.standard_normal((1, 3, 4))
    Z = fn(X, ml.dlarray(y))
    np.testing.assert_array_equal(ml.extractdata(Z), (np.maximum if pick is np.max
                                                      else np.minimum)(x, y))
    w = _weights((2, 3, 4))
    assert max(check(lambda a, b: ml.sum(fn(a, b) * w, "all"), [x, y], ["", ""])) < TOL


def test_max_omits_nan():
    x = np.array([[np.nan, 1.0, 3.0], [np.nan, np.nan, np.nan]])
    M = ml.extractdata(ml.max(ml.dlarray(x), [], 2))
    assert M[0, 0] == 3.0 and np.isnan(M[1, 0])


# --------------------------------------------------------------------------- elementwise

@pytest.mark.parametrize("fn,ref,lo,hi", [
    (ml.abs, np.abs, -2, 3), (ml.exp, np.exp, -2, 3), (ml.log, np.log, 0.1, 3),
    (ml.sqrt, np.sqrt, 0.1, 3), (ml.tanh, np.tanh, -2, 3), (ml.sin, np.sin, -3, 3),
    (ml.cos, np.cos, -3, 3), (ml.tan, np.tan, -1.2, 1.2), (ml.asin, np.arcsin, -0.9, 0.9),
    (ml.acos, np.arccos, -0.9, 0.9), (ml.atan, np.arctan, -3, 3), (ml.sinh, np.sinh, -2, 2),
    (ml.cosh, np.cosh, -2, 2), (ml.erf, lambda v: np.vectorize(math.erf)(v), -2, 2)])
def test_unary(fn, ref, lo, hi, dtype, rng):
    x = rng.uniform(lo, hi, (3, 4)).astype(dtype)
    y = fn(ml.dlarray(x, "CB"))
    assert y.dims == "CB" and ml.extractdata(y).dtype == dtype
    np.testing.assert_allclose(ml.extractdata(y), ref(x.astype(np.float64)),
                               rtol=1e-6 if dtype == np.float32 else 1e-15)
    w = _weights((3, 4))
    assert max(check(lambda x: ml.sum(fn(x) * w, "all"), [x.astype(np.float64)], ["CB"])) < TOL


def test_rounding_functions_have_zero_gradients(rng):
    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.2, 0.7]])
    expected = {ml.round: [-3, -2, -1, 1, 2, 3, 0, 1],        # MATLAB: halves away from 0
                ml.floor: [-3, -2, -1, 0, 1, 2, -1, 0], ml.ceil: [-2, -1, 0, 1, 2, 3, 0, 1],
                ml.fix: [-2, -1, 0, 0, 1, 2, 0, 0], ml.sign: [-1, -1, -1, 1, 1, 1, -1, 1]}
    # MATLAB's round at the edges of float rounding: x + 0.5 would round up
    np.testing.assert_array_equal(
        ml.round(np.array([0.49999999999999994, -0.49999999999999994, 2.0 ** 52 + 1])),
        [0.0, 0.0, 2.0 ** 52 + 1])
    np.testing.assert_array_equal(ml.round(np.array([8388609.0, 0.49999997], np.float32)),
                                  [8388609.0, 0.0])
    for fn, want in expected.items():
        def f(X):
            return ml.dlgradient(ml.sum(fn(X) * X, "all"), X)
        np.testing.assert_array_equal(fn(ml.dlarray(x, "CB")).data, [want])
        # d/dx sum(fn(x) .* x) = fn(x): fn itself contributes no gradient
        np.testing.assert_array_equal(ml.dlfeval(f, ml.dlarray(x, "CB")).data, [want])


# --------------------------------------------------------------------------- shape

def test_reshape_column_major(rng):
    x = rng.standard_normal((2, 3, 4))
    Y = ml.reshape(ml.dlarray(x, "SCB"), 6, [])
    assert Y.dims == "" and Y.shape == (6, 4)
    np.testing.assert_array_equal(ml.extractdata(Y), x.reshape(6, 4, order="F"))
    np.testing.assert_array_equal(ml.extractdata(ml.reshape(ml.dlarray(x), [4, 6])),
                                  x.reshape(4, 6, order="F"))
    w = _weights((3, 8))
    assert max(check(lambda x: ml.sum(ml.reshape(x, 3, 8) * w, "all"), [x], [""])) < TOL
    with pytest.raises(ValueError, match="reshape: the number of elements must not change"):
        ml.reshape(ml.dlarray(x), 5, 5)


def test_permute_squeeze_cat(rng):
    x = rng.standard_normal((2, 1, 3))
    P = ml.permute(ml.dlarray(x), [3, 1, 2])
    np.testing.assert_array_equal(ml.extractdata(P), x.transpose(2, 0, 1))
    w = _weights((3, 2, 1))
    assert max(check(lambda x: ml.sum(ml.permute(x, [3, 1, 2]) * w, "all"), [x], [""])) < TOL
    S = ml.squeeze(ml.dlarray(x, "SCB"))
    assert S.dims == "SB" and S.shape == (2, 3)
    y = rng.standard_normal((2, 4, 3))
    C = ml.cat(2, ml.dlarray(x), ml.dlarray(y))
    np.testing.assert_array_equal(ml.extractdata(C), np.concatenate([x, y], axis=1))
    w = _weights((2, 5, 3))
    assert max(check(lambda a, b: ml.sum(ml.cat(2, a, b) * w, "all"), [x, y], ["", ""])) < TOL
    with pytest.raises(ValueError, match="cat: dimensions of arrays being concatenated"):
        ml.cat(1, ml.dlarray(x), ml.dlarray(y))
    with pytest.raises(ValueError, match="cat: formatted arrays must have the same format"):
        ml.cat(1, ml.dlarray(x, "SCB"), ml.dlarray(x, "CBT"))


def test_indexing_and_assignment(rng):
    x = rng.standard_normal((4, 3, 2))
    X = ml.dlarray(x, "SCB")
    Y = X[1:3, :, 0]          # an integer keeps its dimension on formatted data
    assert Y.dims == "SCB" and Y.shape == (2, 3, 1)
    np.testing.assert_array_equal(ml.extractdata(Y), x[1:3, :, 0:1])
    w = _weights((2, 3, 1))
    assert max(check(lambda a: ml.sum(a[1:3, :, 0] * w, "all"), [x], ["SCB"])) < TOL
    # fancy indexing with repeats accumulates
    assert max(check(lambda a: ml.sum(a[[0, 0, 2]] * 3, "all"), [x], [""])) < TOL

    def assign(a, v):
        b = a * 1
        b[0, :, :] = v * 2
        return ml.sum(b * _weights((4, 3, 2)), "all")
    v = rng.standard_normal((1, 3, 2))
    assert max(check(assign, [x, v], ["", ""])) < TOL


def test_logical_vector_of_matlab_shape_selects_one_dimension(rng):
    # MATLAB's label flipping: idx = rand(1,N) < p; Y(:,:,:,idx) = 1 - Y(:,:,:,idx)
    x = rng.random((1, 1, 1, 6))
    idx = np.array([[True, False, True, True, False, False]])        # 1 x 6, as MATLAB's
    X = ml.dlarray(x, "SSCB")
    Z = X[:, :, :, idx]
    assert Z.dims == "SSCB" and Z.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(ml.extractdata(Z), x[..., idx[0]])
    col = ml.dlarray(np.arange(12.0).reshape(3, 4))[idx[:, :3].T, :]  # 3 x 1 selects rows
    np.testing.assert_array_equal(ml.extractdata(col), np.arange(12.0).reshape(3, 4)[[0, 2]])

    def flip(a):
        b = a * 1
        b[:, :, :, idx] = 1 - b[:, :, :, idx] * 3
        return ml.sum(b * _weights((1, 1, 1, 6)), "all")
    assert max(check(flip, [x], ["SSCB"])) < TOL
    # a mask of the dimensions' own shape keeps numpy's meaning (two dimensions)
    v = ml.dlarray(np.arange(12.0).reshape(2, 1, 6))
    assert v[:, np.ones((1, 6), bool)].shape == (2, 6)


def test_one_element_dlarray_converts_to_a_python_number():
    s = ml.mean(ml.dlarray(np.full((1, 1, 1, 4), 0.25, np.float32), "SSCB"))
    assert s.shape == (1, 1, 1, 1)
    assert float(s) == 0.25 and s.item() == 0.25 and int(ml.dlarray(np.array([[3.7]]))) == 3
    with pytest.raises(TypeError, match="only a one-element dlarray converts"):
        float(ml.dlarray(np.zeros(3)))
    assert ml.size(s, 4) == 1 and ml.size(ml.dlarray(np.zeros((3, 3, 16, 1)), "SSCB")) == (3, 3, 16)


def test_matlab_functions_on_numeric_arrays_give_numeric_arrays(rng):
    # MATLAB's err = mean((XTest-YTest).^2,[1 2 3]) on numeric data: numeric out, the
    # dlarray method's numbers
    a = rng.random((4, 3, 1, 5))
    err = ml.mean(a ** 2, [1, 2, 3])
    assert type(err) is np.ndarray and err.shape == (1, 1, 1, 5)
    np.testing.assert_allclose(err.ravel(), (a ** 2).mean(axis=(0, 1, 2)), rtol=1e-15)
    m, i = ml.max(np.array([[1, 5], [3, 2]]), [], 1, nargout=2)
    np.testing.assert_array_equal(m, [[3, 5]]) and np.testing.assert_array_equal(i, [[2, 1]])
    np.testing.assert_array_equal(ml.reshape(np.arange(6.0), 2, 3),
                                  np.arange(6.0).reshape(2, 3, order="F"))
    assert isinstance(ml.sum(ml.dlarray(a), "all"), ml.dlarray)     # dlarray in, dlarray out
    with pytest.raises(TypeError, match="^sum: X must be a dlarray or a numeric array, got str"):
        ml.sum("abc")
    # rearrangements keep the class and copy (MATLAB values); lists are numeric arrays
    mask = np.array([True, False, True])
    r = ml.reshape(mask, 1, 3)
    assert r.dtype == bool and r.shape == (1, 3)
    b = np.arange(6.0)
    ml.reshape(b, 2, 3)[0, 0] = 99
    assert b[0] == 0
    assert float(np.ravel(ml.sum([1, 2, 3]))[0]) == 6


def test_unpacking_a_dlarray_is_refused_not_a_silent_slice(rng):
    # Y, mu, v = batchnorm(...) without nargout=3 would have sliced Y along its rows
    X = ml.dlarray(rng.random((3, 3, 2, 4)), "SSCB")
    o, s = ml.dlarray(np.zeros((2, 1))), ml.dlarray(np.ones((2, 1)))
    with pytest.raises(TypeError, match="dlarray is not iterable: to take several outputs "
                                        "of a function, pass nargout="):
        Y, mu, v = ml.batchnorm(X, o, s, o, s)
    Y, mu, v = ml.batchnorm(X, o, s, o, s, nargout=3)
    assert Y.shape == X.shape and np.asarray(Y).shape == X.shape and len(Y) == 3


def test_transpose_of_a_matrix(rng):
    # MATLAB's Y2 = [Y2; Y2Pred'] of a 1 x B prediction
    x = rng.standard_normal((1, 6))
    Y = ml.dlarray(x, "CB")
    assert Y.T.shape == (6, 1) and Y.T.dims == ""
    np.testing.assert_array_equal(Y.T.data, x.T)
    assert max(check(lambda a: ml.sum(a.T * _weights((6, 1)), "all"), [x], ["CB"])) < TOL
    with pytest.raises(ValueError, match="transpose: X must be a matrix"):
        ml.dlarray(np.zeros((2, 2, 2))).T


def test_comparisons_are_logical_arrays():
    X = ml.dlarray(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(X > 0, [False, False, True])
    assert isinstance(X <= 0, np.ndarray)


# --------------------------------------------------------------------------- properties

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["exp", "tanh", "abs", "square", "sum"]),
       st.sampled_from(["exp", "tanh", "mul", "div"]))
def test_random_compositions_match_finite_differences(seed, f1, f2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 1.5, (3, 2))
    y = rng.uniform(0.2, 1.5, (1, 2))
    unary = {"exp": ml.exp, "tanh": ml.tanh, "abs": ml.abs, "square": lambda a: a * a,
             "sum": lambda a: ml.sum(a, 1) + a}
    binary = {"exp": lambda a, b: ml.exp(a) * b, "tanh": lambda a, b: ml.tanh(a - b),
              "mul": lambda a, b: a * b, "div": lambda a, b: a / (b + 1)}
    w = rng.standard_normal((3, 2))

    def f(a, b):
        return ml.sum(binary[f2](unary[f1](a), b) * w, "all")
    assert max(check(f, [x, y], ["", ""])) < TOL


def test_against_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    x = rng.uniform(0.5, 2.0, (3, 4))
    y = rng.uniform(0.5, 2.0, (1, 4))

    def ours(a, b):
        loss = ml.sum(ml.tanh(a * b) / ml.sqrt(a) + ml.log(a + b) ** 2, "all") \
            + ml.mean(ml.exp(-a), "all")
        return ml.dlgradient(loss, a, b)
    ga, gb = ml.dlfeval(ours, ml.dlarray(x), ml.dlarray(y))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.tensor(y, requires_grad=True)
    loss = (torch.tanh(tx * ty) / torch.sqrt(tx) + torch.log(tx + ty) ** 2).sum() \
        + torch.exp(-tx).mean()
    loss.backward()
    np.testing.assert_allclose(ml.extractdata(ga), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ml.extractdata(gb), ty.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- MATLAB rules

def test_implicit_expansion_matches_from_the_first_dimension():
    # MATLAB: zeros(2,2,2) + [1 2; 3 4] adds the matrix to every page
    a = np.zeros((2, 2, 2))
    b = np.array([[1.0, 2.0], [3.0, 4.0]])
    z = ml.extractdata(ml.dlarray(a) + ml.dlarray(b))
    for k in range(2):
        np.testing.assert_array_equal(z[:, :, k], b)
    # a formatted SSCB batch minus a per-image H x W x C mean (numpy would refuse)
    x = np.random.default_rng(0).standard_normal((5, 4, 3, 2))
    mu = x.mean(axis=3)
    y = ml.dlarray(x, "SSCB") - mu
    assert y.dims == "SSCB"
    np.testing.assert_allclose(ml.extractdata(y), x - mu[..., None])
    w = _weights((5, 4, 3, 2))
    assert max(check(lambda p, q: ml.sum((p * q) * w, "all"), [x, mu], ["SSCB", ""])) < TOL
    with pytest.raises(ValueError, match="plus: an unformatted operand must not have more"):
        ml.dlarray(np.ones((3, 4)), "SC") + ml.dlarray(np.ones((2, 3, 4)))


def test_single_wins_over_double():
    x = ml.dlarray(np.ones(2, np.float32))
    assert (x + np.ones(2)).dtype == np.float32
    assert (ml.dlarray(np.ones(2)) * x).dtype == np.float32
    assert ml.cat(1, x, ml.dlarray(np.ones(2))).dtype == np.float32


def test_equality_is_elementwise():
    X = ml.dlarray(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(X == 1, [True, False])
    np.testing.assert_array_equal(X != 1, [False, True])


def test_cat_of_a_list_and_bad_arrays(rng):
    x = rng.standard_normal((2, 3))
    C = [ml.dlarray(x, "SC"), ml.dlarray(x, "SC")]
    Y = ml.cat(1, C)                                # MATLAB cat(1, C{:})
    assert Y.dims == "SC" and Y.shape == (4, 3)
    assert max(check(lambda a: ml.sum(ml.cat(1, [a, a * 2]) * _weights((4, 3)), "all"),
                     [x], ["SC"])) < TOL
    with pytest.raises(TypeError, match="cat: array 2 must be a numeric array"):
        ml.cat(1, ml.dlarray(x), "a")
    # MATLAB's X = []; X = cat(4, X, x) accumulation: [] and 0 x 0 arrays are skipped
    for empty in ([], np.zeros((0, 0)), ml.dlarray(np.zeros((0, 0)))):
        Y = ml.cat(2, empty, ml.dlarray(x, "SC"))
        assert Y.dims == "SC" and Y.shape == (2, 3)
        # ... and the gradient skips them too, wherever they stand
        assert max(check(lambda a, e=empty: ml.sum(ml.cat(2, a, e, a * 2) * _weights((2, 6)),
                                                   "all"), [x], ["SC"])) < TOL


def test_index_out_of_bounds_on_formatted_data():
    with pytest.raises(IndexError, match="index 10 is out of bounds for dimension 1"):
        ml.dlarray(np.ones((3, 4)), "SC")[10]


def test_assignment_with_repeated_indices_credits_the_last_writer(rng):
    x = rng.standard_normal((3, 2))
    v = rng.standard_normal(2)

    def f(a, b):
        c = a * 1
        c[[0, 0], 0] = b                         # b[1] is what stays in c[0, 0]
        return ml.sum(c * _weights((3, 2)), "all")
    assert max(check(f, [x, v], ["", ""])) < TOL


def test_format_cache_keeps_matlab_singleton_u_rule():
    ml.dlarray(np.zeros((3, 3, 5)), "SSU")
    assert ml.dlarray(np.zeros((3, 3, 1)), "SSU").dims == "SS"
