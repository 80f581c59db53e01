"""gradc's version, in a module of its own so every layer can name it without importing
the package's public API (``gradc/__init__.py`` imports everything)."""
__version__ = "0.1.0"
