"""The installed version of mobilecnn, in one place."""

__version__ = "0.4.0"
