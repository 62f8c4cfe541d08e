"""lbfgsupdate / lbfgsState: L-BFGS steps, against NumPy references of the same problems."""
import numpy as np
import pytest

import mlayers as ml


def _quadratic(seed=0, n=5):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    A = M @ M.T / n + 0.5 * np.eye(n)
    b = rng.standard_normal(n)

    def loss(w):
        y = 0.5 * ml.sum(w * (ml.dlarray(A) @ w), "all") - ml.sum(w * b[:, None], "all")
        return y, ml.dlgradient(y, w)
    return A, b, lambda w: ml.dlfeval(loss, w)


@pytest.mark.parametrize("method", ["weak-wolfe", "strong-wolfe", "backtracking"])
def test_minimizes_a_quadratic(method):
    A, b, loss_fcn = _quadratic()
    w = ml.dlarray(np.zeros((5, 1)))
    state = ml.lbfgsState(HistorySize=6)
    losses = []
    for k in range(40):
        w, state = ml.lbfgsupdate(w, loss_fcn, state, LineSearchMethod=method)
        losses.append(state.Loss)
        if state.GradientsNorm < 1e-8:
            break
    assert k < 15           # quasi-Newton (without the history: more steps than that)
    np.testing.assert_allclose(w.data[:, 0], np.linalg.solve(A, b), atol=1e-7)
    assert all(b <= a for a, b in zip(losses, losses[1:]))        # every step descends
    assert state.LineSearchStatus == "completed" and state.LineSearchMethod == method
    assert len(state.StepHistory) == len(state.GradientsDifferenceHistory) <= 6
    assert state.Loss == pytest.approx(-0.5 * b @ np.linalg.solve(A, b), abs=1e-12)


def test_first_step_and_history_by_hand():
    """The first direction is -λ0·g (λ0 = InitialInverseHessianFactor), and a unit step is
    taken where it satisfies the Wolfe conditions; then λ = sᵀy / yᵀy."""
    A, b, loss_fcn = _quadratic(seed=3)
    A_eig = np.linalg.eigvalsh(A)
    lam0 = 0.5 / A_eig.max()                     # a short, surely acceptable unit step
    w0 = np.zeros((5, 1))
    given = ml.lbfgsState(InitialInverseHessianFactor=lam0)
    w1, state = ml.lbfgsupdate(ml.dlarray(w0), loss_fcn, given)
    assert given.Loss is None and given.StepHistory == []      # a value: left as it was
    g0 = A @ w0[:, 0] - b
    expected = w0[:, 0] - lam0 * g0
    np.testing.assert_allclose(w1.data[:, 0], expected, rtol=1e-12, atol=1e-14)
    s, y = expected - w0[:, 0], A @ (expected - w0[:, 0])
    np.testing.assert_allclose(state.StepHistory[0], s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state.GradientsDifferenceHistory[0], y, rtol=1e-12, atol=1e-15)
    assert state._lambda == pytest.approx(s @ y / (y @ y), rel=1e-12)
    assert state.StepNorm == pytest.approx(np.linalg.norm(s), rel=1e-12)
    assert state.GradientsNorm == pytest.approx(np.linalg.norm(A @ expected - b), rel=1e-12)


@pytest.mark.parametrize("method", ["weak-wolfe", "strong-wolfe", "backtracking"])
def test_rosenbrock_with_a_struct_of_parameters(method):
    def rosen(p):
        v = 100 * (p["y"] - p["x"] * p["x"]) ** 2 + (1 - p["x"]) ** 2
        return v, ml.dlgradient(v, p)
    p = {"x": ml.dlarray(np.array([-1.2])), "y": ml.dlarray(np.array([1.0]))}
    state = ml.lbfgsState()
    for _ in range(100):
        p, state = ml.lbfgsupdate(p, lambda p: ml.dlfeval(rosen, p), state,
                                  LineSearchMethod=method)
        if state.GradientsNorm < 1e-9:
            break
    assert set(p) == {"x", "y"}
    np.testing.assert_allclose([float(p["x"]), float(p["y"])], [1.0, 1.0], atol=1e-7)


def test_network_fit_and_state():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (1, 40))
    T = np.sin(3 * X)
    net = ml.dlnetwork([ml.featureInputLayer(1), ml.fullyConnectedLayer(8), ml.tanhLayer(),
                        ml.fullyConnectedLayer(1)])
    net = ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape) * 0.5), net)

    def model_loss(net, X, T):
        Y, state = ml.forward(net, X, nargout=2)
        loss = ml.l2loss(Y, T)
        return loss, ml.dlgradient(loss, net.Learnables), state
    loss_fcn = lambda net: ml.dlfeval(model_loss, net, ml.dlarray(X, "CB"), T)  # noqa: E731
    state = ml.lbfgsState()
    first = None
    for _ in range(60):
        net, state = ml.lbfgsupdate(net, loss_fcn, state)
        first = first if first is not None else state.Loss
    assert isinstance(net, ml.dlnetwork) and state.LineSearchStatus == "completed"
    assert state.Loss < 0.05 * first
    # the state's loss is the returned network's
    np.testing.assert_allclose(float(loss_fcn(net)[0]), state.Loss, rtol=1e-12)


def test_failed_line_search_keeps_the_parameters():
    calls = []

    def nan_loss(w):
        calls.append(1)
        if len(calls) == 1:
            return ml.dlarray(np.array(1.0)), ml.dlarray(np.array([1.0, -1.0]))
        return ml.dlarray(np.array(np.nan)), ml.dlarray(np.array([np.nan, np.nan]))
    w = ml.dlarray(np.array([0.5, 0.5]))
    out, state = ml.lbfgsupdate(w, nan_loss, ml.lbfgsState(), MaxNumLineSearchIterations=4)
    assert out is w and state.LineSearchStatus == "failed"
    assert len(calls) == 1 + 4


def test_display_and_errors():
    state = ml.lbfgsState(HistorySize=5, InitialInverseHessianFactor=2)
    lines = repr(state).splitlines()
    assert lines[0] == "  LBFGSState with properties:"
    assert "    InitialInverseHessianFactor: 2" in lines
    assert "                    HistorySize: 5" in lines
    assert "                           Loss: []" in lines
    with pytest.raises(AttributeError):
        state.HistorySize = 3                   # read-only after creation (MATLAB)
    with pytest.raises(ValueError, match="lbfgsState: HistorySize"):
        ml.lbfgsState(HistorySize=0)
    with pytest.raises(ValueError, match="lbfgsState: InitialInverseHessianFactor"):
        ml.lbfgsState(InitialInverseHessianFactor=-1)
    _, _, loss_fcn = _quadratic()
    w = ml.dlarray(np.zeros((5, 1)))
    with pytest.raises(TypeError, match="lbfgsupdate: solverState must be an lbfgsState"):
        ml.lbfgsupdate(w, loss_fcn, [])
    with pytest.raises(TypeError, match="lbfgsupdate: lossFcn must be a function"):
        ml.lbfgsupdate(w, 3, ml.lbfgsState())
    with pytest.raises(ValueError, match="lbfgsupdate: LineSearchMethod"):
        ml.lbfgsupdate(w, loss_fcn, ml.lbfgsState(), LineSearchMethod="exact")
    with pytest.raises(TypeError, match="lbfgsupdate: the parameters must be a dlnetwork"):
        ml.lbfgsupdate("abc", loss_fcn, ml.lbfgsState())
    with pytest.raises(TypeError, match="lbfgsupdate: lossFcn must return"):
        ml.lbfgsupdate(w, lambda w: 1.0, ml.lbfgsState())
