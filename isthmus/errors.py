"""Errors of the composition root (CLI and embedded runner)."""


class IsthmusError(Exception):
    """A user-facing failure of a command: the message says what went wrong and what to do."""
