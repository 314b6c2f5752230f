"""The one exception type for mistakes a user can fix: the CLI prints it as a single line."""

__all__ = ["InterpError"]


class InterpError(Exception):
    """A user-facing error: bad input, missing file, mismatched model. Message says what to do."""

    def __str__(self) -> str:
        # messages often quote a library's error text, which may span lines; the CLI prints one line
        return " ".join(line.strip() for line in super().__str__().splitlines() if line.strip())
