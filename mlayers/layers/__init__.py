"""Layer classes (MATLAB class names) and their MATLAB-named constructors.

Each module below declares its layers and lists its public names in ``__all__``; this
package re-exports them all (and ``mlayers`` re-exports this package).
"""
from .._collect import collect

_MODULES = (
    # convolution family
    "conv1d", "conv2d", "conv3d", "grouped_conv2d",
    "transposed_conv1d", "transposed_conv2d", "transposed_conv3d",
    # inputs and outputs
    "input", "classification", "regression",
    # the rest of a network
    "activation", "dropout", "batchnorm", "normalization", "fully_connected", "pooling",
    "resize", "reshape", "merge", "recurrent",
    # user-defined layers (MATLAB custom layers) and their check
    "custom", "check",
)

__all__ = collect(__name__, _MODULES, globals())
