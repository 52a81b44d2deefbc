"""Where settings come from, in order: command-line flag > environment > `.env` in the project
folder (read, never written into the real environment) > files `supabase link` leaves behind."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from supactl.errors import ConfigError
from supactl.redact import register


PROJECT_MARKER = Path("supabase") / "config.toml"

# .env names whose values are settings, not credentials: shown in messages (a masked URL would hide
# where calls go). Every other value of a .env file is masked wherever it appears.
NOT_SECRET = frozenset({
    "SUPABASE_PROJECT_REF", "SUPABASE_PROJECT_ID", "SUPABASE_URL", "SUPABASE_API_URL", "SUPABASE_AUTH_URL",
    "SUPABASE_DB_URL",  # its password is masked on its own (register_url_password)
    "PUBLIC_URL", "OPENAI_REALTIME_URL", "OPENAI_REALTIME_MODEL", "TURN_STORE", "WALL_CLOCK_LIMIT_S",
    "SUPACTL_TWILIO_NUMBERS", "TWILIO_ACCOUNT_SID", "SUPACTL_FUNCTION_URL", "SUPACTL_DEMO_TENANT_ID",
    "SUPACTL_DEMO_TENANT", "SUPACTL_DEMO_NUMBER", "SUPACTL_MODEL",
})


def find_project(start: Path | None = None) -> Path:
    """The nearest folder from `start` (default: the current one) upward holding supabase/config.toml,
    as the Supabase CLI finds its project; `start` itself when none does (e.g. before `init`)."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder
    return here


def register_url_password(url: str | None) -> None:
    """Mask a connection URL's password wherever it appears on its own, too (an error may quote it
    without the URL). Local stacks' password `postgres` is also the user name, so it stays readable."""
    if not url:
        return
    from urllib.parse import unquote

    authority = url.partition("://")[2].split("/", 1)[0]
    userinfo = authority.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    if password and password != user and password != "postgres":
        register(password, unquote(password))


