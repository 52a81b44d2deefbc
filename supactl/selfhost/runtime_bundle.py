"""A runtime bundle of the function for a self-hosted fleet: the pinned Deno, the function's runtime
files, its module graph cached in a DENO_DIR beside them, a launcher and a Containerfile.

Why not `deno compile`: it downloads a `denort` runtime binary at build time, which is out of reach
where supactl is built and tested; a pinned `deno` run with `--cached-only` over a pre-populated
DENO_DIR fetches nothing at start either, and runs the same files as the Edge deploy.

Layout (paths relative to the bundle root; the Containerfile copies them to /opt/twilio-voice):

    bin/deno           the pinned Deno, executable
    bin/twilio-voice   POSIX sh launcher: `deno run --cached-only` with the function's permissions
    app/               the function's runtime files (no tests), entry index.ts
    deno_dir/          DENO_DIR with the npm packages of app/deno.json; read-only at run time is fine
    Containerfile      a non-root image around the above
    bundle.json        what was built: Deno version, permissions, sizes
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from supactl.errors import SupactlError
from supactl.project_files import FUNCTION_NAME, bundled_function_dir, product_files
from supactl.selfhost.function_settings import LIBRARY_ENV_PREFIXES, function_env_names

ENTRYPOINT = "index.ts"
LAUNCHER = PurePosixPath("bin") / FUNCTION_NAME
DENO = PurePosixPath("bin") / "deno"
APP_DIR = "app"
DENO_DIR = "deno_dir"
MANIFEST = "bundle.json"
CONTAINERFILE = "Containerfile"

# Deno keys its npm cache by registry host (DENO_DIR/npm/<host>/…): the launcher pins the registry
# the bundle was cached from, or an NPM_CONFIG_REGISTRY in a user's environment would point
# `--cached-only` at an empty cache.
NPM_REGISTRY = "https://registry.npmjs.org/"

# Where the image puts the bundle; the function's default port (config.ts DEFAULT_PORT).
IMAGE_ROOT = PurePosixPath("/opt") / FUNCTION_NAME
FUNCTION_PORT = 8000
# distroless/cc: glibc and libgcc_s, which the deno binary links against (and nothing else: no
# shell, no package manager). Its :nonroot tag runs as 65532. Pin it by digest when you build.
BASE_IMAGE = "gcr.io/distroless/cc-debian12:nonroot"
NONROOT_UID = 65532

# What the function needs and no more: sockets (it listens, and reaches Twilio's stream, OpenAI
# Realtime, Supabase and Postgres at URLs from its settings, so hosts cannot be listed) and its own
# settings. No file reads (Deno loads modules and npm files without --allow-read), no sys, no run.
_FIXED_PERMISSIONS = ("--allow-net",)
_CACHE_STEP_TIMEOUT_S = 600


class BundleError(SupactlError):
    """The bundle could not be built."""


@dataclass(frozen=True)
class RuntimeBundle:
    root: Path
    deno_version: str
    permissions: tuple[str, ...]
    files: int
    size_bytes: int

    def as_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "launcher": str(self.root / LAUNCHER),
            "containerfile": str(self.root / CONTAINERFILE),
            "deno_version": self.deno_version,
            "permissions": list(self.permissions),
            "files": self.files,
            "size_bytes": self.size_bytes,
        }


def project_function_dir(project_dir: Path) -> Path:
    """The project's function folder, or the copy this supactl carries (as `supactl dev` serves)."""
    folder = project_dir / "supabase" / "functions" / FUNCTION_NAME
    return folder if (folder / ENTRYPOINT).is_file() else bundled_function_dir()


def permissions(function_dir: Path) -> tuple[str, ...]:
    env = function_env_names(function_dir) + [prefix + "*" for prefix in LIBRARY_ENV_PREFIXES]
    return _FIXED_PERMISSIONS + ("--allow-env=" + ",".join(env),)


def run_arguments(root: PurePosixPath | str, granted: Sequence[str]) -> list[str]:
    """`deno run …` for a bundle installed at `root`: nothing fetched, nothing prompted."""
    app = PurePosixPath(root) / APP_DIR
    return ["run", "--cached-only", "--no-prompt", "--config", str(app / "deno.json"), *granted,
            str(app / ENTRYPOINT)]


def launcher_script(granted: Sequence[str]) -> str:
    arguments = " ".join(_sh_double_quoted(a) for a in run_arguments("$root", granted))
    return f"""#!/bin/sh
# Starts the {FUNCTION_NAME} function from this bundle alone (written by `supactl selfhost build`).
# Settings come from the environment: see docs/self-hosting.md.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd -P)
export DENO_DIR="$root/{DENO_DIR}"
export NPM_CONFIG_REGISTRY={NPM_REGISTRY}
export DENO_NO_UPDATE_CHECK=1
exec "$root/{DENO}" {arguments}
"""


