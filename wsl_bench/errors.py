"""Errors a user can fix: the CLI prints them as one line, without a traceback, and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input or configuration; the message names the fix."""


class DatasetLayoutError(UserError):
    """Dataset files are missing or not in the expected layout (raised before any compute)."""


class ConfigError(UserError):
    """A configuration value is invalid (unknown method, unknown layer, bad option)."""
