"""Loss functions (MATLAB_SEMANTICS §11.3) and onehotencode/onehotdecode (§11.4): NumPy
references from MATLAB's formulas, finite differences, PyTorch autograd (skipped without
torch), options, formats and errors."""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
import nn_reference as R

FD_TOL = 1e-7


def D(a, fmt):
    return ml.dlarray(a, fmt)


def probs(rng, shape, c=0):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=c, keepdims=True)


def onehot(rng, shape, c=0):
    k = shape[c]
    idx = rng.integers(0, k, size=shape[:c] + shape[c + 1:])
    return np.moveaxis(np.eye(k)[idx], -1, c)


# --------------------------------------------------------------------------- crossentropy

def test_crossentropy_formula(dtype, rng):
    y = probs(rng, (4, 6)).astype(dtype)
    t = onehot(rng, (4, 6))
    L = ml.crossentropy(D(y, "CB"), t)
    assert L.dims == "" and L.data.size == 1 and L.dtype == dtype
    assert_close(L.data, -np.sum(t * np.log(y.astype(np.float64))) / 6, dtype, fan_in=24)


def test_crossentropy_multilabel_and_legacy_name(dtype, rng):
    y = (1 / (1 + np.exp(-rng.standard_normal((3, 5))))).astype(dtype)
    t = (rng.random((3, 5)) > 0.5).astype(float)
    yd = y.astype(np.float64)
    ref = -np.sum(t * np.log(yd) + (1 - t) * np.log(1 - yd)) / 5
    assert_close(ml.crossentropy(D(y, "CB"), t, ClassificationMode="multilabel").data, ref,
                 dtype, fan_in=15)
    assert_close(ml.crossentropy(D(y, "CB"), t, TargetCategories="independent").data, ref,
                 dtype, fan_in=15)
    with pytest.raises(ValueError, match="crossentropy: ClassificationMode and "
                                         "TargetCategories must not both"):
        ml.crossentropy(D(y, "CB"), t, ClassificationMode="multilabel",
                        TargetCategories="independent")


def test_crossentropy_images_weights_mask_normalization(rng):
    y = probs(rng, (3, 2, 4, 5), c=2)            # SSCB, classes along C
    t = onehot(rng, (3, 2, 4, 5), c=2)
    Y = D(y, "SSCB")
    e = -t * np.log(y)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    ew = e * w.reshape(1, 1, 4, 1)
    assert np.isclose(ml.crossentropy(Y, t).data, e.sum() / 5)
    assert np.isclose(ml.crossentropy(Y, t, w).data, ew.sum() / 5)             # positional
    assert np.isclose(ml.crossentropy(Y, t, Weights=w.reshape(1, 1, 4)).data, ew.sum() / 5)
    assert np.isclose(ml.crossentropy(Y, t, Weights=w, WeightsFormat="C").data, ew.sum() / 5)
    mask = (rng.random((3, 2, 1, 5)) > 0.3).astype(float)
    em = e * mask
    assert np.isclose(ml.crossentropy(Y, t, Mask=mask).data, em.sum() / 5)
    assert np.isclose(ml.crossentropy(Y, t, Mask=mask, NormalizationFactor="mask-included")
                      .data, em.sum() / np.count_nonzero(np.broadcast_to(mask, y.shape)))
    assert np.isclose(ml.crossentropy(Y, t, NormalizationFactor="all-elements").data,
                      e.sum() / y.size)
    assert np.isclose(ml.crossentropy(Y, t, NormalizationFactor="none").data, e.sum())
    L = ml.crossentropy(Y, t, Reduction="none")
    assert L.dims == "SSCB" and np.allclose(L.data, e)


def test_crossentropy_eps_clamp_and_dataformat(rng):
    y = np.array([[0.0, 0.5], [1.0, 0.5]])
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    L = ml.crossentropy(D(y, "CB"), t)
    assert np.isclose(L.data, -(np.log(np.finfo(float).eps) + np.log(0.5)) / 2)
    L32 = ml.crossentropy(D(y.astype(np.float32), "CB"), t)
    assert np.isclose(L32.data, -(np.log(np.finfo(np.float32).eps) + np.log(0.5)) / 2,
                      rtol=1e-6)
    y = probs(rng, (5, 3), c=1)                # B x C unformatted
    t = onehot(rng, (5, 3), c=1)
    assert np.isclose(ml.crossentropy(y, t, DataFormat="BC").data, -np.sum(t * np.log(y)) / 5)


