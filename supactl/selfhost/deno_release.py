"""The Deno a self-hosted worker ships with, fetched as the `deno` wheel and checked by its hash.

Why not the Deno of supactl's own tests (2.4.5, kept because it refuses WebSocket headers like
Supabase's 2.1): its `Deno.serve` sets no TCP_NODELAY on accepted sockets, so model→caller audio
waits on Nagle and the caller's delayed ACK (~20 ms a frame; docs/benchmarks.md). Traced with
strace on every release from 2.4.5 to 2.9.8, 2.8.3 is the oldest that sets it: the oldest release
means the least change in behaviour from the runtime the function is tested on.

Only the wheels whose sha256 is pinned here are accepted: a self-hosted worker holds the service
role key, so its runtime is not whatever the package index serves that day.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from supactl.errors import SupactlError

SHIPPED_DENO_VERSION = "2.8.3"

# sha256 of each pinned wheel, by the machine it runs on (platform.machine()).
_WHEELS = {
    ("2.8.3", "x86_64"): ("manylinux_2_27_x86_64",
                          "9ca5727e5650f8459f39875f0af4b2242ead77da4ce8a8d52e86647036f3d63a"),
    ("2.8.3", "aarch64"): ("manylinux_2_27_aarch64",
                           "9fdb7574a6437fdd59f668e745dc3b3e32725fa360b64204a6b000689fa534e9"),
}
_DOWNLOAD_TIMEOUT_S = 600


class DenoReleaseError(SupactlError):
    """The shipped Deno could not be fetched or is not the pinned one."""


def user_cache_dir() -> Path:
    """Where fetched Deno releases are kept between builds ($XDG_CACHE_HOME/supactl/deno)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "supactl" / "deno"


def shipped_deno(cache_dir: Path, version: str = SHIPPED_DENO_VERSION, machine: str | None = None) -> Path:
    """An executable deno of `version` for `machine`, from `cache_dir` or fetched into it once."""
    machine = machine or platform.machine()
    pinned = _WHEELS.get((version, machine))
    if pinned is None:
        known = ", ".join(f"{v} on {m}" for v, m in sorted(_WHEELS))
        raise DenoReleaseError(f"no pinned Deno {version} wheel for {machine} (pinned: {known})",
                               hint="bundle a Deno binary of your own with --deno PATH")
    platform_tag, sha256 = pinned
    binary = cache_dir / f"deno-{version}-{platform_tag}" / "deno"
    if binary.is_file():
        return binary
    with tempfile.TemporaryDirectory(prefix="supactl-deno-") as scratch:
        wheel = _download(version, platform_tag, Path(scratch))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != sha256:
            raise DenoReleaseError(f"the deno {version} wheel's sha256 is {digest}, not the pinned {sha256}",
                                   hint="the package index served another file: do not ship it")
        _extract_binary(wheel, version, binary)
    return binary


def _download(version: str, platform_tag: str, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--platform", platform_tag, "--dest", str(into), f"deno=={version}"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=_DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DenoReleaseError(f"downloading deno {version} took over {_DOWNLOAD_TIMEOUT_S} s") from None
    except subprocess.CalledProcessError as exc:
        tail = "\n".join(line for line in exc.stderr.splitlines() if not line.startswith("WARNING"))[-800:]
        raise DenoReleaseError(f"pip could not download deno {version}:\n{tail}",
                               hint="check the package index is reachable, or pass --deno PATH") from None
    wheels = sorted(into.glob(f"deno-{version}-*.whl"))
    if len(wheels) != 1:
        raise DenoReleaseError(f"pip left {len(wheels)} deno {version} wheels, expected one")
    return wheels[0]


def _extract_binary(wheel: Path, version: str, binary: Path) -> None:
    member = f"deno-{version}.data/scripts/deno"
    with zipfile.ZipFile(wheel) as archive:
        try:
            source = archive.open(member)
        except KeyError:
            raise DenoReleaseError(f"the deno {version} wheel has no {member}") from None
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        with source, partial.open("wb") as target:
            shutil.copyfileobj(source, target)
    partial.chmod(0o755)  # the wheel stores it without the exec bit
    partial.replace(binary)  # whole or not at all: a killed fetch leaves no half binary in the cache
