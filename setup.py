"""Builds gradc's one C extension, the native call path (runtime/callpath.c).
Everything else is in pyproject.toml."""
import numpy
from setuptools import Extension, setup

setup(ext_modules=[Extension("gradc._callpath", ["runtime/callpath.c"],
                             include_dirs=[numpy.get_include(), "runtime"],
                             depends=["runtime/parallel.c", "runtime/skinny.c"],
                             extra_compile_args=["-O3", "-std=gnu11", "-pthread", "-fwrapv"],
                             extra_link_args=["-pthread"],
                             optional=True)])
