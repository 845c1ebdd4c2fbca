"""The one exception type for problems a user can fix: a bad setting, file, column, label or value.

`InputError` subclasses `ValueError`, so library callers can keep catching `ValueError`. The recipes' command-line
entry point (`albert_recipes.cli.run_cli`) prints exactly these as one line and exits with status 2; every other
exception, including a `ValueError` raised inside torch, transformers, datasets or peft, keeps its traceback, because
it is a bug or an environment problem rather than bad input. Raise it only from our own validation, with a message
that names the bad value and says what is allowed.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input that the user can fix; the message names the value and what is allowed."""


__all__ = ["InputError"]