def containerfile(granted: Sequence[str], deno_version: str) -> str:
    entrypoint = json.dumps([str(IMAGE_ROOT / DENO), *run_arguments(IMAGE_ROOT, granted)])
    return f"""# The {FUNCTION_NAME} function on Deno {deno_version}, from a bundle of `supactl selfhost build`.
# Build in the bundle folder: docker build -f {CONTAINERFILE} -t IMAGE .
# Runs as a non-root user with a read-only root filesystem: DENO_DIR is only read (--cached-only);
# mount a writable emptyDir at /tmp (the rendered Deployment does).
FROM {BASE_IMAGE}
COPY --chown=0:0 {DENO} {IMAGE_ROOT / DENO}
COPY --chown=0:0 {APP_DIR} {IMAGE_ROOT / APP_DIR}
COPY --chown=0:0 {DENO_DIR} {IMAGE_ROOT / DENO_DIR}
ENV DENO_DIR={IMAGE_ROOT / DENO_DIR} \\
    NPM_CONFIG_REGISTRY={NPM_REGISTRY} \\
    DENO_NO_UPDATE_CHECK=1 \\
    TMPDIR=/tmp \\
    PORT={FUNCTION_PORT} \\
    HOST=0.0.0.0
USER {NONROOT_UID}:{NONROOT_UID}
EXPOSE {FUNCTION_PORT}
# The shell-less base runs deno directly, with the launcher's arguments.
ENTRYPOINT {entrypoint}
"""


def build_bundle(out: Path, function_dir: Path, deno: Path, *,
                 environ: Mapping[str, str] | None = None) -> RuntimeBundle:
    """Build the bundle into `out` (absent, empty, or an earlier bundle, which is replaced).

    `environ` is the environment of the one networked step, `deno cache` (the npm registry may need
    DENO_TLS_CA_STORE=system); it defaults to supactl's Deno environment.
    """
    if not (function_dir / ENTRYPOINT).is_file():
        raise BundleError(f"{function_dir} has no {ENTRYPOINT}", hint="run it in a project made by `supactl init`")
    if not deno.is_file():
        raise BundleError(f"no Deno binary at {deno}")
    _prepare_out(out)
    app = out / APP_DIR
    for rel in _runtime_files(function_dir):
        target = app / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(function_dir / rel, target)
    bundled_deno = out / DENO
    bundled_deno.parent.mkdir(parents=True)
    shutil.copy2(deno, bundled_deno)
    bundled_deno.chmod(0o755)  # the deno wheel ships its binary without the exec bit
    version = _deno_version(bundled_deno)
    _cache_modules(out, environ)
    _settle_caches(out / DENO_DIR)

    granted = permissions(function_dir)
    launcher = out / LAUNCHER
    launcher.write_text(launcher_script(granted))
    launcher.chmod(0o755)
    (out / CONTAINERFILE).write_text(containerfile(granted, version))
    files = [p for p in out.rglob("*") if p.is_file()]
    bundle = RuntimeBundle(root=out, deno_version=version, permissions=granted, files=len(files),
                           size_bytes=sum(p.stat().st_size for p in files))
    recorded = {**bundle.as_json(), "root": ".", "launcher": str(LAUNCHER), "containerfile": CONTAINERFILE,
                "npm_registry": NPM_REGISTRY}
    (out / MANIFEST).write_text(json.dumps(recorded, indent=2) + "\n")
    return bundle


def _runtime_files(function_dir: Path) -> list[PurePosixPath]:
    """The function's product files (the rule `init` and the wheel use), relative to its folder."""
    prefix = Path("functions") / FUNCTION_NAME
    if function_dir.name != FUNCTION_NAME:
        raise BundleError(f"expected the {FUNCTION_NAME} function folder, got {function_dir}")
    return [PurePosixPath(rel.relative_to(prefix).as_posix())
            for rel in product_files(function_dir.parent.parent) if rel.is_relative_to(prefix)]


def _prepare_out(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise BundleError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            if not (out / MANIFEST).is_file():
                raise BundleError(f"{out} is not empty and holds no earlier bundle",
                                  hint="pass --out with a new or empty folder")
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _deno_version(deno: Path) -> str:
    try:
        first_line = subprocess.run([str(deno), "--version"], capture_output=True, text=True, check=True,
                                    timeout=60).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        raise BundleError(f"the Deno at {deno} does not run: {exc}") from None
    return first_line.split()[1] if len(first_line.split()) > 1 else first_line


def _cache_modules(out: Path, environ: Mapping[str, str] | None) -> None:
    from supactl.dev_stack.deno_runtime import deno_env

    env = dict(environ) if environ is not None else deno_env()
    env.update({"DENO_DIR": str(out / DENO_DIR), "NPM_CONFIG_REGISTRY": NPM_REGISTRY,
                "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"})
    app = out / APP_DIR
    command = [str(out / DENO), "cache", "--config", str(app / "deno.json"), str(app / ENTRYPOINT)]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_CACHE_STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BundleError(f"`deno cache` did not finish within {_CACHE_STEP_TIMEOUT_S} s") from None
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise BundleError(f"`deno cache` of the function failed:\n{tail}",
                          hint="the npm registry must be reachable while building "
                               "(behind a TLS-inspecting proxy: DENO_TLS_CA_STORE=system)")


def _settle_caches(deno_dir: Path) -> None:
    """Fold Deno's SQLite caches out of WAL mode: a read-only DENO_DIR then holds whole databases,
    not a -wal file that only a writer could merge."""
    import sqlite3

    for wal in sorted(deno_dir.glob("*-wal")):
        database = sqlite3.connect(wal.with_name(wal.name.removesuffix("-wal")))
        try:
            database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            database.execute("PRAGMA journal_mode=DELETE")
        finally:
            database.close()


def _sh_double_quoted(word: str) -> str:
    """`"word"`: `$root` still expands, the `*` of `--allow-env=PG*` does not glob."""
    if any(c in word.removeprefix("$root") for c in '"$`\\'):
        raise ValueError(f"cannot quote {word!r} for the launcher")
    return f'"{word}"'
