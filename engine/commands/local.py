"""`bspec local up|down|status|env|images`: manage the local Batch service and Azurite by hand.

Other commands start the services on their own when they need them; these exist to
start them ahead of time, see what runs, stop them, and point other tools at them.
Only `env` prints the account key: it is what `eval "$(bspec local env)"` is for.
"""

from __future__ import annotations

import shlex
import sys
import urllib.error
from pathlib import Path
from typing import Annotated, Any

import typer
from bspec import local as services
from bspec.cli import JSON_HELP, emit_json, err, fail, local_app, out
from bspec.common import podman
from bspec.errors import InputError

JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


def _progress(line: str) -> None:
    """Starting a service takes a few seconds: say so on stderr (never on --json's stdout)."""
    err.print(f"{line}...", markup=False)


def _endpoints_json(ep: services.Endpoints) -> dict[str, Any]:
    return {
        "home": str(ep.home),
        "batch": {
            "url": ep.batch_url,
            "account": ep.account,
            "pid": ep.batch_pid,
            "port": int(ep.batch_url.rsplit(":", 1)[1]),
        },
        "storage": {
            "blobUrl": ep.blob_url,
            "account": services.AZURITE_ACCOUNT,
            "pid": ep.storage_pid,
            "port": int(ep.blob_url.split(":")[2].split("/")[0]),
        },
    }


