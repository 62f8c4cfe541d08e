"""MATLAB's ``predict``: one entry point for layers now and networks later.

``predict(obj, X, ...)`` dispatches on the type of ``obj`` through a small registry, so a
module that defines a new runnable type (``dlnetwork``) registers it without this module
importing it::

    from mlayers._predict import register
    register(dlnetwork, lambda net, X, *args, **kw: net._predict(X, *args, **kw))
"""
from ._props import Layer

_HANDLERS = {}
_RESOLVED = {}      # type -> handler, found through the type's MRO once


def register(cls, handler):
    """Make ``predict(obj, ...)`` call ``handler(obj, ...)`` for instances of ``cls``."""
    _HANDLERS[cls] = handler
    _RESOLVED.clear()


def predict(obj, X, *args, **kwargs):
    """Run a layer or network on input ``X`` (MATLAB's ``Y = predict(layer_or_net, X)``).

    Parameters
    ----------
    obj : layer or registered network type
    X : dlarray
        A formatted dlarray, or unformatted data with ``DataFormat=...`` (the output is
        then unformatted, in the same label order, as in MATLAB).

    Returns
    -------
    dlarray
        Formatted output (the layer's output format).

    Examples
    --------
    >>> layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    >>> Y = ml.predict(layer, ml.dlarray(np.random.rand(100, 3, 1), "SCB"))
    >>> Y.dims, Y.shape
    ('SCB', (407, 96, 1))
    """
    handler = _RESOLVED.get(type(obj))
    if handler is None:
        handler = next((_HANDLERS[c] for c in type(obj).__mro__ if c in _HANDLERS), None)
        if handler is not None:
            _RESOLVED[type(obj)] = handler
    if handler is not None:
        return handler(obj, X, *args, **kwargs)
    raise TypeError(f"predict: the first argument must be a layer or a network, got "
                    f"{type(obj).__name__}")


register(Layer, Layer.predict)
