"""dlfeval / dlgradient: MATLAB's documented goldens, rules and errors."""
import numpy as np
import pytest

import mlayers as ml
from mlayers._table import Table

from gradcheck import check


def test_rosenbrock_golden():
    # MATLAB dlgradient doc: value 104, gradient [396 200] at [-1 2]
    def rosenbrock(x):
        y = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        return y, ml.dlgradient(y, x)

    y, g = ml.dlfeval(rosenbrock, ml.dlarray([-1.0, 2.0]))
    assert float(ml.extractdata(y)) == 104.0
    np.testing.assert_array_equal(ml.extractdata(g), [396.0, 200.0])
    assert g.dims == "" and g.shape == (2,)


def test_sum_all_golden():
    # MATLAB doc: gradient of sum(s.*x.^2,'all') at x = [1 2; 3 4], s = [0 0; 0 1]
    x = ml.dlarray(np.array([[1.0, 2.0], [3.0, 4.0]]))
    s = np.array([[0.0, 0.0], [0.0, 1.0]])
    g = ml.dlfeval(lambda x: ml.dlgradient(ml.sum(s * x ** 2, "all"), x), x)
    np.testing.assert_array_equal(ml.extractdata(g), [[0.0, 0.0], [0.0, 8.0]])


def test_outside_dlfeval_raises():
    x = ml.dlarray(np.ones(3))
    with pytest.raises(ValueError, match="dlgradient: .*inside a function evaluated by dlfeval"):
        ml.dlgradient(ml.sum(x), x)


def test_non_scalar_raises():
    def f(x):
        return ml.dlgradient(x * 2, x)
    with pytest.raises(ValueError, match="dlgradient: value to differentiate is non-scalar"):
        ml.dlfeval(f, ml.dlarray(np.ones(3)))


def test_not_a_dlarray_raises():
    with pytest.raises(TypeError, match="dlgradient: the value to differentiate"):
        ml.dlfeval(lambda x: ml.dlgradient(3.0, x), ml.dlarray(np.ones(2)))


def test_untraced_variable_raises():
    # a dlarray created inside the function is not a traced variable (package default)
    def f(x):
        z = ml.dlarray(np.ones(2))
        return ml.dlgradient(ml.sum(x * 2, "all"), z)
    with pytest.raises(ValueError, match="dlgradient: the variables must be traced"):
        ml.dlfeval(f, ml.dlarray(np.ones(2)))


def test_unused_input_gets_zeros():
    def f(x, y):
        return ml.dlgradient(ml.sum(x * 3, "all"), x, y)
    gx, gy = ml.dlfeval(f, ml.dlarray(np.ones((2, 3)), "CB"), ml.dlarray(np.ones(4)))
    np.testing.assert_array_equal(ml.extractdata(gx), 3 * np.ones((2, 3)))
    assert gx.dims == "CB"
    np.testing.assert_array_equal(ml.extractdata(gy), np.zeros(4))


def test_outputs_untraced_and_extractdata_cuts():
    def f(x):
        y = x * 2
        z = ml.dlarray(ml.extractdata(y)) * x     # the extractdata path is a constant
        g = ml.dlgradient(ml.sum(z, "all"), x)
        return y, g
    y, g = ml.dlfeval(f, ml.dlarray(np.array([1.0, 2.0])))
    assert y._node is None and g._node is None
    np.testing.assert_array_equal(ml.extractdata(g), [2.0, 4.0])     # d(c*x)/dx = c = 2x


def test_structures_mirrored():
    def f(p):
        loss = ml.sum(p["w"] * p["w"], "all") + ml.sum(p["list"][0] * 3, "all")
        return ml.dlgradient(loss, p)
    p = {"w": ml.dlarray(np.array([1.0, -2.0])), "list": [ml.dlarray(np.ones(3))]}
    g = ml.dlfeval(f, p)
    assert set(g) == {"w", "list"} and isinstance(g["list"], list)
    np.testing.assert_array_equal(ml.extractdata(g["w"]), [2.0, -4.0])
    np.testing.assert_array_equal(ml.extractdata(g["list"][0]), [3.0, 3.0, 3.0])


def test_table_gradient_is_a_table():
    t = Table(("Layer", "Parameter", "Value"),
              [("fc", "Weights", ml.dlarray(np.ones((2, 2)))),
               ("fc", "Bias", ml.dlarray(np.zeros((2, 1))))])

    def f(t):
        loss = ml.sum(t.Value[0] * 5, "all") + ml.sum(t.Value[1] ** 2, "all")
        return ml.dlgradient(loss, t)
    g = ml.dlfeval(f, t)
    assert isinstance(g, Table) and g.Layer == ["fc", "fc"]
    assert g.Parameter == ["Weights", "Bias"]
    np.testing.assert_array_equal(ml.extractdata(g.Value[0]), 5 * np.ones((2, 2)))
    np.testing.assert_array_equal(ml.extractdata(g.Value[1]), np.zeros((2, 1)))


