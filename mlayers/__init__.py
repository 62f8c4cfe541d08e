"""mlayers: MATLAB's Deep Learning Toolbox layers in Python, with MATLAB's API and numbers.

    import mlayers as ml
    layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    Y = ml.predict(layer, ml.dlarray(x, "SCB"))
"""
from ._defaults import package_defaults
from ._predict import predict
from ._props import Layer, LayerArray, layer_array, properties
from ._rng import rand, randn, rng
from .dlarray import dims, dlarray, extractdata, finddim, stripdims
from .functional import dlconv, dltranspconv
from .layers import (
    Convolution1DLayer,
    Convolution2DLayer,
    Convolution3DLayer,
    GroupedConvolution2DLayer,
    TransposedConvolution1DLayer,
    TransposedConvolution2DLayer,
    TransposedConvolution3DLayer,
    convolution1dLayer,
    convolution2dLayer,
    convolution3dLayer,
    groupedConvolution2dLayer,
    transposedConv1dLayer,
    transposedConv2dLayer,
    transposedConv3dLayer,
)

# ---- network layers (another helper): import them from .layers and list them below ----
from .layers import (
    AveragePooling2DLayer,
    BatchNormalizationLayer,
    ClassificationOutputLayer,
    FullyConnectedLayer,
    ImageInputLayer,
    MaxPooling2DLayer,
    ReLULayer,
    SequenceInputLayer,
    SoftmaxLayer,
    averagePooling2dLayer,
    batchNormalizationLayer,
    classificationLayer,
    fullyConnectedLayer,
    imageInputLayer,
    maxPooling2dLayer,
    reluLayer,
    sequenceInputLayer,
    softmaxLayer,
)

# ---- networks (another helper): dlnetwork --------------------------------------------
from .network import analyzeNetwork, dlnetwork, summary

from ._config import (__version__, get_num_threads, get_winograd, set_num_threads,
                      set_winograd, show_config, threads)

__all__ = [
    # network layers
    "imageInputLayer", "sequenceInputLayer", "batchNormalizationLayer", "reluLayer",
    "softmaxLayer", "maxPooling2dLayer", "averagePooling2dLayer", "fullyConnectedLayer",
    "classificationLayer",
    "ImageInputLayer", "SequenceInputLayer", "BatchNormalizationLayer", "ReLULayer",
    "SoftmaxLayer", "MaxPooling2DLayer", "AveragePooling2DLayer", "FullyConnectedLayer",
    "ClassificationOutputLayer",
    # networks
    "dlnetwork", "analyzeNetwork", "summary",
    # data
    "dlarray", "dims", "extractdata", "finddim", "stripdims",
    # random numbers
    "rng", "rand", "randn",
    # running
    "predict", "dlconv", "dltranspconv",
    # configuration
    "show_config", "set_num_threads", "get_num_threads", "threads", "set_winograd",
    "get_winograd", "__version__",
    # layer machinery
    "Layer", "LayerArray", "layer_array", "properties", "package_defaults",
    # convolution layers
    "convolution1dLayer", "convolution2dLayer", "convolution3dLayer",
    "groupedConvolution2dLayer",
    "transposedConv1dLayer", "transposedConv2dLayer", "transposedConv3dLayer",
    "Convolution1DLayer", "Convolution2DLayer", "Convolution3DLayer",
    "GroupedConvolution2DLayer",
    "TransposedConvolution1DLayer", "TransposedConvolution2DLayer",
    "TransposedConvolution3DLayer",
]
