"""The CLI edge: library errors become one redacted line on stderr and a documented exit code."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable, TypeVar

import typer

from supactl.errors import SupactlError
from supactl.redact import redact

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes (docs: README "Exit codes"): 0 ok, 1 user error, 2 configuration, 3 database,
# 4 remote API, 5 a check failed, 130 interrupted.


# Plain help, like the supabase CLI's: Typer's rich help imports rich and markdown-it on every
# start (~0.1 s of a ~0.25 s `supactl --help`, measured in bench/cli_bench.py).
HELP_MARKUP = None


def command_group(help: str) -> typer.Typer:
    """A `supactl <group> …` Typer app with the CLI's shared settings."""
    return typer.Typer(rich_markup_mode=HELP_MARKUP, help=help, no_args_is_help=True)


def echo(text: str = "", *, err: bool = False) -> None:
    typer.echo(redact(text), err=err)


def print_json(value: Any) -> None:
    typer.echo(redact(json.dumps(value, indent=2, default=str)))


def cli_errors(fn: F) -> F:
    """Wrap a command so a SupactlError exits with its code and a message, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SupactlError as exc:
            echo(f"error: {exc.message}", err=True)
            if exc.hint:
                echo(f"hint: {exc.hint}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
