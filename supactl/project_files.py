"""Where the function and migrations come from (the project checkout, or the copy inside the wheel),
and which of their files are the product a user gets.

Standard library only: the wheel's build hook (hatch_build.py) loads this file to pick the same
files `init` copies.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Iterator

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


# Never part of the product: caches and editor droppings, and the local CLI's own state.
_IGNORED_NAMES = {"__pycache__", ".DS_Store", "node_modules", ".temp"}
# The function's own tests and their fakes are ours, not the user's: in their project they would only
# fail (testing/test_database.ts needs TEST_DATABASE_URL).
_TEST_ONLY_DIRS = {"testing"}


def is_test_only(rel: PurePath) -> bool:
    """A file of the function's test suite (a `*_test.ts` or anything under `testing/`)."""
    return rel.name.endswith(("_test.ts", "_test.js")) or bool(_TEST_ONLY_DIRS.intersection(rel.parts))


def product_files(supabase_dir: Path) -> Iterator[Path]:
    """The files of `supabase_dir` a user's project gets, relative to it, in a stable order: the
    function's runtime files and the migrations, no tests, no fakes, no caches."""
    for sub in (Path("functions") / FUNCTION_NAME, Path("migrations")):
        for path in sorted((supabase_dir / sub).rglob("*")):
            rel = path.relative_to(supabase_dir)
            if path.is_file() and not _IGNORED_NAMES.intersection(rel.parts) and not is_test_only(rel):
                yield rel
