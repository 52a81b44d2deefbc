"""`supactl call [FUNCTION_URL]`: place a simulated Twilio call against the function."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, VERBOSE, WORKDIR, local_database, project
from supactl.commands._output import cli_errors, echo, print_failure, print_json

DTMF_KEYS = "0123456789*#w"  # Twilio's sendDigits alphabet: digits, * and #, w = a half-second pause


def smoke_test_failure(report) -> str | None:
    """Why a call did not do what a smoke test means (routed, streamed, answered), or None."""
    if report.streams == 0:
        said = f" (it said: {report.says[0]!r})" if report.says else ""
        return f"the function did not open a media stream: is the number routed to a tenant?{said}"
    if report.protocol_errors:
        return f"the stream broke the protocol or the model failed: {report.protocol_errors[0]}"
    if report.frames_received == 0:
        said = f" (it said: {report.says[0]!r} and hung up)" if report.says and report.ended_by == "function" else ""
        return f"no audio came back from the function{said}"
    if not report.latencies_ms:
        return "no reply after the caller spoke"
    return None


def print_call_report(report, turns: list | None, transcript_note: str | None = None) -> None:
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
    for transfer in report.transfers:
        rows.append(("transfer", f"to {transfer['to']} (caller ID {transfer['caller_id']}): {transfer['outcome']}"))
    for said in report.says:
        rows.append(("<Say>", said))
    for problem in report.protocol_errors[:5]:
        rows.append(("protocol error", problem))
    table = Table(show_header=False, box=None)
    for name, value in rows:
        table.add_row(name, escape(redact(value)))
    console.print(table)
    if turns is None:
        echo(f"transcript: {transcript_note or 'not read (no database URL; pass --db-url to see it)'}")
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
    transfer_outcome: str = typer.Option(
        "completed", "--transfer-outcome",
        help="What the person a transfer dials does: completed, busy, no-answer or failed (Twilio's DialCallStatus)."),
    db_url: Optional[str] = LOCAL_DB_URL,
    workdir: Optional[Path] = WORKDIR,
    verbose: bool = VERBOSE,
    as_json: bool = JSON,
) -> None:
    """Place a simulated Twilio call: signed webhook, TwiML, media stream in real time, report.

    Exits 5 (a check failed) when the call was not routed, streamed nothing, got no audio or no reply.
    """
    from supactl import config
    from supactl.database.call_log import PostgresCallLog, wait_until_final
    from supactl.database.tenants import normalize_e164
    from supactl.dev_stack.state import read_dev_env
    from supactl.errors import CheckFailed, ConfigError, SupactlError
    from supactl.simulator import call_script as steps
    from supactl.simulator.simulated_call import CallOptions, place_call

    where = project(workdir)
    dev = read_dev_env(where)
    function_url = function_url or dev.get("SUPACTL_FUNCTION_URL")
    if not function_url:
        raise ConfigError("no function URL", hint="pass FUNCTION_URL (https://REF.supabase.co/functions/v1/"
                                                  "twilio-voice) or start `supactl dev` in this folder")
    if not function_url.startswith(("http://", "https://")):
        raise ConfigError(f"the function URL must start with https:// (or http:// locally): {function_url}")
    token = config.lookup("TWILIO_AUTH_TOKEN", auth_token, project_dir=where, secret=True) or dev.get("TWILIO_AUTH_TOKEN")
    if not token:
        raise ConfigError("no Twilio auth token to sign the webhook with",
                          hint="pass --auth-token or set TWILIO_AUTH_TOKEN to the token the function has")
    to = to_number or dev.get("SUPACTL_DEMO_NUMBER")
    if not to:
        raise ConfigError("no number to call", hint="pass --to +1… (a number assigned to a tenant)")
    if dtmf is not None and (not dtmf or set(dtmf) - set(DTMF_KEYS)):
        raise SupactlError(f"--dtmf {dtmf!r}: only the keys 0-9, * and # (and w for a pause) can be pressed")
    from supactl.simulator.simulated_call import DIAL_OUTCOMES

    if transfer_outcome not in DIAL_OUTCOMES:
        raise SupactlError(f"--transfer-outcome {transfer_outcome!r}: one of {', '.join(DIAL_OUTCOMES)}")
    if record is not None:
        _check_writable(record)
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
                          transfer_outcome=transfer_outcome,
                          log=(lambda line: echo(f"call | {line}", err=True)) if verbose else None)
    with _progress(enabled=not as_json and not verbose, to=to):
        report = place_call(options, script)
        turns, note = None, None
        try:
            url = local_database(db_url, workdir)
        except ConfigError:
            url = None
        if url and report.streams:
            try:
                _, turns = wait_until_final(PostgresCallLog(url), report.call_sid)
            except SupactlError as exc:
                note = f"not available ({exc.message})"
    failure = smoke_test_failure(report)
    if as_json:
        from supactl.database.call_log import transcript_lines

        result = {**report.as_dict(), "transcript": transcript_lines(turns) if turns is not None else None}
        if failure:
            print_failure(failure, CALL_HINT, CheckFailed.exit_code, True, report=result)
            raise typer.Exit(CheckFailed.exit_code)
        print_json(result)
        return
    print_call_report(report, turns, note if report.streams else "none (no stream)")
    if record:
        echo(f"recorded what the caller heard to {record}")
    if failure:
        raise CheckFailed(failure, hint=CALL_HINT)


CALL_HINT = "`supactl doctor` checks each link (number, tenant, function, secrets); `--verbose` shows the call"


def _check_writable(path: Path) -> None:
    """--record is checked before the call: a bad path must not lose a 13 s call's report."""
    from supactl.errors import SupactlError as ConfigError

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"--record {path} is a folder; name a .wav file in it")
    if not folder.is_dir():
        raise ConfigError(f"--record {path}: the folder {folder} does not exist")
    import os

    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--record {path}: cannot write there (permission denied)")


def _progress(*, enabled: bool, to: str):
    """A spinner on an interactive stderr while the call runs (it takes seconds of real time)."""
    import contextlib
    import sys

    if not (enabled and sys.stderr.isatty()):
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(f"calling {to} (a simulated call runs in real time)…")
