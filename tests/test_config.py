"""Build and run-time configuration: OpenMP status, thread control, BLAS detection."""
import os

import numpy as np
import pytest
import threadpoolctl

import mlayers as ml
from mlayers import _config, _ops


def test_show_config_reports_openmp_threads_and_blas(capsys):
    ml.show_config()
    out = capsys.readouterr().out
    assert out.startswith(f"mlayers {ml.__version__}")
    assert "openmp:" in out and "blas:" in out
    cfg = _config.config()
    # the kernels start on the best instruction set this CPU has
    level, best, _ = _ops._conv.isa()
    assert level == best and f"simd:     {cfg['simd']}" in out
    assert cfg["simd"].startswith(_ops._conv.ISA_NAMES[best])
    assert isinstance(cfg["openmp"], bool)
    assert cfg["threads"] == ml.get_num_threads() >= 1
    # the build environment of this project has OpenMP; a serial build must say so loudly
    assert ("on (" in out) == cfg["openmp"]


def test_blas_is_held_to_one_thread_inside_kernels():
    info = _ops.blas_info()
    assert info["name"] != "unknown", info
    if info["name"] == "openblas":
        assert info["thread_hooks"], "OpenBLAS found but its thread setters were not"


def test_thread_setters_and_context_manager():
    before = ml.get_num_threads()
    with ml.threads(1):
        assert ml.get_num_threads() == 1
    assert ml.get_num_threads() == before
    ml.set_num_threads(1)
    try:
        assert ml.get_num_threads() == 1
    finally:
        ml.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_num_threads: n must be a positive integer"):
        ml.set_num_threads(bad)


def test_winograd_switch(capsys):
    """set_winograd decides whether convolutions may take Winograd's algorithm (float64
    1-D, and F(2, 3) along rows);
    show_config reports it; off, the result is the direct kernel's."""
    assert ml.get_winograd() is True
    rng = np.random.default_rng(3)
    x = np.asfortranarray(rng.standard_normal((2048, 64, 2)))
    w = np.asfortranarray(rng.standard_normal((5, 64, 64)))
    geom = _ops.conv_geometry("t", (2048,), (5,), (1,), (2,), (0,), (0,))
    rows = _ops.conv_geometry("t", (56, 56), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    assert _ops._use_winograd(geom, x.dtype, 64, 64) and _ops._use_winograd_rows(rows, 64, 64)
    on = ml.dlconv(x, w, 0, DilationFactor=2, DataFormat="SCB")
    try:
        ml.set_winograd(False)
        assert not ml.get_winograd() and not _ops._use_winograd(geom, x.dtype, 64, 64)
        assert not _ops._use_winograd_rows(rows, 64, 64)
        ml.show_config()
        assert "winograd: off" in capsys.readouterr().out
        off = ml.dlconv(x, w, 0, DilationFactor=2, DataFormat="SCB")
    finally:
        ml.set_winograd(True)
    np.testing.assert_allclose(on, off, rtol=1e-12, atol=1e-14 * 64 * 5)   # (fan-in 320)
    assert not np.array_equal(on, off)      # (the two sum differently)
    with pytest.raises(TypeError, match="set_winograd: enabled must be True or False"):
        ml.set_winograd(1)


def test_openblas_coretype_is_reported(monkeypatch, capsys):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    ml.show_config()
    assert "OPENBLAS_CORETYPE=Haswell" in capsys.readouterr().out


def test_blas_thread_setting_is_restored_after_a_kernel():
    x = np.asfortranarray(np.random.default_rng(0).standard_normal((40, 40, 8, 4)))
    w = np.asfortranarray(np.random.default_rng(1).standard_normal((3, 3, 8, 8)))
    info = _ops.blas_info()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        _ops.conv(x, w, stride=2)
        libs = [c for c in threadpoolctl.threadpool_info()
                if os.path.realpath(c["filepath"]) == os.path.realpath(info["filepath"])]
        assert libs and all(c["num_threads"] == 2 for c in libs)
