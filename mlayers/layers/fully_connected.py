"""fullyConnectedLayer (MATLAB class FullyConnectedLayer).

``Y = Weights * X + Bias`` with ``Weights`` OutputSize×InputSize and ``Bias``
OutputSize×1 (MATLAB_SEMANTICS §2.2, §2.3).  Image inputs (SCB, SSCB, SSSCB) are
flattened **column-major** per observation, ``X(:,:,:,n)(:)``, so InputSize = H·W·C and
``X(:,:,1,1) = [1 2; 3 4]`` with ``Weights = [1 10 100 1000]`` gives 4231 (§8 item 7).
The output is CB; CBT sequences are transformed per time step (CBT -> CBT).
"""

__all__ = ["FullyConnectedLayer", "fullyConnectedLayer"]
import math

import numpy as np

from .. import _autodiff, _ops
from .. import _validate as V
from .._initializers import initialize
from .._props import REQUIRED, Layer, Prop, make_constructor
from ..dlarray import dlarray
from ..functional.fc import _relabel, fc_layer, fullyconnect
from ._conv_family import learnable_props

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"


class FullyConnectedLayer(Layer):
    """Fully connected layer (MATLAB ``FullyConnectedLayer``)."""

    _constructor = "fullyConnectedLayer"
    _summary = ("Fully connected layer: Weights*X + Bias, images flattened column-major "
                "per observation.")
    _positional = ("OutputSize",)
    _props = (
        Prop("InputSize", "auto", V.auto_or_positive_int, readonly=True, option=False,
             doc="input elements per observation (H·W·C), 'auto' until known"),
        Prop("OutputSize", REQUIRED, V.positive_int, readonly=True, doc="output size"),
        *learnable_props("OutputSize×InputSize", "OutputSize×1"),
    )
    _display = ((None, ("Name",)),
                (HYPER, ("InputSize", "OutputSize")),
                (LEARN, ("Weights", "Bias")))
    _type_name = ("Fully Connected", "Fully Connected")
    _formats = ("SSCB", "SCB", "SSSCB", "CB", "CBT", "SSC", "SC", "SSSC", "C", "CT")
    _default_name = "fc"
    _example = "fullyConnectedLayer(10, Name='fc1')"
    _example_input = ("SSCB", (4, 3, 2, 5))

    _learnables = ("Weights", "Bias")

    # ------------------------------------------------------------- learnables

    def _learnable_size(self, which):
        n = self._values["InputSize"]
        out = self._values["OutputSize"]
        if which == "Weights":
            return (out, None if n == "auto" else n), "OutputSize×InputSize"
        return (out, 1), "OutputSize×1"

    def _fix_from_learnable(self, which, a):
        """Given Weights fix InputSize (as Weights fix NumChannels in the conv layers)."""
        if which == "Weights" and self._values["InputSize"] == "auto":
            self._values["InputSize"] = int(a.shape[1])

    def initialize(self, input_size=None, *, fname="initialize"):
        """Fix ``InputSize`` (elements per observation) and fill empty learnables.

        Weights are drawn first, from MATLAB's stream, with numIn = InputSize and
        numOut = OutputSize (§2.3).  Returns the layer.
        """
        if input_size is not None:
            n = V.positive_int(input_size, V.Where(fname, "input_size"))
            known = self._values["InputSize"]
            if known not in ("auto", n):
                raise ValueError(f"{fname}: the input of {self._label()} must have "
                                 f"InputSize ({known}) elements per observation, got {n}")
            self._values["InputSize"] = n
        for which in ("Weights", "Bias"):
            if self._values[which] is not None:
                continue
            size, _ = self._learnable_size(which)
            if None in size:
                raise ValueError(f"{fname}: input_size must be given to initialize "
                                 f"{self._label()}, whose InputSize is 'auto', got None")
            self._values[which] = initialize(
                self._values[which + "Initializer"], size, self._values["InputSize"],
                self._values["OutputSize"], fname, which + "Initializer")
        return self

    @staticmethod
    def _flat_size(dims, shape):
        """Input elements per observation (per time step for sequences)."""
        c = dims.index("C")
        return math.prod(shape[:c + 1])

    def _initialize_for(self, dims, shape, fname):
        n = self._flat_size(dims, shape)
        if self._values["InputSize"] == n and self._values["Weights"] is not None \
                and self._values["Bias"] is not None:
            return self                 # (predict's path: nothing to fix or fill)
        return self.initialize(n, fname=fname)

    def _output_shape(self, dims, shape, fname):
        c = dims.index("C")
        rest_dims = dims[c + 1:]
        return "C" + rest_dims, (self._values["OutputSize"],) + tuple(shape[c + 1:])

    # ------------------------------------------------------------- running

    def _forward(self, X, fname):
        """``fullyconnect`` with the layer's Weights and Bias (traced ones too)."""
        dims = X.dims
        self._initialize_for(dims, X.shape, fname)
        out_dims = "C" + dims[dims.index("C") + 1:]
        if not _autodiff.recording() and type(X) is dlarray:
            run = self._bound(X, fname)
            if run is not None:
                return dlarray._from_canonical(run(X._data), out_dims)
        W, b = self._values["Weights"], self._values["Bias"]
        # (the layer checked its weights and bias: the lean operation, unless they carry
        # labels, which only fullyconnect reads)
        lean = type(X) is dlarray and "C" in X._dims and not any(
            isinstance(p, dlarray) and p._dims for p in (W, b))
        Y = fc_layer(X, W, b) if lean else fullyconnect(X, W, b)
        return Y if Y.dims == out_dims else _relabel(Y, out_dims)     # 'C' for 'SSC'

    def _predict_fn(self, specs, fname):
        """The product straight away for untraced float weights of the input's dtype
        (the functional operation's checks and backward serve training); the features
        S.., C come first in X."""
        (dims, shape, dtype), = specs
        v = self._values
        if "B" not in dims or any(type(v[k]) is not np.ndarray or v[k].dtype != dtype
                                  for k in ("Weights", "Bias")) \
                or v["InputSize"] != self._flat_size(dims, shape):
            return None
        c = dims.index("C")
        obs = shape[c + 1:]
        flat = (math.prod(shape[:c + 1]), math.prod(obs))

        def operands():
            w, b = self._values["Weights"], self._values["Bias"]
            return (w.reshape((w.shape[0], -1), order="F"),
                    np.ascontiguousarray(b.reshape(-1)))
        # (kept while they are views, which see changes made in place)
        kept = operands()
        if not (np.may_share_memory(kept[0], v["Weights"])
                and np.may_share_memory(kept[1], v["Bias"])):
            kept = None

        out = kept[0].shape[:1] + obs if kept else None
        product = kept and _ops.matmul_fn(kept[0], flat[1], kept[1])
        if product:
            run = lambda x: product(x).reshape(out, order="F")    # noqa: E731
            run.program = product.program
            return run

        def run(x):
            w, b = kept or operands()
            y = _ops.matmul(w, x.reshape(flat, order="F"), b)
            return y.reshape(y.shape[:1] + obs, order="F")
        return run

    def _description(self):
        return f"{self._values['OutputSize']} fully connected layer"


fullyConnectedLayer = make_constructor(FullyConnectedLayer)
