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
