"""Failures a user can cause or meet, each with the exit code the CLI gives it.

Library code raises these; the CLI turns them into one line on stderr and the
exit code (``--debug`` shows the traceback instead).
"""


class FleeceError(Exception):
    """Something went wrong that is not a bug in fleece: exit 1."""

    exit_code = 1


class BadInput(FleeceError):
    """The user's arguments, files or answers are not valid: exit 2."""

    exit_code = 2
