"""Where settings come from, in order: command-line flag > environment > `.env` in the project
folder (read, never written into the real environment) > files `supabase link` leaves behind."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from supactl.errors import ConfigError
from supactl.redact import register


def read_dotenv(project_dir: Path) -> dict[str, str]:
    path = project_dir / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def lookup(
    name: str,
    flag: str | None = None,
    *,
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    secret: bool = False,
) -> str | None:
    """The first value set for `name`: the flag, the environment, then `.env`."""
    environ = os.environ if environ is None else environ
    value = flag or environ.get(name) or read_dotenv(project_dir or Path.cwd()).get(name) or None
    if secret:
        register(value)
    return value


def db_url(flag: str | None = None, *, project_dir: Path | None = None,
           environ: Mapping[str, str] | None = None) -> str:
    url = lookup("SUPABASE_DB_URL", flag, project_dir=project_dir, environ=environ)
    if not url:
        raise ConfigError(
            "no database URL",
            hint="pass --db-url postgresql://USER:PASSWORD@HOST:PORT/DB or set SUPABASE_DB_URL "
            "(environment or .env); find it under Project Settings > Database > Connection string",
        )
    if not url.startswith(("postgres://", "postgresql://")):
        raise ConfigError(
            "the database URL must start with postgresql://",
            hint="copy the URI form of the connection string from Project Settings > Database",
        )
    # The password is masked wherever the URL is printed (supactl.redact's URL pattern); it is not
    # registered as a bare string, because local stacks use "postgres", which is also the user name.
    return url


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
    project_dir = project_dir or Path.cwd()
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
    return ManagementSettings(
        api_url=supabase_api_url(project_dir=project_dir, environ=environ),
        access_token=access_token(project_dir=project_dir, environ=environ),
        project_ref=project_ref(project_ref_flag, project_dir=project_dir, environ=environ),
    )
