"""`supactl calls list`, `supactl calls show CALL_SID` and `supactl calls stats`: the call log, transcripts,
latency and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, TENANT_FILTER, WORKDIR, local_database, project
from supactl.commands._output import cli_errors, command_group, print_json
from supactl.commands.tables import console as _console, print_table

calls_app = command_group("Read the call log and transcripts.")

JWT = typer.Option(None, "--jwt", help="Read as this user's JWT (row-level security applies).", show_default=False)
PROJECT_URL = typer.Option(None, "--project-url", help="Read through the API: https://REF.supabase.co (SUPABASE_URL).")
KEY = typer.Option(None, "--key", help="API key for --project-url (anon or service role; SUPABASE_ANON_KEY).",
                   show_default=False)
PRICES = typer.Option(None, "--prices", help="JSON price table over the dated defaults (SUPACTL_PRICES_FILE).",
                      show_default=False)
PLOT = typer.Option(None, "--plot", help="Also draw the latency as an SVG picture to this file (.svg).",
                    show_default=False)


def _call_log(db_url: Optional[str], jwt: Optional[str], project_url: Optional[str], key: Optional[str],
              workdir: Optional[Path]):
    from supactl import config
    from supactl.database import call_log as calls
    from supactl.errors import ConfigError
    from supactl.redact import register

    register(jwt)
    if project_url:
        where = project(workdir)
        api_key = config.lookup("SUPABASE_ANON_KEY", key, project_dir=where, secret=True) or config.lookup(
            "SUPABASE_SERVICE_ROLE_KEY", project_dir=where, secret=True)
        if not api_key:
            raise ConfigError("--project-url needs an API key", hint="pass --key or set SUPABASE_ANON_KEY")
        return calls.SupabaseCallLog(project_url, api_key, jwt)
    return calls.PostgresCallLog(local_database(db_url, workdir), jwt)


def _when(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")


@calls_app.command("list")
@cli_errors
def calls_list(
    tenant: Optional[str] = TENANT_FILTER,
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Show at most this many calls (1-1000)."),
    db_url: Optional[str] = LOCAL_DB_URL, jwt: Optional[str] = JWT, project_url: Optional[str] = PROJECT_URL,
    key: Optional[str] = KEY, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """List calls, newest first."""
    rows = _call_log(db_url, jwt, project_url, key, workdir).list_calls(tenant, limit)
    if as_json:
        from dataclasses import asdict

        print_json({"calls": [asdict(row) for row in rows]})
        return
    print_table(("Call", "Tenant", "From", "To", "Started", "Status", "Handoffs"), [
        (c.call_sid, c.tenant_name or c.tenant_id, c.from_number or "", c.to_number or "", _when(c.started_at),
         c.status + (f" ({c.end_reason})" if c.end_reason else ""), str(c.handoff_count)) for c in rows],
        empty="no calls")


@calls_app.command("show")
@cli_errors
def calls_show(
    call_sid: str = typer.Argument(..., help="The Twilio CallSid (CA…)."),
    db_url: Optional[str] = LOCAL_DB_URL, jwt: Optional[str] = JWT, project_url: Optional[str] = PROJECT_URL,
    key: Optional[str] = KEY, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
    prices: Optional[Path] = PRICES, plot: Optional[Path] = PLOT,
) -> None:
    """Show one call, its latency and cost, and its transcript in conversation order."""
    from supactl.database.call_log import transcript_lines
    from supactl.database.call_stats import call_figures, turn_timeline_svg

    table = _price_table(prices, plot)
    call, turns = _call_log(db_url, jwt, project_url, key, workdir).call_with_turns(call_sid)
    figures = call_figures(call, table)
    if plot is not None:
        _write_plot(plot, turn_timeline_svg(call))
    if as_json:
        from dataclasses import asdict

        print_json({**asdict(call), "figures": figures, "prices": table.describe(),
                    "transcript": transcript_lines(turns)})
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    head = Table(show_header=False, box=None)
    for name, value in (("call", call.call_sid), ("tenant", call.tenant_name or call.tenant_id),
                        ("from / to", f"{call.from_number} -> {call.to_number}"),
                        ("started / ended", f"{_when(call.started_at)} / {_when(call.ended_at)}"),
                        ("status", call.status + (f" ({call.end_reason})" if call.end_reason else "")),
                        ("direction", call.direction),
                        *((("twilio", _twilio_view(call)),) if call.twilio_status else ()),
                        ("handoffs", str(call.handoff_count)), ("usage", json.dumps(call.usage)),
                        *((("transfer", f"{call.transfer_to} ({call.transfer_outcome or 'pending'})"),)
                          if call.transfer_to else ())):
        head.add_row(name, escape(value))
    for name, value in _figure_lines(figures):
        head.add_row(name, escape(value))
    console.print(head)
    transcript = Table("#", "Role", "Text", "Interrupted")
    for t in turns:
        transcript.add_row(str(t.seq), t.role, escape(t.text), "yes" if t.interrupted else "")
    console.print(transcript if turns else "no turns stored")


def _twilio_view(call) -> str:
    """Twilio's final word on the call (status callbacks): status, billed seconds, who answered."""
    parts = [call.twilio_status]
    if call.twilio_duration_s is not None:
        parts.append(f"{call.twilio_duration_s} s")
    if call.answered_by:
        parts.append(f"answered by {call.answered_by}")
    return ", ".join(parts)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _usd(value) -> str:
    return "-" if value is None else f"${value:.4f}"


