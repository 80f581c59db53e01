"""gradc's primitives and the numpy-like functions built on them.

Importing this package registers every op in :data:`OPS`; ``value_methods`` (imported
by ``gradc/__init__``) gives :class:`Value` its array behaviour."""
from .registry import OPS, Op, register  # noqa: F401
from . import elementwise, reduce, linalg, structure, lapack, decomp, lu, special, bessel, custom, bitwise, scan  # noqa: F401
from . import collectives  # noqa: F401,E402
from .segments import bincount, segment_max, segment_min, segment_prod, segment_sum  # noqa: F401,E402  (jax.ops' names)
