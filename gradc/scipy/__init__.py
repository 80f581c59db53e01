"""``gradc.scipy``: the parts of ``scipy`` (``jax.scipy``) that models use."""
from . import special  # noqa: F401
from . import stats  # noqa: F401
from . import linalg  # noqa: F401