def test_crossentropy_gradients(rng):
    y = probs(rng, (3, 4))
    t = probs(rng, (3, 4))
    w = rng.random((3, 1))
    for opts in ({}, {"ClassificationMode": "multilabel"},
                 {"NormalizationFactor": "all-elements"}, {"Reduction": "none"}):
        errs = R.gradcheck(lambda Y, T: ml.crossentropy(Y, T, **opts), [y, t], ["CB", "CB"],
                           rng)
        assert max(errs) < FD_TOL
    errs = R.gradcheck(lambda Y, W: ml.crossentropy(Y, t, W), [y, w], ["CB", ""], rng)
    assert max(errs) < FD_TOL


# --------------------------------------------------------------------------- regression

REG = {
    "mse": (ml.mse, lambda d: 0.5 * d * d),
    "l1loss": (ml.l1loss, np.abs),
    "l2loss": (ml.l2loss, lambda d: d * d),
    "huber": (ml.huber, lambda d: np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5)),
}


@pytest.mark.parametrize("name", sorted(REG))
@pytest.mark.parametrize("fmt, shape, n", [("CB", (3, 4), 4), ("SSCB", (2, 3, 2, 5), 5),
                                           ("CBT", (2, 3, 4), 3), ("CT", (2, 5), 1)])
def test_regression_losses(name, fmt, shape, n, dtype, rng):
    op, elem = REG[name]
    y = (rng.standard_normal(shape) * 2).astype(dtype)
    t = rng.standard_normal(shape)
    L = op(D(y, fmt), t)
    assert L.dims == "" and L.dtype == dtype
    ref = elem(y.astype(np.float64) - t.astype(dtype)).sum() / n
    assert_close(L.data, ref, dtype, fan_in=y.size)


@pytest.mark.parametrize("name", ["l1loss", "l2loss", "huber"])
def test_regression_options(name, rng):
    op, elem = REG[name]
    y, t = rng.standard_normal((3, 4)) * 2, rng.standard_normal((3, 4))
    w = rng.random((3, 1))
    e = elem(y - t)
    assert np.isclose(op(D(y, "CB"), t, w).data, (e * w).sum() / 4)
    assert np.isclose(op(D(y, "CB"), t, Weights=w, NormalizationFactor="all-elements").data,
                      (e * w).sum() / 12)
    L = op(D(y, "CB"), t, Reduction="none")
    assert L.dims == "CB" and np.allclose(L.data, e)
    assert np.isclose(op(y.T, t.T, DataFormat="BC").data, e.sum() / 4)


def test_huber_transition_point(rng):
    d = np.array([[0.1, -0.4, 0.6, -2.0]])
    L = ml.huber(D(d, "CB"), np.zeros_like(d), TransitionPoint=0.5)
    h = np.where(np.abs(d) <= 0.5, 0.5 * d * d, 0.5 * np.abs(d) - 0.125)
    assert np.isclose(L.data, h.sum() / 4)


@pytest.mark.parametrize("name", sorted(REG))
def test_regression_gradients(name, rng):
    op = REG[name][0]
    y = rng.standard_normal((3, 4)) * 2
    t = y + rng.choice([-1, 1], size=y.shape) * (0.2 + rng.random(y.shape) * 2)
    t[np.abs(np.abs(y - t) - 1) < 1e-3] += 0.1       # off huber's transition point
    errs = R.gradcheck(op, [y, t], ["CB", "CB"], rng)
    assert max(errs) < FD_TOL
    if name != "mse":
        errs = R.gradcheck(lambda Y, T: op(Y, T, Reduction="none"), [y, t], ["CB", "CB"], rng)
        assert max(errs) < FD_TOL


def test_loss_errors():
    Y = D(np.ones((3, 4)), "CB")
    with pytest.raises(ValueError, match=r"l2loss: targets must be the same size as Y \(3×4\)"):
        ml.l2loss(Y, np.ones((4, 3)))
    with pytest.raises(ValueError, match="crossentropy: targets must have the format of Y"):
        ml.crossentropy(Y, D(np.ones((3, 4)), "CT"))
    with pytest.raises(TypeError, match="mse: targets must be real single or double"):
        ml.mse(Y, np.ones((3, 4), dtype=bool))
    with pytest.raises(ValueError, match="l1loss: NormalizationFactor"):
        ml.l1loss(Y, np.ones((3, 4)), NormalizationFactor="per-element")
    with pytest.raises(ValueError, match="huber: Weights must be compatible"):
        ml.huber(Y, np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="huber: TransitionPoint must be a positive"):
        ml.huber(Y, np.ones((3, 4)), TransitionPoint=0)


# --------------------------------------------------------------------------- torch

TOL = {np.float32: 2e-4, np.float64: 1e-10}


