"""`supactl calls recording CALL_SID [--out FILE]`: download a call's recording from Twilio with the
account's credentials (tenants see only that a recording exists, in call_recordings)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import VERBOSE, WORKDIR, project, trace_sink
from supactl.commands._output import cli_errors, echo
from supactl.errors import SupactlError

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")


@cli_errors
def calls_recording(
    call_sid: str = typer.Argument(..., help="The Twilio CallSid (CA…)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the WAV here (default: CALL_SID.wav)."),
    workdir: Optional[Path] = WORKDIR,
    verbose: bool = VERBOSE,
) -> None:
    """Download the call's dual-channel recording (WAV) from Twilio."""
    from supactl.cloud.outbound import download_recording
    from supactl.cloud.twilio_api import TwilioClient

    if not CALL_SID.match(call_sid):
        raise SupactlError(f"{call_sid!r} is not a CallSid", hint="CA followed by 32 hex digits")
    target = out or Path(f"{call_sid}.wav")
    with TwilioClient.from_config(project_dir=project(workdir), trace=trace_sink(verbose)) as client:
        audio = download_recording(client, call_sid)
    # Written whole after the download: a failed download leaves no partial file behind.
    target.write_bytes(audio)
    echo(f"wrote {target} ({len(audio)} bytes)")
