"""The one exception type for mistakes a user can fix: the CLI prints it as a single line."""

__all__ = ["InterpError"]


class InterpError(Exception):
    """A user-facing error: bad input, missing file, mismatched model. Message says what to do."""
