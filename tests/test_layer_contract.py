"""Contract test: every layer the package exports is constructible from its documentation
example, displays, runs predict on a small input, and rejects bad values naming the option.

It walks ``mlayers._props.LAYER_CLASSES``, so layers added later are covered as soon as
they are exported with ``_example`` (and ``_example_input`` if they run).
"""
import numpy as np
import pytest

import mlayers as ml
from mlayers._props import LAYER_CLASSES, ReadOnlyPropertyError

CLASSES = [c for c in LAYER_CLASSES if c.__module__.startswith("mlayers.")]


def make(cls):
    return eval("ml." + cls._example, {"ml": ml, "np": np})


def example_arguments(cls):
    """The (args, kwargs) of a layer's documentation example."""
    class Recorder:
        def __getattr__(self, name):
            return lambda *args, **kwargs: (args, kwargs)
    return eval("ml." + cls._example, {"ml": Recorder(), "np": np})


@pytest.fixture(params=CLASSES, ids=lambda c: c._constructor)
def cls(request):
    return request.param


def test_exported_by_matlab_name(cls):
    assert getattr(ml, cls._constructor).__name__ == cls._constructor
    assert getattr(ml, cls.__name__) is cls
    assert cls._constructor in ml.__all__ and cls.__name__ in ml.__all__
    assert cls._example, f"{cls.__name__} needs an _example"
    doc = getattr(ml, cls._constructor).__doc__
    assert cls._constructor in doc and "Name-value options" in doc


def test_constructs_and_displays(cls, capsys):
    layer = make(cls)
    assert type(layer) is cls
    text = repr(layer)
    assert text.startswith(f"  {cls.__name__} with properties:\n\n")
    assert text.endswith("\n  Show all properties\n") == cls._has_footer()
    layer.display("layer")
    assert capsys.readouterr().out == "layer = \n\n" + text + "\n"
    layer.show_all_properties()
    listing = capsys.readouterr().out
    for name in ml.properties(layer):
        assert f" {name}: " in listing
    row = layer._layer_array_row()
    assert len(row) == 3 and all(isinstance(s, str) for s in row) and row[1]
    assert repr(ml.layer_array([layer, make(cls)])).startswith("  2×1 Layer array with layers:")


def test_predicts_small_input(cls):
    if cls._example_input is None:
        pytest.skip("layer has no prediction")
    ml.rng(0)
    layer = make(cls)
    fmt, shape = cls._example_input
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    Y = ml.predict(layer, ml.dlarray(x, fmt))
    assert isinstance(Y, ml.dlarray) and Y.dims and Y.dtype == np.float32
    assert np.all(np.isfinite(Y.data))
    Y2 = layer.predict(ml.dlarray(x, fmt))                # same layer, now initialized
    np.testing.assert_array_equal(Y.data, Y2.data)


def test_rejects_bad_values_naming_the_option(cls):
    layer = make(cls)
    args, kwargs = example_arguments(cls)
    ctor = getattr(ml, cls._constructor)
    for name in cls._option_names:
        with pytest.raises((TypeError, ValueError)) as e:
            ctor(*args, **{**kwargs, name: object()})
        assert str(e.value).startswith(f"{cls._constructor}: {name}"), str(e.value)
        spec = cls._by_name[name]
        if spec.attribute:
            with pytest.raises((TypeError, ValueError)) as e:
                setattr(layer, name, object())
            assert str(e.value).startswith(f"{cls.__name__}: {name}"), str(e.value)


def test_read_only_properties_refuse_assignment(cls):
    layer = make(cls)
    for spec in cls._props:
        if spec.attribute and (spec.readonly or (spec.get is not None and spec.set is None)):
            with pytest.raises(ReadOnlyPropertyError, match=f"^{cls.__name__}: {spec.name} "
                                                            "is read-only$"):
                setattr(layer, spec.name, getattr(layer, spec.name))


