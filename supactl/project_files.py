"""Where the function and migrations come from: the project checkout, or the copy inside the wheel."""

from __future__ import annotations

from pathlib import Path

FUNCTION_NAME = "twilio-voice"

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_supabase_dir() -> Path:
    """The `supabase/` folder this installation of supactl carries.

    A wheel carries it under `supactl/_project/`; an editable install or a checkout reads the
    repository's own `supabase/`, so there is one source of truth either way.
    """
    packaged = _PACKAGE_DIR / "_project" / "supabase"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE_DIR.parent / "supabase"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError("supactl's bundled supabase/ folder is missing: reinstall supactl")


def bundled_migrations_dir() -> Path:
    return bundled_supabase_dir() / "migrations"


def bundled_function_dir(name: str = FUNCTION_NAME) -> Path:
    return bundled_supabase_dir() / "functions" / name