@pytest.mark.parametrize("name", ["crossentropy", "mse", "l1loss", "l2loss", "huber"])
def test_losses_vs_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    y = probs(rng, (4, 5)).astype(dtype)
    t = probs(rng, (4, 5)).astype(dtype)
    tt = torch.float32 if dtype == np.float32 else torch.float64
    ty = torch.tensor(y.T.copy(), dtype=tt, requires_grad=True)     # N x C
    tgt = torch.tensor(t.T.copy(), dtype=tt)
    tl = {"crossentropy": lambda: -(tgt * torch.log(ty)).sum() / 5,
          "mse": lambda: F.mse_loss(ty, tgt, reduction="sum") / 10,
          "l1loss": lambda: F.l1_loss(ty, tgt, reduction="sum") / 5,
          "l2loss": lambda: F.mse_loss(ty, tgt, reduction="sum") / 5,
          "huber": lambda: F.huber_loss(ty * 9, tgt, reduction="sum", delta=1.0) / 5}[name]()
    tl.backward()
    scale = 9 if name == "huber" else 1
    op = getattr(ml, name)

    def f(Y):
        L = op(Y * scale, t)
        return L, ml.dlgradient(L, Y)
    L, g = ml.dlfeval(f, D(y, "CB"))
    assert R.relative_error(L.data, tl.detach().numpy()) < TOL[dtype]
    assert R.relative_error(g.data, ty.grad.numpy().T) < TOL[dtype]


# --------------------------------------------------------------------------- onehot

def test_onehotencode_categorical_row_and_column():
    A = ml.categorical(np.array([["red", "blue", "red", "green"]]))      # 1x4
    B = ml.onehotencode(A, 1)
    assert B.shape == (3, 4) and B.dtype == np.float64
    assert B.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 0]]     # blue, green, red
    C = ml.onehotencode(ml.categorical(np.array(["b", "a", "b"])), 2)     # 3x1 -> 3x2
    assert C.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert ml.onehotencode(A, 1, "single").dtype == np.float32
    assert ml.onehotencode(A, 3).shape == (1, 4, 3)


def test_onehotencode_classnames_undefined_and_plain_labels():
    A = ml.categorical(np.array([["x", "", "y"]]))                      # '' is <undefined>
    B = ml.onehotencode(A, 1, ClassNames=["y", "x"])
    assert B[:, 0].tolist() == [0, 1] and np.isnan(B[:, 1]).all() and B[:, 2].tolist() == [1, 0]
    P = ml.onehotencode(np.array([3, 1, 7]), 2, ClassNames=[1, 3])       # plain labels
    assert P[0].tolist() == [0, 1] and P[1].tolist() == [1, 0] and np.isnan(P[2]).all()
    with pytest.raises(ValueError, match="onehotencode: ClassNames must be given"):
        ml.onehotencode(np.array(["a"]), 2)
    with pytest.raises(ValueError, match="onehotencode: dimension featureDim"):
        ml.onehotencode(ml.categorical(np.array([["a", "b"]])), 2)


class _PandasLike:
    def __init__(self, codes, categories):
        self.codes, self.categories = np.asarray(codes), list(categories)


def test_onehotencode_codes_and_categories_object():
    B = ml.onehotencode(_PandasLike([[1, 0, -1]], ["cat", "dog"]), 1)
    assert B[:, :2].tolist() == [[0, 1], [1, 0]] and np.isnan(B[:, 2]).all()


def test_onehotdecode_roundtrip_and_ties():
    classes = ["blue", "green", "red"]
    A = ml.categorical(np.array([["red", "blue", "green", "red"]]), classes)
    B = ml.onehotencode(A, 1)
    labels = ml.onehotdecode(B, classes, 1)
    assert labels.shape == (1, 4) and ml.categories(labels) == classes
    assert np.asarray(labels).ravel().tolist() == ["red", "blue", "green", "red"]
    tie = np.array([[0.5, 0.5, 0.0]]).T                                  # first wins
    assert np.asarray(ml.onehotdecode(tie, classes, 1)).ravel().tolist() == ["blue"]
    X = D(np.array([[0.1, 0.7], [0.9, 0.3]]), "CB")
    assert np.asarray(ml.onehotdecode(X, ["a", "b"], 1)).ravel().tolist() == ["b", "a"]
    assert ml.onehotdecode(X, [10, 20], 1, "double").tolist() == [[20.0, 10.0]]
    with pytest.raises(ValueError, match="onehotdecode: classes must have one element"):
        ml.onehotdecode(X, ["a", "b", "c"], 1)


def test_onehotdecode_classes_that_cannot_be_categories():
    # (found by the robustness suite: a NaN class reached int(NaN))
    B = np.array([[0.2], [0.8]])
    with pytest.raises(ValueError, match="onehotdecode: classes must not contain missing"):
        ml.onehotdecode(B, [1.0, np.nan], 1)
    # Inf is a category, named as MATLAB's num2str names it
    assert ml.categories(ml.onehotdecode(B, [1.0, np.inf], 1)) == ["1", "Inf"]
