"""The CLI edge: library errors become one redacted message and a documented exit code.

Under `--json` every outcome is one JSON object on stdout: `{"ok": true, …}` for a success,
`{"ok": false, "error", "hint", "exit_code"}` for any failure, usage errors included.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from typing import Any, Callable, Sequence, TypeVar

import typer
from typer.core import TyperGroup

from supactl.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, SupactlError
from supactl.redact import redact

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes (docs: README "Exit codes"): 0 ok, 1 invalid input, 2 configuration, 3 database,
# 4 remote API, 5 a check failed, 64 usage, 70 internal error, 130 interrupted.


# Plain help, like the supabase CLI's: Typer's rich help imports rich and markdown-it on every
# start (~0.1 s of a ~0.25 s `supactl --help`, measured in bench/cli_bench.py).
HELP_MARKUP = None
CONTEXT = {"help_option_names": ["-h", "--help"]}


def command_group(help: str) -> typer.Typer:
    """A `supactl <group> …` Typer app with the CLI's shared settings."""
    return typer.Typer(rich_markup_mode=HELP_MARKUP, help=help, no_args_is_help=True, context_settings=CONTEXT)


def echo(text: str = "", *, err: bool = False) -> None:
    typer.echo(redact(text), err=err)


def print_json(value: dict[str, Any]) -> None:
    """A success under --json: the result's fields with `ok: true` first."""
    typer.echo(redact(json.dumps({"ok": True, **value}, indent=2, default=str)))


def print_failure(message: str, hint: str | None, exit_code: int, as_json: bool, **extra: Any) -> None:
    if as_json:
        typer.echo(redact(json.dumps({"ok": False, "error": message, "hint": hint, "exit_code": exit_code, **extra},
                                     indent=2, default=str)))
        return
    echo(f"error: {message}", err=True)
    if hint:
        echo(f"hint: {hint}", err=True)


def cli_errors(fn: F) -> F:
    """Wrap a command so a SupactlError exits with its code and a message, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except SupactlError as exc:
            print_failure(exc.message, exc.hint, exc.exit_code, as_json)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print_failure("interrupted", None, EXIT_INTERRUPTED, as_json)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


class SupactlGroup(TyperGroup):
    """The root command: Click's own errors get supactl's exit codes and --json shape.

    Click exits 2 on a usage error, which the README reserves for configuration; a bug's traceback
    goes through the redactor like every other line."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        from typer import _click

        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            result = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except _click.exceptions.UsageError as exc:
            code = EXIT_USAGE
            command = exc.ctx.command_path if exc.ctx else "supactl"
            if as_json:
                print_failure(exc.format_message(), f"see `{command} --help`", code, True)
            else:
                exc.exit_code = code
                exc.show()
        except _click.exceptions.ClickException as exc:
            code = exc.exit_code
            print_failure(exc.format_message(), None, code, as_json)
        except (typer.Abort, KeyboardInterrupt):
            code = EXIT_INTERRUPTED
            print_failure("interrupted", None, code, as_json)
        except Exception as exc:  # a bug: show it, masked, and say so
            code = EXIT_INTERNAL
            echo(traceback.format_exc().rstrip("\n"), err=True)
            print_failure(f"internal error: {type(exc).__name__}: {exc}", "this is a bug in supactl; "
                          "please report it with the traceback above", code, as_json)
        if standalone_mode:
            sys.exit(code)
        return code


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
