"""``nnet.layer``: the base class and mixins of MATLAB custom layers::

    classdef myLayer < nnet.layer.Layer & nnet.layer.Formattable      % MATLAB
    class myLayer(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):    # Python
"""
from ..layers.custom import (Acceleratable, CustomClassificationLayer as ClassificationLayer,
                             CustomLayer as Layer, CustomRegressionLayer as RegressionLayer,
                             Formattable)

__all__ = ["Layer", "Formattable", "Acceleratable", "ClassificationLayer", "RegressionLayer"]
