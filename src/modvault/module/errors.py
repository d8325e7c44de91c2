"""Exceptions of the pure module rules. They carry a one-line reason and no HTTP meaning."""

from __future__ import annotations


class ModuleError(ValueError):
    """A Go module rule was broken."""


class InvalidPath(ModuleError):
    """A module path (or escaped path) breaks golang.org/x/mod/module rules."""


class InvalidVersion(ModuleError):
    """A version string is not valid (or not canonical where canonical is required)."""


class ZipError(ModuleError):
    """A module zip breaks the module zip rules."""


class ModFileError(ModuleError):
    """A go.mod file could not be read."""
