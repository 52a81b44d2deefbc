"""`supactl init`: put the function, the migrations and the settings into a user's project.

Safe to run again: a file equal to what supactl would write is "unchanged"; a file supactl wrote
earlier and nobody touched is "updated" to the new version (the digests of what it wrote are kept
in supabase/.supactl-init.json, meant to be committed); a file the user changed is "skipped" and
only replaced with `force`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from supactl.project_files import FUNCTION_NAME, bundled_supabase_dir, product_files

MANIFEST = Path("supabase") / ".supactl-init.json"

ENV_EXAMPLE = """\
# Settings supactl reads: command-line flag > environment > this file (.env) — copy it to .env.
# .env holds secrets: it is listed in .gitignore; in CI use repository secrets instead.

# Supabase personal access token (sbp_…): https://supabase.com/dashboard/account/tokens
SUPABASE_ACCESS_TOKEN=
# The project's 20-letter ref, from the dashboard URL /project/<ref> (or run `supabase link`).
SUPABASE_PROJECT_REF=
# Postgres connection string for `supactl up` / `db push`: Project Settings > Database >
# Connection string (URI), with the database password filled in.
SUPABASE_DB_URL=

# OpenAI API key, stored as a function secret: https://platform.openai.com/api-keys
OPENAI_API_KEY=

# Twilio Account SID (AC…) and Auth Token: https://console.twilio.com (Account Info).
# The function checks Twilio's signatures with the Auth Token, so it is always needed.
TWILIO_ACCOUNT_SID=
TWILIO_AUTH_TOKEN=
# Optional: an API key (SK…) and its secret for Twilio's REST API instead of the Auth Token.
TWILIO_API_KEY=
TWILIO_API_SECRET=
# Numbers `supactl up` points at the function, comma-separated E.164 (+14155550100,+4930…).
# Empty: every number recorded for a tenant (`supactl numbers add`).
SUPACTL_TWILIO_NUMBERS=

# Optional function settings, sent as secrets by `supactl up` when set.
# The function's public URL if not https://<ref>.supabase.co/functions/v1/twilio-voice.
PUBLIC_URL=
OPENAI_REALTIME_MODEL=
OPENAI_REALTIME_URL=
# rest (default) or postgres (then also SUPABASE_DB_URL as a secret).
TURN_STORE=
# The plan's Edge Function wall clock in seconds: 400 on paid plans (default), 150 on the free plan.
# Long calls move to a fresh worker shortly before it, at a pause in the conversation.
WALL_CLOCK_LIMIT_S=

# Overrides for tests and proxies: default https://api.supabase.com and https://api.twilio.com.
SUPABASE_API_URL=
TWILIO_API_URL=
"""

CONFIG_TOML_NEW = f"""\
# Written by `supactl init`; the Supabase CLI reads this file too (`supabase init` writes a fuller one).

[functions.{FUNCTION_NAME}]
# Twilio cannot send a Supabase JWT: the function checks Twilio's signature instead.
verify_jwt = false
"""


@dataclass(frozen=True)
class FileOutcome:
    path: str  # relative to the project folder
    status: str  # created | updated | unchanged | skipped | overwritten
    reason: str = ""


def bundled_files() -> dict[str, bytes]:
    """Relative path -> content of everything `init` copies from the installed package."""
    source = bundled_supabase_dir()
    return {str(Path("supabase") / rel): (source / rel).read_bytes() for rel in product_files(source)}


def init_project(project_dir: Path, *, force: bool = False) -> list[FileOutcome]:
    project_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = project_dir / MANIFEST
    manifest: dict[str, str] = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    outcomes = [_write_packaged(project_dir, rel, content, manifest, force)
                for rel, content in bundled_files().items()]
    outcomes.append(_write_packaged(project_dir, ".env.example", ENV_EXAMPLE.encode(), manifest, force))
    outcomes.append(_edit_config_toml(project_dir / "supabase" / "config.toml"))
    outcomes.append(_ignore_local_state(project_dir / ".gitignore"))
    new_manifest = json.dumps(dict(sorted(manifest.items())), indent=2) + "\n"
    if not manifest_path.is_file() or manifest_path.read_text() != new_manifest:
        manifest_path.write_text(new_manifest)
    return outcomes


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _write_packaged(root: Path, rel: str, content: bytes, manifest: dict[str, str], force: bool) -> FileOutcome:
    target = root / rel
    if not target.exists():
        status = "created"
    else:
        current = target.read_bytes()
        if current == content:
            manifest[rel] = _digest(content)
            return FileOutcome(rel, "unchanged")
        if manifest.get(rel) == _digest(current):
            status = "updated"  # supactl wrote it and nobody changed it since
        elif force:
            status = "overwritten"
        else:
            return FileOutcome(rel, "skipped", "changed since supactl wrote it; --force replaces it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    manifest[rel] = _digest(content)
    return FileOutcome(rel, status)


def _edit_config_toml(path: Path) -> FileOutcome:
    """Set [functions.twilio-voice] verify_jwt = false, keeping every other line and comment."""
    import tomlkit

    rel = "supabase/config.toml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONFIG_TOML_NEW)
        return FileOutcome(rel, "created")
    original = path.read_text(encoding="utf-8")
    try:
        doc = tomlkit.parse(original)
    except tomlkit.exceptions.ParseError as exc:
        from supactl.errors import ConfigError

        raise ConfigError(f"{rel} is not valid TOML: {exc}", hint="fix it, then run `supactl init` again") from None
    functions = doc.get("functions")
    if functions is None:
        functions = tomlkit.table(is_super_table=True)
        doc["functions"] = functions
    function = functions.get(FUNCTION_NAME)
    if function is None:
        function = tomlkit.table()
        function.add(tomlkit.comment("Twilio cannot send a Supabase JWT: the function checks Twilio's signature instead."))
        functions[FUNCTION_NAME] = function
    if function.get("verify_jwt") is False:
        return FileOutcome(rel, "unchanged")
    function["verify_jwt"] = False
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return FileOutcome(rel, "updated", f"[functions.{FUNCTION_NAME}] verify_jwt = false")


# What must never be committed: secrets, and the local state `supactl dev` and the supabase CLI
# keep in the project (a Postgres cluster, dev.env with a JWT secret, the linked project's ref).
IGNORED_LOCAL_STATE = (
    ("# secrets: never commit (supactl init)", ".env", (".env", "/.env", "*.env", ".env*")),
    ("# supactl dev: local Postgres and dev.env (supactl init)", ".supactl/", (".supactl", ".supactl/", "/.supactl/")),
    ("# supabase CLI local state (supactl init)", "supabase/.temp/", ("supabase/.temp", "supabase/.temp/", "/supabase/.temp/")),
)


def _ignore_local_state(path: Path) -> FileOutcome:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    present = {line.strip() for line in lines}
    missing = [(comment, entry) for comment, entry, forms in IGNORED_LOCAL_STATE if not present & set(forms)]
    if not missing:
        return FileOutcome(".gitignore", "unchanged")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + "".join(f"{comment}\n{entry}\n" for comment, entry in missing), encoding="utf-8")
    return FileOutcome(".gitignore", "updated" if lines else "created")