def read_env_file(path: Path, *, mask: bool = True) -> dict[str, str]:
    """NAME=value lines of an env file (python-dotenv's syntax), every value but NOT_SECRET ones
    registered for masking (unless `mask` is off: `supactl dev`'s own file of dev-only values). Any problem is a ConfigError naming the file (and the line), reported
    before anything is done with a half-read file."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise ConfigError(f"{path} is not UTF-8 text ({'UTF-16' if utf16 else f'byte {exc.start + 1} is not UTF-8'})",
                          hint=f"save {path.name} as UTF-8 (e.g. `iconv -f {'UTF-16' if utf16 else 'LATIN1'} -t UTF-8`)"
                          ) from None
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # The statement is not quoted back: it may hold a secret.
            raise ConfigError(f"{path}, line {binding.original.line}: cannot parse this line",
                              hint="write NAME=value; a value opened with a quote needs the closing quote")
    values = {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    for name, value in values.items():
        if mask and name.upper() not in NOT_SECRET:
            register(value)
    register_url_password(values.get("SUPABASE_DB_URL"))
    return values


def read_dotenv(project_dir: Path) -> dict[str, str]:
    path = project_dir / ".env"
    return read_env_file(path) if path.is_file() else {}


def lookup(
    name: str,
    flag: str | None = None,
    *,
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    secret: bool = False,
) -> str | None:
    """The first value set for `name`: the flag, the environment, then `.env`."""
    return lookup_with_source(name, flag, project_dir=project_dir, environ=environ, secret=secret)[0]


def lookup_with_source(name: str, flag: str | None = None, *, flag_name: str | None = None,
                       project_dir: Path | None = None, environ: Mapping[str, str] | None = None,
                       secret: bool = False) -> tuple[str | None, str]:
    """`lookup`, and where the value came from, in the words a message uses."""
    environ = os.environ if environ is None else environ
    project_dir = project_dir or find_project()
    value, source = flag, flag_name or "the command line"
    if not value:
        value, source = environ.get(name), f"{name} in the environment"
    if not value:
        value, source = read_dotenv(project_dir).get(name), f"{name} in {project_dir / '.env'}"
    if secret:
        register(value)
    return value or None, source


class DatabaseUrl(str):
    """A connection URL that knows where it came from, so an error can say which setting to fix."""

    source: str

    def __new__(cls, url: str, source: str) -> "DatabaseUrl":
        made = super().__new__(cls, url)
        made.source = source
        return made


def check_db_url(url: str, source: str) -> DatabaseUrl:
    register_url_password(url)
    if not url.startswith(("postgres://", "postgresql://")):
        raise ConfigError(f"the database URL from {source} must start with postgresql://",
                          hint="copy the URI form of the connection string from Project Settings > Database")
    authority = url.partition("://")[2].split("/", 1)[0]
    if authority.count("@") > 1:
        # libpq splits user:password@host at the first '@', so the rest of the password becomes the host.
        raise ConfigError(f"the database URL from {source} has a password containing '@'",
                          hint="URL-encode the password: '@' as %40 (also ':' %3A, '/' %2F, '#' %23, '?' %3F)")
    return DatabaseUrl(url, source)


DB_URL_HINT = ("pass --db-url postgresql://USER:PASSWORD@HOST:PORT/DB or set SUPABASE_DB_URL "
               "(environment or .env); find it under Project Settings > Database > Connection string")


def db_url(flag: str | None = None, *, project_dir: Path | None = None,
           environ: Mapping[str, str] | None = None) -> DatabaseUrl:
    """The project's database: --db-url > SUPABASE_DB_URL in the environment > in .env."""
    project_dir = project_dir or find_project()
    url, source = lookup_with_source("SUPABASE_DB_URL", flag, flag_name="--db-url", project_dir=project_dir,
                                     environ=environ)
    if not url:
        raise ConfigError(f"no database URL: SUPABASE_DB_URL is set neither in the environment nor in "
                          f"{project_dir / '.env'}", hint=DB_URL_HINT)
    return check_db_url(url, source)


def all_settings(*checks: Callable[[], Any]) -> list[Any]:
    """Run every check; the ConfigErrors of all of them raised as one, so a user fixes them in one go."""
    results: list = []
    problems: list[ConfigError] = []
    for check in checks:
        try:
            results.append(check())
        except ConfigError as exc:
            results.append(None)
            for problem in getattr(exc, "problems", [exc]):
                # One broken .env fails every lookup the same way: report it once.
                if all(problem.message != seen.message for seen in problems):
                    problems.append(problem)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        combined = ConfigError(f"{len(problems)} settings are missing or malformed: "
                               + "; ".join(p.message for p in problems),
                               hint="\n  ".join(f"{p.message}: {p.hint}" if p.hint else p.message for p in problems))
        combined.problems = problems  # type: ignore[attr-defined]
        raise combined
    return results


# --- Settings the cloud commands need ------------------------------------------------------------

SUPABASE_API_URL_DEFAULT = "https://api.supabase.com"

ACCESS_TOKEN_FORMAT = re.compile(r"^sbp_(oauth_)?[a-f0-9]{40}$")
PROJECT_REF_FORMAT = re.compile(r"^[a-z]{20}$")

# Where a user finds each value: printed whenever one is missing.
WHERE_TO_GET = {
    "SUPABASE_ACCESS_TOKEN": "create a personal access token at https://supabase.com/dashboard/account/tokens",
    "SUPABASE_PROJECT_REF": "the 20 letters after /project/ in your dashboard URL; `supabase link` also records it",
    "OPENAI_API_KEY": "create a key at https://platform.openai.com/api-keys",
    "TWILIO_ACCOUNT_SID": "the Account SID (AC…) on https://console.twilio.com",
    "TWILIO_AUTH_TOKEN": "the Auth Token next to the Account SID on https://console.twilio.com",
}