@local_app.command("up")
def up_command(
    batch_port: Annotated[
        int | None,
        typer.Option(
            "--batch-port", help="Port for the Batch service (default 10080, or a free one)."
        ),
    ] = None,
    storage_port: Annotated[
        int | None,
        typer.Option(
            "--storage-port", help="Port for Azurite's blob service (default 10000, or a free one)."
        ),
    ] = None,
    storage_faults: Annotated[
        float | None,
        typer.Option(
            "--storage-faults",
            min=0.0,
            max=1.0,
            help="Put a fault-injecting proxy in front of Azurite, failing this fraction of"
            " storage requests (0 to 1; 0 = in the path, no faults). Off by default;"
            " `bspec local down` takes it out. Same as BSPEC_STORAGE_FAULTS.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start the local Batch service and Azurite, wait until both answer; idempotent."""
    before = services.status()
    ep = services.ensure_running(
        batch_port=batch_port,
        azurite_port=storage_port,
        progress=_progress,
        storage_faults=storage_faults,
    )
    started = [name for name in ("batch", "storage") if not before[name]["running"]]
    if as_json:
        emit_json({**_endpoints_json(ep), "started": started})
        return
    out.print(
        f"Batch service  {ep.batch_url}  (account {ep.account}, pid {ep.batch_pid})", markup=False
    )
    now = services.status()
    proxy = now.get("storageProxy")
    out.print(f"Azurite blob   {now['storage']['blobUrl']}  (pid {ep.storage_pid})", markup=False)
    if proxy:
        out.print(
            f"Storage proxy  {proxy['blobUrl']}  (pid {proxy['pid']}; clients use this one;"
            f" fault settings at {proxy['url']}/_local/settings)",
            markup=False,
        )
    out.print(f"State folder   {ep.home}", markup=False)
    if not started:
        out.print("Both were already running.", markup=False)
    out.print(
        'Point the Azure CLI or SDK scripts at them with: eval "$(bspec local env)"', markup=False
    )


@local_app.command("down")
def down_command(as_json: JsonFlag = False) -> None:
    """Stop the local Batch service and Azurite by PID, and wait until they have exited."""
    before = services.status()
    services.stop()
    stopped = [
        {"service": name, "pid": before[name]["pid"]}
        for name in ("batch", "storage")
        if before[name]["running"]
    ]
    if as_json:
        emit_json({"home": before["home"], "stopped": stopped})
        return
    proxy = before.get("storageProxy") or {}
    if proxy.get("running"):  # not in --json: its shape names the two services only
        out.print(f"Stopped the storage proxy (pid {proxy['pid']}).", markup=False)
    if not stopped:
        out.print("The local services were not running.", markup=False)
        return
    names = {"batch": "the Batch service", "storage": "Azurite"}
    out.print(
        "Stopped " + " and ".join(f"{names[s['service']]} (pid {s['pid']})" for s in stopped) + ".",
        markup=False,
    )


def _service_status(url: str) -> dict[str, Any]:
    """The Batch service's own view: pools, their nodes, running tasks."""
    try:
        data = services.http_json("GET", f"{url}/_local/status")
    except (OSError, ValueError, urllib.error.URLError):
        return {"pools": [], "runningTasks": []}
    if not isinstance(data, dict):
        return {"pools": [], "runningTasks": []}
    return {
        "pools": list(data.get("pools") or []),
        "runningTasks": list(data.get("runningTasks") or []),
    }


@local_app.command("status")
def status_command(as_json: JsonFlag = False) -> None:
    """Show whether the local services run, where, their PIDs, pools, nodes and running tasks."""
    state = services.status()
    batch, storage = state["batch"], state["storage"]
    inside = (
        _service_status(batch["url"]) if batch["running"] else {"pools": [], "runningTasks": []}
    )
    if as_json:
        emit_json(
            {
                "home": state["home"],
                "batch": {k: batch[k] for k in ("running", "url", "pid", "port", "log")},
                "storage": {k: storage[k] for k in ("running", "blobUrl", "pid", "port", "log")},
                **inside,
            }
        )
        return

    def line(label: str, entry: dict[str, Any], url: str | None) -> str:
        if entry["running"]:
            return f"{label}  running  {url}  (pid {entry['pid']})"
        return f"{label}  stopped"

    out.print(line("Batch service", batch, batch["url"]), markup=False)
    out.print(line("Azurite blob ", storage, storage["blobUrl"]), markup=False)
    proxy = state.get("storageProxy")
    if proxy:
        out.print(line("Storage proxy", proxy, proxy["blobUrl"]), markup=False)
    out.print(f"State folder   {state['home']}", markup=False)
    if not batch["running"]:
        out.print(
            "Start them with `bspec local up` (other commands start them when needed).",
            markup=False,
        )
        return
    pools = inside["pools"]
    if not pools:
        out.print("No pools.", markup=False)
    for pool in pools:
        nodes = pool.get("nodes") or []
        out.print(f"pool {pool.get('id')}  {pool.get('state')}  {len(nodes)} node(s)", markup=False)
        for node in nodes:
            out.print(f"  node {node.get('id')}  {node.get('state')}", markup=False)
    running = inside["runningTasks"]
    out.print(f"{len(running)} running task(s)", markup=False)
    for task in running:
        out.print(
            f"  task {task.get('jobId')}/{task.get('taskId')}  on {task.get('nodeId')}  pid {task.get('pid')}",
            markup=False,
        )


def env_variables(ep: services.Endpoints) -> dict[str, str]:
    """The variables Azure's own tools read, pointing at the local services."""
    return {
        "AZURE_BATCH_ENDPOINT": ep.batch_url,
        "AZURE_BATCH_ACCOUNT": ep.account,
        "AZURE_BATCH_ACCESS_KEY": ep.key,
        "AZURE_STORAGE_CONNECTION_STRING": ep.storage_connection_string,
    }


@local_app.command("env")
def env_command(as_json: JsonFlag = False) -> None:
    """Print `export` lines for the local services (starting them if needed): eval "$(bspec local env)"."""
    ep = services.ensure_running(progress=_progress)
    variables = env_variables(ep)
    if as_json:
        emit_json({"home": str(ep.home), "variables": variables})
        return
    # Plain writes, not rich: these lines are for a shell to eval, byte for byte.
    sys.stdout.write("".join(f"export {n}={shlex.quote(v)}\n" for n, v in variables.items()))
    sys.stdout.flush()


images_app = typer.Typer(
    help="The local service's container images (its private podman storage).",
    no_args_is_help=True,
)
local_app.add_typer(images_app, name="images")


def _storage() -> podman.Storage:
    try:
        return podman.open_storage(services.state_home())
    except podman.PodmanError as exc:
        raise InputError(exc.message, hint=exc.hint) from exc


@images_app.command("list")
def images_list_command(as_json: JsonFlag = False) -> None:
    """List the images container tasks can use (podman --root <state>/containers/storage images)."""
    try:
        images = podman.list_images(_storage())
    except (podman.PodmanError, InputError) as exc:
        fail(_input(exc), as_json)
    if as_json:
        emit_json({"images": [image.to_json() for image in images]})
        return
    if not images:
        out.print("No images. Add one with `bspec local images import`.", markup=False)
    for image in images:
        names = ", ".join(image.names) or "<untagged>"
        out.print(f"{image.id}  {image.size / 1e6:8.1f} MB  {names}", markup=False)


@images_app.command("import")
def images_import_command(
    tarball: Annotated[
        Path | None,
        typer.Argument(help="An image archive (podman/docker save) or a root file system tar."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The reference to give the imported image.")
    ] = None,
    from_podman: Annotated[
        str | None,
        typer.Option("--from-podman", help="Copy this image from your own podman storage."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an image to the local service's storage, from a tarball or your own podman."""
    try:
        if (tarball is None) == (from_podman is None):
            raise InputError("give a TARBALL or --from-podman NAME (one of them)")
        if from_podman is not None:
            ref = podman.import_from_user_storage(_storage(), from_podman)
        else:
            assert tarball is not None
            if not tarball.is_file():
                raise InputError(f"{tarball} is not a file")
            ref = podman.import_tarball(_storage(), tarball, name)
    except (podman.PodmanError, InputError) as exc:
        fail(_input(exc), as_json)
    if as_json:
        emit_json({"image": ref})
        return
    out.print(f"Imported {ref}", markup=False)


def _input(exc: podman.PodmanError | InputError) -> InputError:
    """A podman failure is the user's input to fix (exit 2), with podman's hint."""
    if isinstance(exc, InputError):
        return exc
    return InputError(exc.message, hint=exc.hint)
