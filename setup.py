"""Build the mlayers compiled kernels.

Environment switches
--------------------
MLAYERS_NO_OPENMP=1   build without OpenMP (kernels then run on one thread).
MLAYERS_NATIVE=1      add -march=native (fast on this machine, not portable).

The build probes the real compiler for OpenMP and says what it decided, so a serial build
is never silent; ``mlayers.show_config()`` reports it again at run time.
"""
import os
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_conv", "_pool", "_norm", "_rnn", "_act"]
# (developers: MLAYERS_KERNELS=_conv,_act builds just those)
KERNELS = [k for k in os.environ.get("MLAYERS_KERNELS", ",".join(KERNELS)).split(",") if k]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compiles(compiler, code, extra_args):
    """True when ``code`` compiles and links with ``extra_args`` on this compiler."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=extra_args)
            compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                     extra_postargs=extra_args)
        except Exception:
            return False
    return True


OPENMP_PROBE = textwrap.dedent("""
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
""")


class BuildExt(build_ext):
    """build_ext that probes the actual compiler before choosing flags."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, omp_flags = ["/O2"], ["/openmp"]
        else:
            # (-fno-math-errno: errno is never read, and sqrt's errno path keeps the loops
            # that take square roots scalar; IEEE sqrt's values either way)
            cflags = ["-O3", "-fno-semantic-interposition", "-fno-math-errno",
                      "-Wno-unused-function", "-Wno-maybe-uninitialized"]
            if _flag("MLAYERS_NATIVE"):
                cflags.append("-march=native")
            omp_flags = ["-fopenmp"]

        if _flag("MLAYERS_NO_OPENMP"):
            use_openmp, why = False, "MLAYERS_NO_OPENMP is set"
        elif _compiles(self.compiler, OPENMP_PROBE, omp_flags):
            use_openmp, why = True, "the compiler supports " + " ".join(omp_flags)
        else:
            use_openmp, why = False, "the compiler rejected " + " ".join(omp_flags)
        banner = "OpenMP ON" if use_openmp else "OpenMP OFF: kernels will run serially"
        print(f"\n*** mlayers: {banner} ({why}) ***\n", file=sys.stderr)

        for ext in self.extensions:
            ext.extra_compile_args = cflags + (omp_flags if use_openmp else [])
            ext.extra_link_args = omp_flags if (use_openmp and ctype != "msvc") else []
        super().build_extensions()


extensions = [
    Extension(f"mlayers.{name}", [f"pyx/{name}.pyx"],
              include_dirs=[numpy.get_include(), "pyx"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives={"language_level": 3, "boundscheck": False,
                             "wraparound": False, "cdivision": True,
                             "initializedcheck": False, "nonecheck": False},
    ),
    cmdclass={"build_ext": BuildExt},
)
