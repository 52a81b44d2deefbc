"""The settings the function reads from its environment, found in its own source, so the launcher's
permissions and the Deployment's env follow config.ts instead of a copy of its list."""

from __future__ import annotations

import re
from pathlib import Path

from supactl.errors import ConfigError
from supactl.project_files import is_test_only

CONFIG_MODULE = "config.ts"

# config.ts reads each setting through `read("NAME")` or `required("NAME", hint)`; any other module
# reading the environment directly would use `Deno.env.get("NAME")`.
_SETTING_READ = re.compile(r"""\b(?:read|required|Deno\.env\.get)\(\s*["']([A-Z][A-Z0-9_]*)["']""")

# Credentials: a Deployment gets them from a Secret by reference, never as values.
# METRICS_TOKEN (optional) is the bearer a Prometheus scrape of /metrics presents.
SECRET_SETTINGS = ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL",
                   "METRICS_TOKEN")

# npm:postgres (the TURN_STORE=postgres backend) reads every PG* variable libpq knows at connect
# time (PGHOST, PGSSL, PGMAX, …; src/index.js parseOptions): granting the prefix keeps the list
# right across its releases.
LIBRARY_ENV_PREFIXES = ("PG",)


def function_env_names(function_dir: Path) -> list[str]:
    """Every environment variable the function's runtime files (not its tests) read, sorted."""
    if not (function_dir / CONFIG_MODULE).is_file():
        raise ConfigError(f"{function_dir} has no {CONFIG_MODULE}", hint="point at the twilio-voice function folder")
    names: set[str] = set()
    for source in sorted(function_dir.rglob("*.ts")):
        if is_test_only(source.relative_to(function_dir)):
            continue
        names.update(_SETTING_READ.findall(source.read_text(encoding="utf-8")))
    return sorted(names)
