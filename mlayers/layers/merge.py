"""The merge layers: additionLayer, multiplicationLayer, concatenationLayer,
depthConcatenationLayer (MATLAB classes AdditionLayer, MultiplicationLayer,
ConcatenationLayer, DepthConcatenationLayer).

Each has ``NumInputs`` inputs named ``in1 ... inN`` and one output (MATLAB_SEMANTICS
§14.2, from MathWorks source)::

    additionLayer(n)             in1 + in2 + ... (in input order); equal formats and sizes
    multiplicationLayer(n)       in1 .* in2 .* ... with implicit expansion; equal formats
    depthConcatenationLayer(n)   concatenation along the channel dimension C
    concatenationLayer(dim, n)   concatenation along dimension dim of the stored
                                 (canonical) array: 3 = C for SSCB, 1 = C for CB

Inputs must share one format; every other dimension must agree (implicit expansion for
multiplication).  Forwards are the differentiable operations (``plus``, ``times``,
``cat``), so the layers are differentiable inside ``dlfeval`` with no code of their own.
"""

__all__ = ["AdditionLayer", "MultiplicationLayer", "ConcatenationLayer",
           "DepthConcatenationLayer", "additionLayer", "multiplicationLayer",
           "concatenationLayer", "depthConcatenationLayer"]

import numpy as np

from .. import _ops_norm, _validate as V
from .._display import format_size
from .._props import REQUIRED, Layer, Prop, make_constructor
from ..functional.arith import plus, plus_relu, times
from ..functional.mathfun import cat


# bytes one input takes at least: its name in InputNames and its connection in a graph
_BYTES_PER_INPUT = 1024


def _num_inputs(value, where):
    c = "an integer greater than or equal to 2"
    # through the central integer check: its bound keeps 2**63 from being accepted
    n = int(V.integers(V.scalar(value, where, c), where, c, value, 2)[0])
    # bounded by memory: InputNames lists in1..inN, so 2^31 inputs (the integer check's
    # bound) would build 2^31 names (hundreds of GB) the first time they are asked for
    most = V.memory_limit() // _BYTES_PER_INPUT
    if n > most:
        raise where.error(f"{c} and at most {most} (each input takes at least "
                          f"{_BYTES_PER_INPUT} bytes for its name and connection; the "
                          f"memory limit is {V.memory_limit()} bytes)", value)
    return n


def _dim(value, where):
    return V.positive_int(value, where)


def _props(*extra):
    def ins(layer):
        return [f"in{k}" for k in range(1, layer._values["NumInputs"] + 1)]
    return (
        Prop("Name", "", V.text, doc="layer name"),
        *extra,
        Prop("NumInputs", REQUIRED, _num_inputs, readonly=True, option=False,
             doc="number of inputs (>= 2)"),
        Prop("InputNames", None, get=ins, option=False, doc="input names in1..inN"),
        Prop("NumOutputs", 1, readonly=True, option=False, doc="number of outputs"),
        Prop("OutputNames", None, get=lambda layer: ["out"], option=False,
             doc="output names"),
    )


def _size_text(shape):
    return format_size(shape)


class _Merge(Layer):
    """A layer with inputs in1..inN and one output."""

    _positional = ("NumInputs",)
    _props = _props()
    _display = ((None, ("Name", "NumInputs", "InputNames")),)
    _word = ""

    def _description(self):
        return f"{self._word} of {self._values['NumInputs']} inputs"

    def _check_format(self, X, fname):
        pass

    def _check_inputs(self, specs, fname):
        """Formats and sizes of the inputs ``[(dims, shape)]``; returns the format."""
        n = self._values["NumInputs"]
        if len(specs) != n:
            raise ValueError(f"{fname}: {self._label()} has {n} inputs, got {len(specs)}")
        dims0 = specs[0][0]
        for k, (dims, _) in enumerate(specs[1:], start=2):
            if dims != dims0:
                raise ValueError(f"{fname}: the inputs of {self._label()} must have the same "
                                 f"format, got '{dims0}' (in1) and '{dims}' (in{k})")
        return dims0

    def _mismatch(self, specs, fname, rule):
        sizes = ", ".join(f"{_size_text(s)} (in{k})" for k, (_, s) in enumerate(specs, 1))
        return ValueError(f"{fname}: the inputs of {self._label()} must {rule}, got "
                          f"{sizes}")

    def _run(self, inputs, training, fname):
        self._output_shapes([(x._dims, x.shape) for x in inputs], fname)
        return [self._merge(inputs, fname)], None

    def _forward(self, X, fname):
        raise ValueError(f"{fname}: {self._label()} has {self._values['NumInputs']} inputs; "
                         f"run it in a network")


