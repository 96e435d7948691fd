"""The hinted error: a message that says what is wrong, and a hint that says how to fix it."""

from __future__ import annotations


class HintedError(Exception):
    """An error whose text is the message, then `  hint: <hint>` on a second line when a hint is given.

    Hints say what to change in the inputs, not which command-line flag to pass: the libraries are used
    without the CLI, and the CLI adds its flag names where it catches these errors.
    """

    def __init__(self, message: str, hint: str = ""):
        self.message, self.hint = message, hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)
