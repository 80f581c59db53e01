"""Builds gradc's one C extension, the native call path (runtime/callpath.c), and ships
the C ABI header runtime/gradc.h inside the package (gradc/_runtime/), so that
backend="c" and `gradc build` work from a regular install, not only from a checkout.
Everything else is in pyproject.toml."""
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


setup(cmdclass={"build_py": build_py_with_header},
      ext_modules=[Extension("gradc._callpath", ["runtime/callpath.c"],
                             include_dirs=[numpy.get_include(), "runtime"],
                             depends=["runtime/gradc.h", "runtime/parallel.c", "runtime/skinny.c"],
                             extra_compile_args=["-O3", "-std=gnu11", "-pthread", "-fwrapv"],
                             extra_link_args=["-pthread"],
                             optional=True)])