def test_unknown_option_and_attribute(cls):
    args, kwargs = example_arguments(cls)
    with pytest.raises(TypeError, match=f"{cls._constructor}: unknown name 'NoSuchOption'"):
        getattr(ml, cls._constructor)(*args, NoSuchOption=1, **kwargs)
    with pytest.raises(AttributeError, match="unrecognized property"):
        make(cls).NoSuchProperty = 1


# --------------------------------------------------------------------------- traced forward

def _learnable_names(layer):
    return [n for n in type(layer)._learnable_names()
            if isinstance(layer._values.get(n), np.ndarray) and layer._values[n].size]


def _traced_copy(layer, params):
    """The network's traced-forward contract: a copy whose _values hold traced dlarrays."""
    import copy
    clone = copy.copy(layer)
    object.__setattr__(clone, "_values", dict(layer._values))
    object.__setattr__(clone, "_state", dict(layer._state))
    object.__setattr__(clone, "_memo", {})
    clone._values.update(params)
    return clone


def test_forward_inside_dlfeval_matches_finite_differences(cls):
    """Each layer's forward inside dlfeval: the gradient of sum(Y .* R) with respect to the
    input and to every learnable agrees with central differences (float64)."""
    if cls._example_input is None:
        pytest.skip("layer has no single-input prediction")
    ml.rng(0)
    layer = make(cls)
    fmt, shape = cls._example_input
    gen = np.random.default_rng(1)
    x = gen.standard_normal(shape)
    layer.predict(ml.dlarray(x.astype(np.float32), fmt))         # initializes learnables
    names = _learnable_names(layer)
    params = {n: ml.dlarray(layer._values[n].astype(np.float64)) for n in names}
    y0 = layer._run([ml.dlarray(x, fmt)], False, "forward")[0][0]
    r = gen.standard_normal(y0.shape)

    def objective(X, P):
        Y = _traced_copy(layer, P)._run([X], False, "forward")[0][0]
        assert Y.dims == y0.dims
        return ml.sum(Y * r, "all")

    def model(X, P):
        loss = objective(X, P)
        return loss, ml.dlgradient(loss, X, P)

    loss, (gx, gp) = ml.dlfeval(model, ml.dlarray(x, fmt), params)
    value = lambda X, P: float(ml.extractdata(objective(X, P)))      # noqa: E731
    np.testing.assert_allclose(float(ml.extractdata(loss)), np.sum(y0.data * r), rtol=1e-12)

    def check(grad, base, set_value):
        flat = base.reshape(-1)
        for k in gen.choice(flat.size, size=min(6, flat.size), replace=False):
            h = 1e-6 * max(1.0, abs(flat[k]))
            up, down = flat.copy(), flat.copy()
            up[k] += h
            down[k] -= h
            fd = (set_value(up.reshape(base.shape)) - set_value(down.reshape(base.shape))) \
                / (2 * h)
            g = np.asarray(grad).reshape(-1)[k]
            assert abs(g - fd) <= 1e-6 * max(1.0, abs(fd)), (cls.__name__, k, g, fd)

    check(ml.extractdata(gx), ml.dlarray(x, fmt).data,
          lambda v: value(ml.dlarray._from_canonical(v, fmt), params))
    for n in names:
        base = layer._values[n].astype(np.float64)
        check(ml.extractdata(gp[n]), base,
              lambda v, n=n: value(ml.dlarray(x, fmt), {**params, n: ml.dlarray(v)}))


def test_output_layers_have_a_loss(cls):
    """Output layers declare _loss(Y, T) -> scalar dlarray (what training calls)."""
    if not getattr(cls, "_is_output_layer", False):
        pytest.skip("not an output layer")
    layer = make(cls)
    y = np.random.default_rng(2).random((3, 4)) + 0.1
    loss = layer._loss(ml.dlarray(y, "CB"), np.eye(3)[:, [0, 1, 2, 0]])
    assert isinstance(loss, ml.dlarray) and loss.data.size == 1 and not loss.dims
