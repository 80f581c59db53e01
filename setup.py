"""Builds gradc's one C extension, the native call path (runtime/callpath.c); ships the
C ABI header runtime/gradc.h inside the package (gradc/_runtime/), so that backend="c"
and `gradc build` work from a regular install, not only from a checkout; and compiles
the vector math library ahead of time (gradc/_prebuilt/, see
gradc.backends.vecmath.build_prebuilt), so that a user's first call does not.
Everything else is in pyproject.toml."""
import importlib.util
import os
import numpy
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class build_py_with_header(build_py):
    """The usual build_py, plus runtime/gradc.h copied to gradc/_runtime/gradc.h."""

    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "gradc", "_runtime")
        self.mkpath(dst)
        self.copy_file(os.path.join("runtime", "gradc.h"), dst)
        # an editable install runs the sources: the prebuilt library goes next to them
        # (as build_ext --inplace puts the extension there)
        here = os.path.dirname(os.path.abspath(__file__))
        package = os.path.join(here, "gradc") if getattr(self, "editable_mode", False) else \
            os.path.join(self.build_lib, "gradc")
        prebuild_vecmath(os.path.join(here, "gradc", "backends", "vecmath.py"), os.path.join(package, "_prebuilt"))


def prebuild_vecmath(source, out_dir):
    """vecmath.build_prebuilt(out_dir), loading vecmath.py and the vecmath_* modules next
    to it on their own (gradc/backends/standalone.py: they need only llvmlite; the gradc
    package's other dependencies may not be installed yet)."""
    name = "gradc_vecmath_prebuild"
    spec = importlib.util.spec_from_file_location("gradc_standalone", os.path.join(os.path.dirname(source), "standalone.py"))
    standalone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(standalone)
    try:
        module = standalone.load_vecmath(source, name)
        for path in module.build_prebuilt(out_dir):
            print(f"prebuilt {path}")
    except Exception as e:  # noqa: BLE001 - optional: without it the JIT compiles on first use
        print(f"not prebuilding the vector math library: {type(e).__name__}: {e}")
    finally:
        standalone.unload(name)


setup(cmdclass={"build_py": build_py_with_header},
      ext_modules=[Extension("gradc._callpath", ["runtime/callpath.c"],
                             include_dirs=[numpy.get_include(), "runtime"],
                             depends=["runtime/gradc.h", "runtime/parallel.c", "runtime/skinny.c", "runtime/skinny_lanes.c", "runtime/skinny_lanes_v3.c", "runtime/gemm_small.c", "runtime/poolgemm.c",
                                      "runtime/lapack.c", "runtime/sortrank.c"],
                             extra_compile_args=["-O3", "-std=gnu11", "-pthread", "-fwrapv"],
                             extra_link_args=["-pthread"],
                             optional=True)])