PROJECT_REF_FILE = Path("supabase") / ".temp" / "project-ref"


def require(name: str, flag: str | None = None, *, flag_name: str | None = None,
            project_dir: Path | None = None, environ: Mapping[str, str] | None = None,
            secret: bool = False) -> str:
    """`lookup`, but a missing value is a ConfigError naming the variable and where to get it."""
    value = lookup(name, flag, project_dir=project_dir, environ=environ, secret=secret)
    if not value:
        where = WHERE_TO_GET.get(name)
        via = f"pass {flag_name} or set {name}" if flag_name else f"set {name}"
        raise ConfigError(f"{name} is not set",
                          hint=f"{via} (environment or .env)" + (f"; {where}" if where else ""))
    return value


def access_token(flag: str | None = None, *, project_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    token = require("SUPABASE_ACCESS_TOKEN", flag, project_dir=project_dir, environ=environ, secret=True)
    if not ACCESS_TOKEN_FORMAT.match(token):
        raise ConfigError(
            "SUPABASE_ACCESS_TOKEN is not a Supabase access token (expected sbp_ and 40 hex digits)",
            hint=WHERE_TO_GET["SUPABASE_ACCESS_TOKEN"] + "; an anon or service_role key will not work",
        )
    return token


def project_ref(flag: str | None = None, *, project_dir: Path | None = None,
                environ: Mapping[str, str] | None = None) -> str:
    """flag > SUPABASE_PROJECT_REF / SUPABASE_PROJECT_ID (environment, then .env) > the ref
    `supabase link` wrote to supabase/.temp/project-ref."""
    project_dir = project_dir or find_project()
    environ = os.environ if environ is None else environ
    dotenv = read_dotenv(project_dir)
    names = ("SUPABASE_PROJECT_REF", "SUPABASE_PROJECT_ID")
    candidates = [("--project-ref", flag)]
    candidates += [(name, environ.get(name)) for name in names]
    candidates += [(f"{name} in .env", dotenv.get(name)) for name in names]
    source, ref = next(((s, v) for s, v in candidates if v), ("", None))
    if not ref:
        linked = project_dir / PROJECT_REF_FILE
        if linked.is_file():
            ref, source = linked.read_text().strip(), str(PROJECT_REF_FILE)
    if not ref:
        raise ConfigError(
            "no Supabase project ref",
            hint="pass --project-ref, set SUPABASE_PROJECT_REF (environment or .env), or run "
            "`supabase link`; " + WHERE_TO_GET["SUPABASE_PROJECT_REF"],
        )
    if not PROJECT_REF_FORMAT.match(ref):
        raise ConfigError(
            f"project ref {ref!r} from {source} is not 20 lowercase letters",
            hint=WHERE_TO_GET["SUPABASE_PROJECT_REF"],
        )
    return ref


def supabase_api_url(*, project_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """SUPABASE_API_URL overrides https://api.supabase.com (tests, proxies)."""
    url = lookup("SUPABASE_API_URL", project_dir=project_dir, environ=environ) or SUPABASE_API_URL_DEFAULT
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"SUPABASE_API_URL must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def openai_api_key(*, project_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    return require("OPENAI_API_KEY", project_dir=project_dir, environ=environ, secret=True)


@dataclass(frozen=True)
class ManagementSettings:
    api_url: str
    access_token: str = field(repr=False)
    project_ref: str


def management_settings(*, project_ref_flag: str | None = None, project_dir: Path | None = None,
                        environ: Mapping[str, str] | None = None) -> ManagementSettings:
    """Everything needed to call the Management API, checked before any request is made."""
    api_url, token, ref = all_settings(
        lambda: supabase_api_url(project_dir=project_dir, environ=environ),
        lambda: access_token(project_dir=project_dir, environ=environ),
        lambda: project_ref(project_ref_flag, project_dir=project_dir, environ=environ),
    )
    return ManagementSettings(api_url=api_url, access_token=token, project_ref=ref)
