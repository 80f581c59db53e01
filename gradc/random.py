"""``gradc.random``: counter-based random numbers as ``jax.random``'s, bit for bit.

A key is a ``uint32[2]`` array (``PRNGKey(seed)``); it is passed to the model like any
array (traced, so a new key does not compile again) and never changes: ``split`` and
``fold_in`` derive new keys.  The bits come from the Threefry-2x32 hash (Salmon et al.,
*Parallel random numbers: as easy as 1, 2, 3*, SC 2011) of each element's flat index
under the key, as JAX's default (``jax_threefry_partitionable``) computes them, so
``bits``, ``split``, ``fold_in``, ``uniform`` on [0, 1), ``bernoulli``, ``randint``, ``permutation``,
``choice`` and ``categorical`` give JAX's numbers exactly; ``uniform`` on another range within an ulp
(XLA fuses its scaling into one multiply-add) and ``normal`` (through ``erfinv``)
within a few.  The hash is 20 rounds of
32-bit adds, rotations and xors (gradc's integer ops), vectorized and split over
threads as any element-wise code; outside a trace it computes with numpy.

Float results default to float64 (JAX's with ``jax_enable_x64``); pass ``dtype`` for
float32.  Samplers differentiate as the transforms they are: ``normal(key) * sigma +
mu`` has its gradient in ``sigma`` and ``mu`` (the reparameterization trick).
"""
from .random_base import *  # noqa: F401,F403  (keys, bits, uniform, normal, and the samplers on them)
from .random_base import __all__ as _base
from .random_base import threefry_2x32  # noqa: F401
from .random_more import *  # noqa: F401,F403  (JAX's transforms of uniform and normal draws)
from .random_more import __all__ as _more
from .random_gamma import *  # noqa: F401,F403  (the Gamma family: gamma, beta, dirichlet, ..., poisson)
from .random_gamma import __all__ as _gamma

__all__ = _base + _more + _gamma
