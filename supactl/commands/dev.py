"""`supactl dev`: Postgres, the function on Deno and a model on this machine, until Ctrl-C;
`supactl dev status` and `supactl dev stop` for the one running in this project."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, WORKDIR, project
from supactl.commands._output import CONTEXT, HELP_MARKUP, cli_errors, echo, print_json
from supactl.errors import EXIT_INTERRUPTED, SupactlError

# Not command_group(): a bare `supactl dev` runs the stack rather than printing help.
dev_app = typer.Typer(rich_markup_mode=HELP_MARKUP, context_settings=CONTEXT, invoke_without_command=True)


def _print_info(info, demo: bool) -> None:
    echo("")
    echo(f"  function URL   {info.function_url}")
    echo(f"  database URL   {info.db_url}   (local password: postgres)")
    echo(f"  Twilio token   {info.twilio_auth_token}   (dev only; signs simulated calls)")
    echo(f"  demo tenant    {info.tenant_name} ({info.tenant_id}), number {info.number}")
    echo(f"  tenant JWT     {info.jwt}")
    echo(f"  model          {info.model}")
    echo(f"  written to     {info.env_file}")
    echo("")
    if demo:  # the stack stops after the demo call: nothing to try against it afterwards
        return
    echo("  try, in this folder (both read .supactl/dev.env):")
    echo("        supactl call                          a simulated call with a bundled sample")
    echo("        supactl calls list --jwt <tenant JWT>   the call log as the demo tenant sees it")
    echo("")


@dev_app.callback(invoke_without_command=True)
@cli_errors
def dev(
    ctx: typer.Context,
    demo: bool = typer.Option(False, "--demo", help="Start, place one simulated call, print it, stop."),
    port: int = typer.Option(54321, "--port", help="Port of the function (Supabase's local API port)."),
    workdir: Optional[Path] = WORKDIR,
    loopback: bool = typer.Option(False, "--loopback", help="Use the loopback model even if OPENAI_API_KEY is set."),
) -> None:
    """Run the whole call locally: embedded Postgres, the function on Deno, and a model.

    The model is OpenAI Realtime when OPENAI_API_KEY is set, otherwise a loopback that plays the caller's audio back.
    Ctrl-C stops everything and exits 130.
    """
    if ctx.invoked_subcommand is not None:
        return
    from supactl.dev_stack.stack import DevSettings, DevStack, DevStackError, demo_call, require_local_stack

    require_local_stack()
    stop = threading.Event()
    interrupted = threading.Event()

    def on_signal(signum, frame) -> None:
        # Ctrl-C is an interrupt (130); SIGTERM (`dev stop`, a service manager) a requested, clean stop (0).
        if signum == signal.SIGINT:
            interrupted.set()
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = DevStack(DevSettings(project_dir=project(workdir), port=port, force_loopback=loopback,
                                 log=lambda line: echo(line), cancel=stop))
    try:
        info = stack.start()
        if stop.is_set():
            raise typer.Exit(EXIT_INTERRUPTED if interrupted.is_set() else 0)
        _print_info(info, demo)
        if demo:
            from supactl.commands.call import print_call_report

            report, turns = demo_call(info, echo)
            print_call_report(report, turns)
            return
        echo("ready: Ctrl-C stops everything (the data stays in .supactl/)")
        while not stop.wait(0.5):
            code = stack.function_exited()
            if code is not None:
                raise DevStackError(f"the function exited (code {code}); its log is above")
        raise typer.Exit(EXIT_INTERRUPTED if interrupted.is_set() else 0)
    except SupactlError:
        if stop.is_set():  # whatever start-up step a signal cut short, it was asked to stop
            raise typer.Exit(EXIT_INTERRUPTED if interrupted.is_set() else 0) from None
        raise
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if demo and not stop.is_set():
            echo("the stack has stopped; `supactl dev` keeps it running for `supactl call`")


@dev_app.command("status")
@cli_errors
def dev_status(workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Whether a `supactl dev` runs in this project, and its URLs. Exits 5 when none runs."""
    from supactl.dev_stack.state import running_dev
    from supactl.errors import CheckFailed

    where = project(workdir)
    running = running_dev(where)
    if running is None:
        raise CheckFailed(f"no `supactl dev` is running in {where}", hint="start one with `supactl dev`")
    if as_json:
        print_json({"pid": running.pid, "function_url": running.env.get("SUPACTL_FUNCTION_URL"),
                    "db_url": running.env.get("SUPABASE_DB_URL")})
        return
    echo(f"running (pid {running.pid})")
    echo(f"  function URL   {running.env.get('SUPACTL_FUNCTION_URL', '?')}")
    echo(f"  database URL   {running.env.get('SUPABASE_DB_URL', '?')}")


@dev_app.command("stop")
@cli_errors
def dev_stop(workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Stop the `supactl dev` running in this project, or what a killed one left running."""
    import time

    from supactl.dev_stack.stack import clean_up_leftovers
    from supactl.dev_stack.state import running_dev

    where = project(workdir)
    running = running_dev(where)
    stopped = []
    if running is not None:
        os.kill(running.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while running_dev(where) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"supactl dev (pid {running.pid})")
    stopped += clean_up_leftovers(where)
    if as_json:
        print_json({"stopped": stopped})
        return
    echo("stopped " + ", ".join(stopped) if stopped else f"nothing was running in {where}")
