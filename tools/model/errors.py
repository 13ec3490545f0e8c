"""The two ways a verb fails, each with a one-line message that should
name the next command to type; the CLI maps them to exit codes."""


class ToolError(Exception):
    exit_code = 1

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class UsageError(ToolError):
    """The request cannot be done as asked (a bad argument, no base)."""

    exit_code = 2


class Failure(ToolError):
    """The request was fine but the work failed (a patch, a build)."""
