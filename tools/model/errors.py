"""The two ways a verb can fail, mapped to exit codes by the CLI.

UsageError (exit 2): the user asked for something that cannot be done as
asked -- a missing file, a bad argument, no base imported yet.
Failure (exit 1): the request was fine but the work failed -- a patch that
does not apply, a build that breaks, a test run that fails.

Both carry a one-line message that should name the next command to type.
"""


class ToolError(Exception):
    exit_code = 1

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ToolError):
    exit_code = 2


class Failure(ToolError):
    exit_code = 1