class AdditionLayer(_Merge):
    """Addition layer (MATLAB ``AdditionLayer``): element-wise sum of its inputs."""

    _constructor = "additionLayer"
    _summary = "Addition layer: element-wise sum of NumInputs inputs of one size."
    _type_name = ("Addition", "Addition")
    _default_name = "addition"
    _word = "Element-wise addition"
    _example = "additionLayer(2, Name='add')"

    def _output_shapes(self, specs, fname):
        dims = self._check_inputs(specs, fname)
        shape0 = tuple(specs[0][1])
        if any(tuple(s) != shape0 for _, s in specs[1:]):
            raise self._mismatch(specs, fname, "have the same size")
        return [(dims, shape0)]

    def _merge(self, xs, fname):
        y = xs[0]
        for x in xs[1:]:
            y = plus(y, x)
        return y

    def _run_rectified(self, inputs, fname):
        """``relu`` of the sum, the ReLU in the last addition's pass (the network's
        fusion of the ReLU that alone reads this layer, ``dlnetwork._relu_fusions``)."""
        self._output_shapes([(x._dims, x.shape) for x in inputs], fname)
        return plus_relu(self._merge(inputs[:-1], fname), inputs[-1]), None

    def _predict_fn(self, specs, fname, rectify=False):
        """Inputs of one format, size and dtype: plus's sums, in order, without its operand
        work; ``rectify``: the sum's ReLU in the same pass (the inference program fuses a
        ReLU that alone reads the sum)."""
        if len(specs) < 2 or any(s != specs[0] for s in specs[1:]):
            return None

        def run(*xs):
            y = xs[0]
            for k in range(1, len(xs)):
                y = _ops_norm.add(y, xs[k], rectify and k == len(xs) - 1)
            return y
        return run


class MultiplicationLayer(_Merge):
    """Multiplication layer (MATLAB ``MultiplicationLayer``): element-wise product of its
    inputs, with implicit expansion."""

    _constructor = "multiplicationLayer"
    _summary = "Multiplication layer: element-wise product of NumInputs inputs."
    _type_name = ("Multiplication", "Multiplication")
    _default_name = "multiplication"
    _word = "Element-wise multiplication"
    _example = "multiplicationLayer(2, Name='mul')"

    def _output_shapes(self, specs, fname):
        dims = self._check_inputs(specs, fname)
        try:
            shape = np.broadcast_shapes(*(tuple(s) for _, s in specs))
        except ValueError:
            raise self._mismatch(specs, fname, "have compatible sizes (each dimension "
                                 "equal or 1)") from None
        return [(dims, tuple(shape))]

    def _merge(self, xs, fname):
        y = xs[0]
        for x in xs[1:]:
            y = times(y, x)
        return y


class _Concat(_Merge):

    def _axis(self, dims, fname):
        raise NotImplementedError

    def _output_shapes(self, specs, fname):
        dims = self._check_inputs(specs, fname)
        ax = self._axis(dims, fname)
        shape0 = tuple(specs[0][1])
        rest = shape0[:ax] + shape0[ax + 1:]
        if any(tuple(s)[:ax] + tuple(s)[ax + 1:] != rest for _, s in specs[1:]):
            raise self._mismatch(specs, fname, f"have the same size in every dimension but "
                                 f"dimension {ax + 1}")
        total = sum(int(s[ax]) for _, s in specs)
        return [(dims, shape0[:ax] + (total,) + shape0[ax + 1:])]

    def _merge(self, xs, fname):
        return cat(self._axis(xs[0]._dims, fname) + 1, *xs)


class DepthConcatenationLayer(_Concat):
    """Depth concatenation layer (MATLAB ``DepthConcatenationLayer``): concatenates its
    inputs along the channel dimension."""

    _constructor = "depthConcatenationLayer"
    _summary = "Depth concatenation layer: concatenation along the channel dimension C."
    _type_name = ("Depth concatenation", "Depth concatenation")
    _default_name = "depthcat"
    _word = "Depth concatenation"
    _example = "depthConcatenationLayer(2, Name='cat')"

    def _axis(self, dims, fname):
        if "C" not in dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{dims}'")
        return dims.index("C")


class ConcatenationLayer(_Concat):
    """Concatenation layer (MATLAB ``ConcatenationLayer``): concatenates its inputs along
    dimension ``Dim`` of the stored (canonical) array."""

    _constructor = "concatenationLayer"
    _summary = "Concatenation layer: concatenation along dimension Dim."
    _positional = ("Dim", "NumInputs")
    _props = _props(Prop("Dim", REQUIRED, _dim, readonly=True, option=False,
                         doc="concatenation dimension (1-based, stored order)"))
    _display = ((None, ("Name", "Dim", "NumInputs", "InputNames")),)
    _type_name = ("Concatenation", "Concatenation")
    _default_name = "concat"
    _example = "concatenationLayer(3, 2, Name='concat')"

    def _description(self):
        return (f"Concatenation of {self._values['NumInputs']} inputs along dimension "
                f"{self._values['Dim']}")

    def _axis(self, dims, fname):
        d = self._values["Dim"]
        if d > len(dims):
            raise ValueError(f"{fname}: Dim of {self._label()} ({d}) must be at most the "
                             f"number of dimensions of the input format '{dims}' "
                             f"({len(dims)})")
        return d - 1


additionLayer = make_constructor(AdditionLayer)
multiplicationLayer = make_constructor(MultiplicationLayer)
concatenationLayer = make_constructor(ConcatenationLayer)
depthConcatenationLayer = make_constructor(DepthConcatenationLayer)
