"""MATLAB's ``nnet`` namespace, for custom layers: ``ml.nnet.layer.Layer``,
``ml.nnet.layer.Formattable``, ``ml.nnet.layer.Acceleratable`` (see
:mod:`mlayers.layers.custom`)."""
from . import layer

__all__ = ["layer"]
