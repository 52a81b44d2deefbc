"""`supactl selfhost build|manifests`: the function on your own machines, past one Edge worker."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, WORKDIR, project
from supactl.commands._output import cli_errors, command_group, echo, print_json

selfhost_app = command_group("Run the function on a fleet of your own: a runtime bundle and Kubernetes manifests.")


@selfhost_app.command("build")
@cli_errors
def build(
    out: Path = typer.Option(Path("twilio-voice-bundle"), "--out",
                             help="Folder for the bundle (new, empty, or an earlier bundle, which is replaced)."),
    deno: Optional[Path] = typer.Option(
        None, "--deno", help="Bundle this Deno binary instead of the shipped release (Deno 2.8.3, fetched once)."),
    workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """Bundle the shipped Deno, the function and its cached packages, a launcher and a Containerfile.

    The bundle starts with nothing fetched (`deno run --cached-only`); only this build reaches the package
    index (the pinned Deno wheel, checked by its sha256) and the npm registry.
    """
    from supactl.selfhost.deno_release import shipped_deno, user_cache_dir
    from supactl.selfhost.runtime_bundle import LAUNCHER, build_bundle, project_function_dir

    function_dir = project_function_dir(project(workdir))
    bundle = build_bundle(out, function_dir, deno or shipped_deno(user_cache_dir()))
    if as_json:
        print_json(bundle.as_json())
        return
    echo(f"built {out} ({bundle.size_bytes / 1e6:.1f} MB, {bundle.files} files) on Deno {bundle.deno_version}")
    echo(f"  run here    {out / LAUNCHER}   (settings from the environment)")
    echo(f"  image       docker build -f {out / 'Containerfile'} -t IMAGE {out}")


@selfhost_app.command("manifests")
@cli_errors
def manifests(
    image: str = typer.Option(..., "--image", help="The image built from the bundle's Containerfile."),
    host: str = typer.Option(..., "--host", help="The public host name Twilio calls (the Ingress's)."),
    replicas: int = typer.Option(3, "--replicas", help="Workers always running (the autoscaler's minimum)."),
    max_replicas: int = typer.Option(10, "--max-replicas", help="The autoscaler's maximum."),
    out: str = typer.Option("-", "--out", help="Write the YAML to this file; '-' prints it."),
    workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """Kubernetes Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and Ingress.

    Credentials are referenced from a Secret named twilio-voice, never written: create it with
    `kubectl create secret generic twilio-voice --from-env-file=FILE` (docs/self-hosting.md).
    """
    from supactl.selfhost.manifests import FleetSettings, project_env, render, secret_keys
    from supactl.selfhost.yaml_text import dump_documents

    settings = FleetSettings(image=image, host=host, replicas=replicas, max_replicas=max_replicas,
                             project_env=project_env(project(workdir)))
    documents = render(settings)
    if out != "-":
        Path(out).write_text(dump_documents(documents))
    if as_json:
        print_json({"out": None if out == "-" else out, "secret": settings.secret_name,
                    "secret_keys": secret_keys(settings), "objects": documents})
    elif out == "-":
        echo(dump_documents(documents).rstrip("\n"))
    else:
        echo(f"wrote {out}: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in documents))
        needed = [name for name, required in secret_keys(settings).items() if required]
        echo(f"  the Secret {settings.secret_name} must hold: {', '.join(needed)}")
