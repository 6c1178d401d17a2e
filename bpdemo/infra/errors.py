"""The project's error types, and what the command line makes of them.

A `UsageError` is a user's mistake (a wrong config key, a missing column, a download that cannot happen):
the command-line entry points print its message as one line on stderr and exit with status 2.
A `RunError` is a fault at run time (training diverged, the run was interrupted, the disk is full): exit 1.
"""


class BpdemoError(Exception):
    """Base of every error this project raises on purpose."""

    exit_status = 1


class UsageError(BpdemoError, ValueError):
    """The user asked for something that cannot be done as asked; the message says what to do."""

    exit_status = 2


class ConfigError(UsageError):
    """A configuration file, a `--set` override or an `MLPSpec` argument is wrong."""


class DataError(UsageError):
    """A data set cannot be read or used: missing file or column, bad values, no network."""


class RunError(BpdemoError):
    """A fault while running: the run stops, keeps what it has, and exits with status 1."""


class DivergenceError(RunError):
    """The loss became inf or NaN during training."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step
