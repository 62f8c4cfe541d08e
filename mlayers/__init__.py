"""mlayers: MATLAB's Deep Learning Toolbox layers in Python, with MATLAB's API and numbers.

    import mlayers as ml
    layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    Y = ml.predict(layer, ml.dlarray(x, "SCB"))
"""
from ._defaults import package_defaults
from ._predict import predict
from ._props import Layer, LayerArray, layer_array, properties
from ._rng import ones, rand, randn, rng, zeros
from .dlarray import dims, dlarray, extractdata, finddim, networkDataLayout, size, stripdims
from ._autodiff import dlfeval, dlgradient
from ._accelerate import canUseGPU, clearCache, dlaccelerate, gather, gpuArray
from . import functional, graph, layers, network, nnet, training
from .functional import *  # noqa: F401,F403  (the differentiable operations)
from .graph import *  # noqa: F401,F403  (layer graphs)
from .layers import *  # noqa: F401,F403  (every layer and its constructor)
from .network import *  # noqa: F401,F403  (dlnetwork and its functions)
from .training import *  # noqa: F401,F403  (training)

from ._config import (__version__, get_num_threads, get_winograd, set_num_threads,
                      set_winograd, show_config, threads)

__all__ = list(dict.fromkeys([     # a later package may refine a name (resetState)
    # data
    "dlarray", "dims", "extractdata", "finddim", "stripdims", "size", "networkDataLayout",
    # random numbers
    "rng", "rand", "randn", "zeros", "ones",
    # running and differentiating
    "predict", "dlfeval", "dlgradient", "dlaccelerate", "clearCache",
    # MATLAB's GPU functions on the CPU
    "canUseGPU", "gather", "gpuArray",
    # configuration
    "show_config", "set_num_threads", "get_num_threads", "threads", "set_winograd",
    "get_winograd", "__version__",
    # layer machinery
    "Layer", "LayerArray", "layer_array", "properties", "package_defaults",
    # custom layers (MATLAB's nnet.layer.Layer)
    "nnet",
    *functional.__all__, *layers.__all__, *graph.__all__, *network.__all__,
    *training.__all__,
]))
