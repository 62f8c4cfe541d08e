"""``dlaccelerate`` and the GPU functions of MATLAB scripts, on a CPU-only package.

MATLAB's ``dlaccelerate(fun)`` traces a deep learning function once per input signature
and replays the trace; mlayers' operations already run compiled kernels and its tape
costs little, so an :class:`AcceleratedFunction` calls the function itself every time: the
same results as MATLAB's underlying function, none of the caching's caveats (a cached
``rand`` of non-dlarray data, a function edited after its first call).  Its properties
are MATLAB's, settable and validated; HitRate and Occupancy stay 0 (nothing is cached).

``canUseGPU()`` is false, ``gather`` returns its arguments (CPU data: MATLAB's "no
effect"), and ``gpuArray`` is refused with the porting advice.
"""
from . import _validate as V
from ._display import layer_text, named

__all__ = ["dlaccelerate", "AcceleratedFunction", "clearCache", "canUseGPU", "gather",
           "gpuArray"]


class AcceleratedFunction:
    """MATLAB's ``AcceleratedFunction``: what ``dlaccelerate`` returns; call it as the
    function (usually through ``dlfeval``).

    Examples
    --------
    MATLAB::

        accfun = dlaccelerate(@modelLoss);
        [loss, gradients] = dlfeval(accfun, net, X, T);
        clearCache(accfun)

    Python::

        accfun = ml.dlaccelerate(model_loss)
        loss, gradients = ml.dlfeval(accfun, net, X, T)
        ml.clearCache(accfun)
    """

    def __init__(self, fun):
        if not callable(fun):
            raise TypeError(f"dlaccelerate: fun must be a function, got {type(fun).__name__}")
        self._fun = fun
        self._enabled = True
        self._cache_size = 50
        self._check_mode = "none"
        self._check_tolerance = 1e-4

    def __call__(self, *args, **kwargs):
        return self._fun(*args, **kwargs)

    @property
    def Function(self):
        return self._fun

    @property
    def Enabled(self):
        return self._enabled

    @Enabled.setter
    def Enabled(self, value):
        from .layers.input import logical
        self._enabled = bool(logical(value, V.Where("AcceleratedFunction", "Enabled")))

    @property
    def CacheSize(self):
        return self._cache_size

    @CacheSize.setter
    def CacheSize(self, value):
        self._cache_size = V.positive_int(value, V.Where("AcceleratedFunction", "CacheSize"))

    @property
    def HitRate(self):
        """Percentage of calls that reused a cached trace: 0 (nothing is cached)."""
        return 0

    @property
    def Occupancy(self):
        """Percentage of the cache in use: 0 (nothing is cached)."""
        return 0

    @property
    def CheckMode(self):
        return self._check_mode

    @CheckMode.setter
    def CheckMode(self, value):
        from ._options import validatestring
        self._check_mode = validatestring(value, ("none", "tolerance"),
                                          "AcceleratedFunction", "CheckMode")

    @property
    def CheckTolerance(self):
        return self._check_tolerance

    @CheckTolerance.setter
    def CheckTolerance(self, value):
        self._check_tolerance = V.real_scalar(
            value, V.Where("AcceleratedFunction", "CheckTolerance"), "a positive scalar",
            lambda v: v > 0)

    def clearCache(self):
        """Empty the cache (MATLAB ``clearCache(accfun)``): nothing to empty here."""

    def __repr__(self):
        rows = [("Function", self._fun), ("Enabled", self._enabled),
                ("CacheSize", self._cache_size), ("HitRate", 0), ("Occupancy", 0),
                ("CheckMode", self._check_mode), ("CheckTolerance", self._check_tolerance)]
        return layer_text("AcceleratedFunction", [(None, rows)], footer=False).rstrip("\n")

    def disp(self, name="accfun"):
        print(named(name, repr(self) + "\n"), end="")


def dlaccelerate(fun):
    """MATLAB's ``dlaccelerate``: an :class:`AcceleratedFunction` of ``fun`` (see the
    module notes: it runs ``fun`` on every call)."""
    return AcceleratedFunction(fun)


def clearCache(accfun):
    """MATLAB's ``clearCache(accfun)``."""
    if not isinstance(accfun, AcceleratedFunction):
        raise TypeError(f"clearCache: accfun must be an AcceleratedFunction (from "
                        f"dlaccelerate), got {type(accfun).__name__}")
    accfun.clearCache()


def canUseGPU():
    """MATLAB's ``canUseGPU``: false (mlayers computes on the CPU)."""
    return False


def gather(*arrays):
    """MATLAB's ``gather``: the arguments themselves (their data is in CPU memory); one
    argument gives it back, several a tuple (``[X, Y] = gather(X, Y)``)."""
    if not arrays:
        raise TypeError("gather: at least one input is required")
    return arrays[0] if len(arrays) == 1 else arrays


def gpuArray(*args, **kwargs):
    """MATLAB's ``gpuArray``: refused (no GPU); guard it with ``canUseGPU()`` as MATLAB's
    examples do, or leave the data where it is."""
    raise ValueError("gpuArray: mlayers computes on the CPU and has no GPU arrays; guard "
                     "the call with canUseGPU() (false here) or leave the data as it is")
