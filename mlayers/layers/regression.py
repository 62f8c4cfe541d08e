"""regressionLayer (MATLAB class RegressionOutputLayer).

An output layer holds the loss used in training: half-mean-squared-error
(MATLAB_SEMANTICS §16.5, documented; from MathWorks source)::

    loss = sum(0.5 * (Y - T).^2) / N         over responses, pixels and time steps

with ``N`` the number of observations (the size of B); the sum is **not** divided by the
number of responses.  It plays no role in prediction: MATLAB's ``predict`` does not run
output layers, ``predict`` on the layer is the identity and ``dlnetwork`` drops a trailing
output layer (package default, as for ``classificationLayer``).

``_loss(Y, T)`` is what training calls: ``mse(Y, T)`` of :mod:`mlayers.functional.losses`
(``sum((Y-T).^2)/(2N)``, the same value), a traced scalar dlarray inside ``dlfeval``.
"""

__all__ = ["RegressionOutputLayer", "regressionLayer"]
import numpy as np

from .._props import Layer, Prop, general_props, make_constructor
from ..functional import losses as _losses

HYPER = "Hyperparameters"


def _response_names(value, where):
    """A list of unique response names (text); ``[]``/``{}`` for none."""
    if isinstance(value, (str, np.str_)):
        value = [value]
    if isinstance(value, np.ndarray) and value.dtype.kind in "US":
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple)) or \
            not all(isinstance(v, (str, np.str_)) for v in value) or \
            len(set(value)) != len(value):
        raise where.error("a list of unique response names (text)", value, TypeError)
    return [str(v) for v in value]


class RegressionOutputLayer(Layer):
    """Regression output layer (MATLAB ``RegressionOutputLayer``): half-mean-squared-error
    loss."""

    _constructor = "regressionLayer"
    _summary = ("Regression output layer (half-mean-squared-error loss); the identity in "
                "predict, dropped by dlnetwork.")
    _props = (
        Prop("ResponseNames", [], _response_names,
             doc="names of the responses ({} until training sets them)"),
        Prop("LossFunction", "mean-squared-error", readonly=True, option=False,
             doc="'mean-squared-error'"),
        *general_props(output_names=()),
    )
    _display = ((None, ("Name", "ResponseNames")), (HYPER, ("LossFunction",)))
    _type_name = ("Regression Output", "Regression Output")
    _default_name = "regressionoutput"
    _example = "regressionLayer(Name='routput')"
    _example_input = ("CB", (3, 4))
    _is_output_layer = True
    _output_kind = "regression"          # (the loss training takes from it)

    def _description(self):
        names = self._values["ResponseNames"]
        if not names:
            return "mean-squared-error"
        if len(names) == 1:
            return f"mean-squared-error with response '{names[0]}'"
        return (f"mean-squared-error with '{names[0]}' and {len(names) - 1} other "
                f"responses")

    def _output_shape(self, dims, shape, fname):
        return dims, shape

    def _forward(self, X, fname):
        return X

    def _loss(self, Y, T):
        """Training loss ``sum(0.5*(Y-T).^2)/N`` as a scalar dlarray (traced inside
        ``dlfeval``).

        Parameters
        ----------
        Y : dlarray
            The network's formatted output (responses along C; S, T as they come).
        T : numpy array or dlarray
            Targets of Y's size, in Y's stored (canonical) order when unformatted.
        """
        return _losses.mse(Y, T)


regressionLayer = make_constructor(RegressionOutputLayer)
