"""`supactl dev`: Postgres, the function on Deno and a model on this machine, until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from supactl.commands._output import cli_errors, echo


def _print_info(info) -> None:
    echo("")
    echo(f"  function URL   {info.function_url}")
    echo(f"  database URL   {info.db_url}   (local password: postgres)")
    echo(f"  Twilio token   {info.twilio_auth_token}   (dev only; signs simulated calls)")
    echo(f"  demo tenant    {info.tenant_name} ({info.tenant_id}), number {info.number}")
    echo(f"  tenant JWT     {info.jwt}")
    echo(f"  model          {info.model}")
    echo(f"  written to     {info.env_file}")
    echo("")
    echo("  try, in this folder (both read .supactl/dev.env):")
    echo("        supactl call                          a simulated call with a bundled sample")
    echo("        supactl calls list --jwt <tenant JWT>   the call log as the demo tenant sees it")
    echo("")


@cli_errors
def dev(
    demo: bool = typer.Option(False, "--demo", help="Start, place one simulated call, print it, stop."),
    port: int = typer.Option(54321, "--port", help="Port of the function (Supabase's local API port)."),
    project_dir: Path = typer.Option(Path("."), "--project-dir", help="Project folder; state goes in .supactl/."),
    loopback: bool = typer.Option(False, "--loopback", help="Use the loopback model even if OPENAI_API_KEY is set."),
) -> None:
    """Run the whole call locally: embedded Postgres, the function on Deno, and a model.

    The model is OpenAI Realtime when OPENAI_API_KEY is set, otherwise a loopback that plays the caller's audio back.
    """
    from supactl.dev_stack.stack import DevSettings, DevStack, demo_call, require_local_stack

    require_local_stack()
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = DevStack(DevSettings(project_dir=project_dir, port=port, force_loopback=loopback,
                                 log=lambda line: echo(line), cancel=stop))
    try:
        info = stack.start()
        _print_info(info)
        if demo:
            from supactl.commands.call import print_call_report

            report, turns = demo_call(info, echo)
            print_call_report(report, turns)
            return
        echo("ready: Ctrl-C stops everything (the data stays in .supactl/)")
        while not stop.wait(0.5):
            code = stack.function_exited()
            if code is not None:
                from supactl.dev_stack.stack import DevStackError

                raise DevStackError(f"the function exited (code {code}); its log is above")
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
