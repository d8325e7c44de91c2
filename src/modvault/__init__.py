"""modvault: a caching Go module proxy."""

__version__ = "0.1.0"
