"""The error hierarchy. Every message is one line, written for the operator.

The CLI maps each class to an exit code (see ``cli.py``); nothing below it prints.
"""

# The documented exit codes (README "Exit codes").
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERNAL, EXIT_LOCKED = 0, 1, 2, 70, 75
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipe closed by its reader


class EscapiaIcalError(Exception):
    """Base class: an expected failure with a one-line, user-facing message."""


class ConfigError(EscapiaIcalError):
    """The configuration (file, environment or CLI arguments) is unusable.

    ``problems`` holds every ``FILE:LINE: key: what is wrong`` line found, so that the
    operator can fix them all at once; ``str()`` joins them with newlines.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class SourceError(EscapiaIcalError):
    """Escapia could not be reached, refused us, or answered something unusable."""


class AuthError(SourceError):
    """The credentials were rejected: nothing of that account can be fetched."""


class DeadlineReached(SourceError):
    """The run's deadline passed: the work left waits for the next run."""


class UnitNotFound(SourceError):
    """A configured or requested unit is not distributed to us by Escapia."""


class PublishError(EscapiaIcalError):
    """A feed could not be written to the output directory."""


class StateError(PublishError):
    """The state database cannot be opened, read or written (or is a newer version's)."""


class LockHeld(EscapiaIcalError):
    """Another process holds a lock; ``holder`` says who (a sync.lock.LockHolder)."""

    def __init__(self, message: str, holder: object = None):
        super().__init__(message)
        self.holder = holder


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM (systemd stopping the service, a timeout): unwind at once, saving what is
    done. A BaseException, so that no ``except Exception`` treats it as one unit's or one
    account's failure and carries on with the next."""
