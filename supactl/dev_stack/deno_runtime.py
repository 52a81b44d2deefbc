"""The Deno that serves the function locally: the `deno` wheel, pinned like Supabase's runtime."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Mapping

from supactl.errors import ConfigError


def deno_binary() -> Path:
    """Path of an executable deno, preferring the wheel's (its file ships without the exec bit)."""
    try:
        from deno import find_deno_bin

        path = Path(find_deno_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("deno")
        if not found:
            raise ConfigError(
                "deno is not installed",
                hint="install the local stack: pip install 'supactl[local]'",
            ) from None
        path = Path(found)
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def deno_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Deno runs with: the system CA store (the npm registry is reached only through
    it on some networks) and no colour codes in logs we parse."""
    env = dict(os.environ)
    env.setdefault("DENO_TLS_CA_STORE", "system")
    env["NO_COLOR"] = "1"
    if extra:
        env.update(extra)
    return env
