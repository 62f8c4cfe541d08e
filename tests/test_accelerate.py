"""dlaccelerate (an AcceleratedFunction that runs its function), canUseGPU, gather,
gpuArray: MATLAB's calls in custom loops, on the CPU."""
import numpy as np
import pytest

import mlayers as ml


def model_loss(x):
    y = ml.sum(x ** 3, "all")
    return y, ml.dlgradient(y, x)


def test_accelerated_function_gives_the_functions_results():
    accfun = ml.dlaccelerate(model_loss)
    x = ml.dlarray(np.array([1.0, -2.0, 0.5]))
    for _ in range(2):      # (MATLAB's second call replays its trace: same numbers)
        y, g = ml.dlfeval(accfun, x)
        assert float(y) == pytest.approx(1 - 8 + 0.125)
        np.testing.assert_array_equal(g.data, 3 * np.array([1.0, -2.0, 0.5]) ** 2)
    ml.clearCache(accfun)
    accfun.clearCache()
    assert accfun.Function is model_loss
    assert (accfun.HitRate, accfun.Occupancy) == (0, 0)


def test_accelerated_function_display_and_properties():
    accfun = ml.dlaccelerate(model_loss)
    # MATLAB's documented display (dlaccelerate reference page), for @model_loss
    assert repr(accfun).splitlines() == [
        "  AcceleratedFunction with properties:", "",
        "          Function: @model_loss",
        "           Enabled: 1",
        "         CacheSize: 50",
        "           HitRate: 0",
        "         Occupancy: 0",
        "         CheckMode: 'none'",
        "    CheckTolerance: 1.0000e-04"]
    accfun.Enabled = False
    accfun.CacheSize = 8
    accfun.CheckMode = "tol"
    accfun.CheckTolerance = 1e-3
    assert (accfun.Enabled, accfun.CacheSize, accfun.CheckMode, accfun.CheckTolerance) == \
        (False, 8, "tolerance", 1e-3)
    for name, bad in (("CacheSize", 0), ("CacheSize", 2.5), ("Enabled", 2),
                      ("CheckMode", "always"), ("CheckTolerance", -1)):
        with pytest.raises(ValueError, match=f"AcceleratedFunction: {name}"):
            setattr(accfun, name, bad)
    with pytest.raises(TypeError, match="dlaccelerate: fun must be a function"):
        ml.dlaccelerate(3)
    with pytest.raises(TypeError, match="clearCache: accfun"):
        ml.clearCache(model_loss)


def test_gpu_functions():
    assert ml.canUseGPU() is False
    x = ml.dlarray(np.ones((2, 2)), "CB")
    assert ml.gather(x) is x
    a, b = ml.gather(x, 3.0)
    assert a is x and b == 3.0
    with pytest.raises(ValueError, match="gpuArray: .*canUseGPU"):
        ml.gpuArray(np.ones(3))
