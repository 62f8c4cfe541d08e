"""dropoutLayer and spatialDropoutLayer (MATLAB classes DropoutLayer, SpatialDropoutLayer).

Prediction is the identity.  Training (``forward`` of a network, ``_forward_train``) is
inverted dropout (MATLAB_SEMANTICS §14.2; documented)::

    keep = rand(maskSize) > Probability          % MATLAB's global stream, ml.rng
    Y    = X .* keep * (1/(1 - Probability))

``dropoutLayer`` draws one number per element of ``X`` (``rand(size(X))``, column-major in
MATLAB's dimension order, so a different mask per channel, observation and time step).
``spatialDropoutLayer`` draws one per channel and observation
(``rand([1,...,C, B,...,1])``, documented R2024a) and drops whole channels, every spatial
position and time step of them.

Package default (the single-precision stream of MATLAB is unknown, §5.2): the uniforms are
MATLAB's ``rand`` doubles (``ml.rand``, bit-identical to MATLAB's double stream) rounded
to single, kept where ``> single(Probability)``
(``ml.package_defaults(dropout_mask="double")`` compares the doubles instead); the product with ``X`` goes through the
differentiable ``times`` so the gradient is ``dY .* keep/(1 - p)``.
"""

__all__ = ["DropoutLayer", "SpatialDropoutLayer", "dropoutLayer", "spatialDropoutLayer"]
import numpy as np

from .. import _defaults, _rng
from .. import _validate as V
from .._display import int2str
from .._props import Layer, Prop, general_props, make_constructor

HYPER = "Hyperparameters"


def _probability(value, where):
    # Current documentation: "a nonnegative number less than 1" (older releases allowed
    # 1, which divides by zero); package default < 1 (§14.2).
    return V.real_scalar(value, where, "a nonnegative number less than 1",
                         lambda x: 0 <= x < 1)


class DropoutLayer(Layer):
    """Dropout layer (MATLAB ``DropoutLayer``): identity in prediction, inverted dropout in
    training."""

    _constructor = "dropoutLayer"
    _summary = ("Dropout layer: identity in predict; in training, zeroes elements with "
                "probability Probability and scales the rest by 1/(1-Probability).")
    _optional_positional = ("Probability",)
    _props = (Prop("Probability", 0.5, _probability,
                   doc="probability of dropping an input element (0 <= p < 1)"),
              *general_props())
    _display = ((None, ("Name",)), (HYPER, ("Probability",)))
    _type_name = ("Dropout", "Dropout")
    _default_name = "dropout"
    _example = "dropoutLayer(0.4, Name='drop1')"
    _example_input = ("SSCB", (4, 5, 3, 2))

    def _description(self):
        return f"{int2str(100 * self._values['Probability'])}% dropout"

    def _output_shape(self, dims, shape, fname):
        return dims, shape

    def _forward(self, X, fname):
        return X

    def _mask_shape(self, X):
        return tuple(X.shape)

    def _forward_train(self, X, fname):
        p = self._values["Probability"]
        if p == 0:
            return X, None
        shape = self._mask_shape(X)
        # rand(shape..., 1): a trailing 1 keeps MATLAB from reading one size n as n×n
        u = _rng.rand(*shape, 1).reshape(shape, order="F")
        if _defaults.get("dropout_mask") == "single":
            keep = u.astype(np.float32) > np.float32(p)
        else:
            keep = u > p
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        mask = keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))
        return X * mask, None


class SpatialDropoutLayer(DropoutLayer):
    """Spatial dropout layer (MATLAB ``SpatialDropoutLayer``, R2024a): drops whole
    channels of each observation in training; identity in prediction."""

    _constructor = "spatialDropoutLayer"
    _summary = ("Spatial dropout layer: identity in predict; in training, zeroes whole "
                "channels of each observation with probability Probability and scales the "
                "rest by 1/(1-Probability).")
    _optional_positional = ()
    _type_name = ("Spatial Dropout", "Spatial Dropout")
    _default_name = "spatialdropout"
    _example = "spatialDropoutLayer(Probability=0.25, Name='spat1')"

    def _description(self):
        return f"{int2str(100 * self._values['Probability'])}% spatial dropout"

    def _check_format(self, X, fname):
        if "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _mask_shape(self, X):
        # rand([1,...,C, B,...,1]): ones except at C and B (documented)
        return tuple(n if d in "CB" else 1 for d, n in zip(X.dims, X.shape))


dropoutLayer = make_constructor(DropoutLayer)
spatialDropoutLayer = make_constructor(SpatialDropoutLayer)
