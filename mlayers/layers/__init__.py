"""Layer classes (MATLAB class names) and their MATLAB-named constructors."""
from .conv1d import Convolution1DLayer, convolution1dLayer
from .conv2d import Convolution2DLayer, convolution2dLayer
from .conv3d import Convolution3DLayer, convolution3dLayer
from .grouped_conv2d import GroupedConvolution2DLayer, groupedConvolution2dLayer
from .transposed_conv1d import TransposedConvolution1DLayer, transposedConv1dLayer
from .transposed_conv2d import TransposedConvolution2DLayer, transposedConv2dLayer
from .transposed_conv3d import TransposedConvolution3DLayer, transposedConv3dLayer

# ---- network layers (imageInputLayer, batchNormalizationLayer, ...): add imports here ----
from .activation import ReLULayer, SoftmaxLayer, reluLayer, softmaxLayer
from .batchnorm import BatchNormalizationLayer, batchNormalizationLayer
from .classification import ClassificationOutputLayer, classificationLayer
from .fully_connected import FullyConnectedLayer, fullyConnectedLayer
from .input import ImageInputLayer, SequenceInputLayer, imageInputLayer, sequenceInputLayer
from .pooling import (AveragePooling2DLayer, MaxPooling2DLayer, averagePooling2dLayer,
                      maxPooling2dLayer)

__all__ = [
    "Convolution1DLayer", "convolution1dLayer",
    "Convolution2DLayer", "convolution2dLayer",
    "Convolution3DLayer", "convolution3dLayer",
    "GroupedConvolution2DLayer", "groupedConvolution2dLayer",
    "TransposedConvolution1DLayer", "transposedConv1dLayer",
    "TransposedConvolution2DLayer", "transposedConv2dLayer",
    "TransposedConvolution3DLayer", "transposedConv3dLayer",
    "ImageInputLayer", "imageInputLayer",
    "SequenceInputLayer", "sequenceInputLayer",
    "BatchNormalizationLayer", "batchNormalizationLayer",
    "ReLULayer", "reluLayer",
    "SoftmaxLayer", "softmaxLayer",
    "MaxPooling2DLayer", "maxPooling2dLayer",
    "AveragePooling2DLayer", "averagePooling2dLayer",
    "FullyConnectedLayer", "fullyConnectedLayer",
    "ClassificationOutputLayer", "classificationLayer",
]
