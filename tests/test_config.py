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