def test_several_gradients_and_retain_data():
    def f(x):
        y = ml.sum(x ** 3, "all")
        g1 = ml.dlgradient(y, x, RetainData=True)
        g2 = ml.dlgradient(y, x, "RetainData", False)
        return g1, g2
    g1, g2 = ml.dlfeval(f, ml.dlarray(np.array([1.0, 2.0])))
    np.testing.assert_array_equal(ml.extractdata(g1), [3.0, 12.0])
    np.testing.assert_array_equal(ml.extractdata(g2), [3.0, 12.0])


def test_nested_dlfeval_has_its_own_tape():
    def inner(x):
        return ml.dlgradient(ml.sum(x * x, "all"), x)

    def outer(x):
        gi = ml.dlfeval(inner, x)              # untraced result (MATLAB: outputs untraced)
        y = ml.sum(x * 4, "all")
        return gi, ml.dlgradient(y, x)
    gi, go = ml.dlfeval(outer, ml.dlarray(np.array([1.0, 3.0])))
    np.testing.assert_array_equal(ml.extractdata(gi), [2.0, 6.0])
    np.testing.assert_array_equal(ml.extractdata(go), [4.0, 4.0])


def test_nothing_recorded_outside_dlfeval():
    from mlayers import _autodiff
    x = ml.dlarray(np.ones(3))
    y = ml.sum(x * x + 1, "all")
    assert y._node is None and not _autodiff.recording()


def test_dlfeval_rejects_non_callable():
    with pytest.raises(TypeError, match="dlfeval: fun must be a function"):
        ml.dlfeval(3, ml.dlarray(np.ones(2)))


def test_intermediate_value_gradient():
    def f(x):
        h = x * 2
        y = ml.sum(h ** 2, "all")
        return ml.dlgradient(y, h)
    g = ml.dlfeval(f, ml.dlarray(np.array([1.0, -1.0])))
    np.testing.assert_array_equal(ml.extractdata(g), [4.0, -4.0])


def test_gradient_dtype_follows_variable(dtype):
    x = ml.dlarray(np.ones((2, 2), dtype=dtype), "SC")
    g = ml.dlfeval(lambda x: ml.dlgradient(ml.sum(x * x, "all"), x), x)
    assert ml.extractdata(g).dtype == dtype and g.dims == "SC"


def test_relabel_and_stripdims_are_traced():
    x = np.arange(6.0).reshape(2, 3)

    def f(X):
        Y = ml.dlarray(X, "TC")                   # relabel: stored as C x T (3 x 2)
        Z = ml.stripdims(Y, "TC")                 # back to 2 x 3
        w = np.arange(6.0).reshape(2, 3)
        return ml.sum(Z * w, "all") + ml.sum(Y * Y, "all")
    errs = check(f, [x], [""])
    assert errs[0] < 1e-8


def test_untraced_value_raises():
    # MATLAB: "Value to differentiate is not traced" (the usual cause: extractdata)
    def f(x):
        y = ml.dlarray(np.sum(ml.extractdata(x) ** 2))
        return ml.dlgradient(y, x)
    with pytest.raises(ValueError, match="dlgradient: the value to differentiate is not traced"):
        ml.dlfeval(f, ml.dlarray(np.ones(3)))


def test_tapes_are_per_thread():
    import threading
    results, errors = [], []
    barrier = threading.Barrier(4)

    def f(x):
        barrier.wait()                       # all four threads inside dlfeval at once
        y = ml.sum(x * x, "all")
        return ml.dlgradient(y, x)

    def work(k):
        try:
            g = ml.dlfeval(f, ml.dlarray(np.full(3, float(k))))
            results.append((k, ml.extractdata(g).copy()))
        except Exception as exc:            # noqa: BLE001  (reported below)
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k, g in results:
        np.testing.assert_array_equal(g, np.full(3, 2.0 * k))


def test_table_column_element_assignment_writes_back():
    # MATLAB: gradients.Value{1} = ... ; Python: gradients.Value[0] = ...
    t = Table(("Layer", "Parameter", "Value"), [("fc", "Weights", ml.dlarray(np.ones(2)))])
    t.Value[0] = ml.dlarray(np.zeros(2))
    np.testing.assert_array_equal(ml.extractdata(t.Value[0]), np.zeros(2))
    with pytest.raises(TypeError, match="Table: Value must be a sequence"):
        t.Value = 3
