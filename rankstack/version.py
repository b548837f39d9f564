"""The package version (one place: ``rankstack.__version__`` and the run metadata read it here)."""

__version__ = "0.1.0"
