"""Deploy a function and prove the result: ACTIVE, `verify_jwt` false.

The API cannot say whether the deployed code equals the local files (its `ezbr_sha256` is a digest
of the bundle it builds server-side, which we cannot reproduce), so supactl remembers what it last
uploaded — version number and a digest of the files — in supabase/.temp/supactl-deploys.json
(untracked, like the `supabase link` state beside it). The deploy is skipped only when the remote
version is still the one supactl uploaded and the local files have the same digest; anything else
(another deploy in between, no record, e.g. a fresh CI checkout without a cache) uploads again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from supactl.cloud import management_api as api
from supactl.cloud.deploy_bundle import FunctionBundle
from supactl.errors import CheckFailed

STATE_FILE = Path("supabase") / ".temp" / "supactl-deploys.json"


@dataclass(frozen=True)
class DeployOutcome:
    function: api.Function
    changed: bool
    reason: str  # why it was (not) uploaded, in the user's words


def _read_state(project_dir: Path) -> dict:
    path = project_dir / STATE_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}  # a damaged record only costs one more upload


def last_upload(project_dir: Path, ref: str, slug: str) -> dict | None:
    return _read_state(project_dir).get(ref, {}).get(slug)


def remember_upload(project_dir: Path, ref: str, slug: str, version: int, content_sha256: str) -> None:
    state = _read_state(project_dir)
    state.setdefault(ref, {})[slug] = {"version": version, "content_sha256": content_sha256}
    path = project_dir / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def why_upload(remote: api.Function | None, record: dict | None, content_sha256: str) -> str | None:
    """The reason an upload is needed, or None when the deployed function is these files."""
    if remote is None:
        return "not deployed yet"
    if remote.status != "ACTIVE":
        return f"deployed function is {remote.status}"
    if record is None:
        return "no record of the last upload from here"
    if record.get("version") != remote.version:
        return f"version {remote.version} was deployed by someone else (supactl uploaded {record.get('version')})"
    if record.get("content_sha256") != content_sha256:
        return "local files changed"
    return None


def confirm(client: httpx.Client, ref: str, slug: str) -> api.Function:
    """Fetch the function; turn verify_jwt off if the platform turned it on; fail unless ACTIVE."""
    function = api.get_function(client, ref, slug)
    if function is None:
        raise CheckFailed(f"function {slug} is not deployed after the upload", hint="run `supactl deploy` again")
    if function.verify_jwt is not False:
        function = api.set_verify_jwt(client, ref, slug, False)
        if function.verify_jwt is not False:
            raise CheckFailed(f"function {slug} still has verify_jwt on, so Twilio's calls get 401",
                              hint=f"turn off 'Enforce JWT verification' for {slug} in the dashboard")
    if function.status != "ACTIVE":
        raise CheckFailed(f"function {slug} is {function.status} after the upload, not ACTIVE",
                          hint="check the function's logs in the dashboard, then run `supactl deploy`")
    return function


def deploy(client: httpx.Client, ref: str, bundle: FunctionBundle, project_dir: Path, *,
           only_if_changed: bool = False) -> DeployOutcome:
    digest = bundle.content_sha256()
    if only_if_changed:
        remote = api.get_function(client, ref, bundle.slug)
        reason = why_upload(remote, last_upload(project_dir, ref, bundle.slug), digest)
        if reason is None:
            assert remote is not None
            if remote.verify_jwt is False:
                return DeployOutcome(remote, False, f"version {remote.version} is these files")
            return DeployOutcome(confirm(client, ref, bundle.slug), True, "turned verify_jwt off")
    else:
        reason = "requested"
    uploaded = api.deploy_function(client, ref, bundle)
    remember_upload(project_dir, ref, bundle.slug, uploaded.version, digest)
    return DeployOutcome(confirm(client, ref, bundle.slug), True, reason)
