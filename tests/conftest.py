"""Shared test fixtures: the dtype fixture, per-dtype tolerances, a seeded generator.

Tolerances follow MATLAB_SEMANTICS §8: results are compared with a float64 reference
computed on the same (already rounded) inputs, with ``rtol`` per dtype and an ``atol`` per
dtype scaled by the fan-in (the number of products summed into one result).
"""
import zlib

import numpy as np
import pytest

DTYPES = (np.float32, np.float64)

#: relative tolerance per dtype
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
#: absolute tolerance per dtype and per term of the sum (multiply by the fan-in)
ATOL = {np.float32: 1e-6, np.float64: 1e-14}


def tolerances(dtype, fan_in=1):
    """``dict(rtol=..., atol=...)`` for ``numpy.testing.assert_allclose``."""
    dtype = np.dtype(dtype).type
    return dict(rtol=RTOL[dtype], atol=ATOL[dtype] * max(int(fan_in), 1))


def assert_close(actual, expected, dtype, fan_in=1, err_msg=""):
    """Compare an engine result with a float64 reference at the dtype's tolerance."""
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected,
                               err_msg=err_msg, **tolerances(dtype, fan_in))


@pytest.fixture(params=DTYPES, ids=lambda t: np.dtype(t).name)
def dtype(request):
    """Each test runs once per floating dtype (MATLAB single and double)."""
    return request.param


@pytest.fixture
def rng(request):
    """A generator seeded from the test's node id: reproducible and distinct per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