def _figure_lines(figures: dict) -> list[tuple[str, str]]:
    sent, played, cost = figures["first_audio_sent_ms"], figures["first_audio_played_ms"], figures["cost"]
    tokens = figures["tokens"]
    return [
        ("latency to audio sent", f"p50 {_ms(sent['p50'])}, max {_ms(sent['max'])} ({figures['turns_measured']} turns)"),
        ("latency to audio played", f"p50 {_ms(played['p50'])}, max {_ms(played['max'])}"),
        ("audio in / out", f"{figures['audio_in_min']:.2f} / {figures['audio_out_min']:.2f} min"),
        ("tokens", ", ".join(f"{kind} {count}" for kind, count in tokens.items())),
        ("cost", f"{_usd(cost['total_usd'])} = {cost['model']} {_usd(cost['model_usd'])} + Twilio "
                 f"{cost['twilio_minutes']} min {_usd(cost['twilio_usd'])}"
                 + ("" if cost["model_usd"] is not None else " (no price for the model: add it with --prices)")),
    ]


def _price_table(prices: Optional[Path], plot: Optional[Path]):
    """Before any query: a picture the command cannot draw or a bad price file is refused up front."""
    from supactl.database.call_costs import load_price_table

    if plot is not None and plot.suffix.lower() != ".svg":
        raise typer.BadParameter(f"{plot} must end in .svg (the pictures are SVG; convert to PNG with any viewer)",
                                 param_hint="--plot")
    return load_price_table(prices)


def _write_plot(plot: Path, svg: str) -> None:
    from supactl.errors import SupactlError

    if not svg:
        raise SupactlError("nothing to plot: no measured turns", hint="calls written before metrics have none")
    try:
        plot.write_text(svg)
    except OSError as exc:
        raise SupactlError(f"cannot write {plot}: {exc.strerror}") from None


def _since(value: Optional[str]):
    if value is None:
        return None
    from supactl.database.call_stats import parse_since

    try:
        return parse_since(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@calls_app.command("stats")
@cli_errors
def calls_stats(
    tenant: Optional[str] = TENANT_FILTER,
    since: Optional[str] = typer.Option(None, "--since", help="Only calls started this recently: 90s, 30m, 24h, 7d, 2w.",
                                        callback=_since, show_default=False),
    limit: int = typer.Option(10000, "--limit", min=1, max=100000, help="Over at most this many calls, newest first."),
    db_url: Optional[str] = LOCAL_DB_URL, jwt: Optional[str] = JWT, project_url: Optional[str] = PROJECT_URL,
    key: Optional[str] = KEY, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
    prices: Optional[Path] = PRICES, plot: Optional[Path] = PLOT,
) -> None:
    """Calls, minutes, answer rate, reply latency p50/p95, cost per call and per minute, failures."""
    from datetime import datetime, timezone

    from supactl.database.call_stats import fleet_stats, latency_histogram_svg

    table = _price_table(prices, plot)
    start = None if since is None else datetime.now(timezone.utc) - since  # type: ignore[operator]
    rows = _call_log(db_url, jwt, project_url, key, workdir).list_calls(tenant, limit, since=start)
    stats = fleet_stats(rows, table)
    if plot is not None:
        _write_plot(plot, latency_histogram_svg(rows))
    if as_json:
        print_json({**stats, "since": None if start is None else start.isoformat()})
        return
    sent, played = stats["first_audio_sent_ms"], stats["first_audio_played_ms"]
    rate = "-" if stats["answer_rate"] is None else f"{stats['answer_rate']:.0%}"
    print_table(("Figure", "Value"), [
        ("calls", str(stats["calls"])),
        ("minutes", f"{stats['minutes']:.2f} (audio in {stats['audio_in_min']:.2f} / out {stats['audio_out_min']:.2f})"),
        ("answer rate", rate),
        ("latency to audio sent", f"p50 {_ms(sent['p50'])}, p95 {_ms(sent['p95'])} ({stats['turns_measured']} turns)"),
        ("latency to audio played", f"p50 {_ms(played['p50'])}, p95 {_ms(played['p95'])}"),
        ("cost", f"{_usd(stats['cost_usd'])}: {_usd(stats['cost_per_call_usd'])} a call, "
                 f"{_usd(stats['cost_per_minute_usd'])} a minute"
                 + (f" ({stats['unpriced_calls']} calls on unpriced models)" if stats["unpriced_calls"] else "")),
        ("failures", ", ".join(f"{reason} {n}" for reason, n in stats["failures"].items()) or "none"),
        ("prices", stats["prices"]["as_of"]),
    ], empty="no calls")
