"""Exceptions raised by gradc. Every message names what was expected and what came."""
import numpy as _np


class GradcError(Exception):
    """Base class of every error gradc raises on purpose."""


class ShapeError(GradcError, ValueError):
    """Shapes that do not fit an op (failed broadcasting, `X @ w` with wrong sizes)."""


class TracerBoolError(GradcError, TypeError):
    """Python control flow (or a conversion to a Python value) on a traced value."""


class UnsupportedError(GradcError, TypeError):
    """A numpy function or an argument type that gradc does not support."""


class ArgumentError(GradcError, TypeError):
    """A call's arguments do not fit the function (count, type, rank, dtype, sizes)."""


class NonFiniteError(GradcError, FloatingPointError):
    """debug_nans mode found a node whose value is not finite."""


class UnsupportedNameError(UnsupportedError, AttributeError):
    """``gradc.numpy.<name>`` for a numpy name gradc does not provide (an AttributeError
    too, so ``hasattr`` and ``getattr(np, name, default)`` keep working)."""


class LinAlgError(GradcError, _np.linalg.LinAlgError):
    """A linear algebra op met a matrix it is not defined for: a singular matrix in
    ``linalg.solve`` or ``linalg.inv``, one that is not positive definite in
    ``linalg.cholesky``, an eigenvalue computation that did not converge (where
    numpy raises ``numpy.linalg.LinAlgError``; ``except numpy.linalg.LinAlgError``
    catches it too)."""
