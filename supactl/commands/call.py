"""`supactl call [FUNCTION_URL]`: place a simulated Twilio call against the function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._output import cli_errors, echo, print_json


def print_call_report(report, turns: list | None) -> None:
    """The simulator's report and the stored transcript, for people."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from supactl.redact import redact

    console = Console()
    p50, worst = report.latency_p50_ms, report.latency_max_ms
    latency = "n/a (no reply heard after the caller spoke)" if p50 is None else \
        f"p50 {p50:.0f} ms, max {worst:.0f} ms over {len(report.latencies_ms)} turn(s)"
    rows = [
        ("call", report.call_sid),
        ("ended by", report.ended_by),
        ("streams", str(report.streams)),
        ("reply latency", latency),
        ("frames sent / received", f"{report.frames_sent} / {report.frames_received}"),
        ("marks received / echoed", f"{report.marks_received} / {report.marks_echoed}"),
        ("clears", str(report.clears)),
        ("assistant audio heard", f"{report.heard_ms / 1000:.1f} s"),
    ]
    if report.dtmf_sent:
        rows.append(("dtmf sent", str(report.dtmf_sent)))
    for handoff in report.handoffs:
        gap = "n/a" if handoff.gap_ms is None else f"{handoff.gap_ms:.0f} ms gap"
        rows.append((f"handoff to stream {handoff.stream}", gap))
    for said in report.says:
        rows.append(("<Say>", said))
    for problem in report.protocol_errors[:5]:
        rows.append(("protocol error", problem))
    table = Table(show_header=False, box=None)
    for name, value in rows:
        table.add_row(name, escape(redact(value)))
    console.print(table)
    if turns is None:
        echo("transcript: not read (no database URL; pass --db-url to see it)")
        return
    transcript = Table("#", "Role", "Text", "Interrupted", title="Stored transcript")
    for turn in turns:
        transcript.add_row(str(turn.seq), turn.role, escape(redact(turn.text)), "yes" if turn.interrupted else "")
    console.print(transcript if turns else "stored transcript: no turns")


@cli_errors
def call(
    function_url: Optional[str] = typer.Argument(
        None, help="The function URL (default: the one `supactl dev` wrote to .supactl/dev.env)."),
    wav: Optional[Path] = typer.Option(None, "--wav", help="What the caller says: any WAV (default: a bundled sample)."),
    auth_token: Optional[str] = typer.Option(
        None, "--auth-token", help="Twilio Auth Token the function verifies (default: TWILIO_AUTH_TOKEN).",
        show_default=False),
    to_number: Optional[str] = typer.Option(None, "--to", help="Called number (default: the dev demo number)."),
    from_number: str = typer.Option("+15555550123", "--from", help="Caller's number."),
    barge_in: bool = typer.Option(False, "--barge-in", help="Speak again while the reply plays."),
    dtmf: Optional[str] = typer.Option(None, "--dtmf", help="Press these keys after the first reply."),
    drop: bool = typer.Option(False, "--drop", help="Hang up by closing the socket, without `stop`."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write what the caller heard to this WAV."),
    db_url: Optional[str] = typer.Option(None, "--db-url", help="Read the stored transcript from this database."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Print each step of the call."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Place a simulated Twilio call: signed webhook, TwiML, media stream in real time, report."""
    from supactl import config
    from supactl.database.call_log import PostgresCallLog, wait_until_final
    from supactl.database.tenants import normalize_e164
    from supactl.dev_stack.stack import read_dev_env
    from supactl.errors import ConfigError, SupactlError
    from supactl.simulator import call_script as steps
    from supactl.simulator.simulated_call import CallOptions, place_call

    dev = read_dev_env(Path.cwd())
    function_url = function_url or dev.get("SUPACTL_FUNCTION_URL")
    if not function_url:
        raise ConfigError("no function URL", hint="pass FUNCTION_URL (https://REF.supabase.co/functions/v1/"
                                                  "twilio-voice) or start `supactl dev` in this folder")
    if not function_url.startswith(("http://", "https://")):
        raise ConfigError(f"the function URL must start with https:// (or http:// locally): {function_url}")
    token = config.lookup("TWILIO_AUTH_TOKEN", auth_token, secret=True) or dev.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise ConfigError("no Twilio auth token to sign the webhook with",
                          hint="pass --auth-token or set TWILIO_AUTH_TOKEN to the token the function has")
    to = to_number or dev.get("SUPACTL_DEMO_NUMBER")
    if not to:
        raise ConfigError("no number to call", hint="pass --to +1… (a number assigned to a tenant)")
    if wav is not None and not wav.is_file():
        raise ConfigError(f"no WAV file at {wav}")
    try:
        speech = steps.Play.wav(wav)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="use a WAV file (PCM, float or µ-law)") from None
    script: list = [steps.WaitForReply(start_within=2.0), speech]
    if barge_in:
        script += [steps.WaitForAudio(), steps.Silence(0.6), speech]
    script.append(steps.WaitForReply())
    if dtmf:
        script += [steps.Dtmf(dtmf), steps.WaitForReply()]
    script.append(steps.HangUp(send_stop=not drop))
    options = CallOptions(function_url=function_url, auth_token=token, to_number=normalize_e164(to),
                          from_number=normalize_e164(from_number), record_to=record,
                          log=(lambda line: echo(f"call | {line}", err=True)) if verbose else None)
    report = place_call(options, script)
    turns = None
    url = db_url or config.lookup("SUPABASE_DB_URL") or dev.get("SUPABASE_DB_URL")
    if url:
        try:
            _, turns = wait_until_final(PostgresCallLog(url), report.call_sid)
        except SupactlError as exc:
            echo(f"transcript: not available ({exc.message})", err=True)
    if as_json:
        from supactl.database.call_log import transcript_lines

        print_json({**report.as_dict(), "transcript": transcript_lines(turns) if turns is not None else None})
    else:
        print_call_report(report, turns)
    if record:
        echo(f"recorded what the caller heard to {record}")
