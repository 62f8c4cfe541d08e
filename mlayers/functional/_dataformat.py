"""MATLAB's ``DataFormat`` option of the functional operations, forward and backward.

An operation given unformatted data and ``DataFormat=fmt`` computes on the formatted
(canonical) view and returns unformatted data in ``fmt``'s order (MATLAB's rule); its
backward receives the output gradient in that order and returns the input gradient in
the order of the data it was given.  These three maps are the whole story.
"""
import numpy as np

from ..dlarray import as_formatted, dlarray, stripdims


def finish(Y, data_format):
    """The operation's result: ``Y`` itself (``data_format`` None), or unformatted in
    ``data_format`` order (``""``: unformatted in canonical order)."""
    return Y if data_format is None else stripdims(Y, data_format)


def output_grad(dy, y_shape, data_format, fname):
    """The gradient of a :func:`finish`-ed result, back in canonical order."""
    dy = np.asarray(dy)
    if data_format:
        dy = as_formatted(dy, data_format, fname).data
    return dy.reshape(y_shape)


def input_grad(X, dx, dims, data_format):
    """dL/dX (``dx`` canonical, labelled ``dims``) in the stored order of ``X``; None
    when ``X`` is not a dlarray (a plain array is a constant)."""
    if not isinstance(X, dlarray):
        return None
    if X.dims or not data_format:
        return np.reshape(dx, X.shape)
    return stripdims(dlarray._from_canonical(dx, dims), data_format).data.reshape(X.shape)
