"""interp: find where a chat model decides to go silent, and measure how much of that silence can be undone."""

__version__ = "0.1.0"
