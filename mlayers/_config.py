"""Build and run-time configuration: what the kernels were compiled with and will use."""
import os
import platform

import numpy as np
import scipy

from . import _ops
from ._ops import (get_num_threads, get_winograd, set_num_threads,  # noqa: F401  (re-exported)
                   set_winograd, threads)

__version__ = "0.1.0"


def config():
    """Return the configuration that :func:`show_config` prints, as a dict."""
    blas = _ops.blas_info()
    return {
        "mlayers": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "openmp": _ops.openmp_enabled(),
        "threads": get_num_threads(),
        "cores": os.cpu_count(),
        "blas": blas["name"],
        "blas_version": blas["version"],
        "blas_corename": blas["corename"],
        "blas_library": blas["filepath"],
        "blas_held_to_one_thread_in_kernels": blas["thread_hooks"],
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
        "simd": _ops.simd_name(),
        "winograd": get_winograd(),
    }


def show_config():
    """Print the version, OpenMP status, thread count and the BLAS the kernels call.

    Examples
    --------
    >>> import mlayers as ml
    >>> ml.show_config()                                    # doctest: +SKIP
    mlayers 0.1.0
      openmp:   on (2 threads of 2 cores)
      simd:     AVX-512 (64-byte vectors)
      blas:     openblas 0.3.30, core type SkylakeX
      ...
    """
    c = config()
    omp = "on" if c["openmp"] else "OFF (built without OpenMP: kernels run on one thread)"
    print(f"mlayers {c['mlayers']}")
    print(f"  python:   {c['python']}, numpy {c['numpy']}, scipy {c['scipy']}")
    print(f"  openmp:   {omp} ({c['threads']} threads of {c['cores']} cores)")
    print(f"  simd:     {c['simd']}")
    print(f"  winograd: {'on' if c['winograd'] else 'off'} (filters 3 wide along the first "
          "dimension; float64 1-D, 3-7 taps)")
    core = f", core type {c['blas_corename']}" if c["blas_corename"] else ""
    print(f"  blas:     {c['blas']} {c['blas_version']}{core}")
    print(f"            {c['blas_library']}")
    if not c["blas_held_to_one_thread_in_kernels"]:
        print("            (cannot hold this BLAS to one thread inside parallel kernels)")
    if c["OPENBLAS_CORETYPE"]:
        print(f"  OPENBLAS_CORETYPE={c['OPENBLAS_CORETYPE']} (pins OpenBLAS kernels; unset it "
              "for full speed)")
