"""Typed errors the library raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations

# Exit codes outside the error classes (README "Exit codes"): 64 and 70 as in BSD's sysexits.h
# (EX_USAGE, EX_SOFTWARE), 130 as a shell reports SIGINT.
EXIT_USAGE = 64
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class SupactlError(Exception):
    """An error a user can cause and fix. `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(SupactlError):
    """A setting is missing or malformed."""

    exit_code = 2


class DatabaseError(SupactlError):
    """The database could not be reached or refused a statement."""

    exit_code = 3


class MigrationError(DatabaseError):
    """A migration file failed, or the history disagrees with the local files."""


class ApiError(SupactlError):
    """A remote API (Supabase Management, Twilio) answered with an error."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class CheckFailed(SupactlError):
    """`doctor` or a post-deploy verification found a broken link."""

    exit_code = 5
