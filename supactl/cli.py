"""The supactl command line: option parsing and printing only; the work is in the library modules.

Command groups live in supactl/commands/, one module each; heavy libraries (psycopg, httpx,
supabase) are imported inside the commands that use them so `--help` and `--version` stay fast.
"""

from __future__ import annotations

import typer

from supactl import __version__
from supactl.commands import db as db_commands
from supactl.commands import tenants as tenant_commands
from supactl.commands import call as call_commands, calls as calls_commands, dev as dev_commands
from supactl.commands import calls_recording as recording_commands, dial as dial_commands
from supactl.commands import cloud as cloud_commands, secrets as secrets_commands
from supactl.commands._output import CONTEXT, HELP_MARKUP, SupactlGroup
from supactl.commands.members import members_app
from supactl.commands.selfhost import selfhost_app
from supactl.commands.tools import tools_app
from supactl.commands.twilio import twilio_app

app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    name="supactl",
    help="An AI phone agent on Supabase, per tenant, deployed in one command.",
    no_args_is_help=True,
    cls=SupactlGroup,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"supactl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """An AI phone agent on Supabase, per tenant, deployed in one command."""


app.add_typer(db_commands.app, name="db")
app.add_typer(tenant_commands.tenants_app, name="tenants")
app.add_typer(tenant_commands.numbers_app, name="numbers")
app.add_typer(twilio_app, name="twilio")
app.add_typer(dev_commands.dev_app, name="dev")
app.command("call")(call_commands.call)
app.command("dial")(dial_commands.dial)
calls_commands.calls_app.command("recording")(recording_commands.calls_recording)
app.add_typer(calls_commands.calls_app, name="calls")
app.add_typer(secrets_commands.secrets_app, name="secrets")
app.add_typer(members_app, name="members")
app.add_typer(selfhost_app, name="selfhost")
app.add_typer(tools_app, name="tools")
cloud_commands.register(app)


def main() -> None:
    app()
