"""`bspec ui SPEC...`: the live web dashboard (bspec.ui), on 127.0.0.1 until Ctrl-C."""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

from pathlib import Path

import typer
from bspec.cli import JSON_HELP, app, emit_json
from bspec.errors import InputError
from bspec.reporting.console import err, out


@app.command("ui")
def ui_command(
    specs: list[Path] = typer.Argument(
        None,
        help="The spec files whose stacks to show (none: every stack found by its tags in"
        " the target's account).",
        show_default=False,
    ),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in a browser."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between refreshes."),
    var: list[str] = typer.Option(
        [], "--var", help="Override a spec var: NAME=VALUE.", show_default=False
    ),
    target: str | None = typer.Option(None, "--target", help="local (default) or azure."),
    as_json: bool = typer.Option(
        False, "--json", help=JSON_HELP + " (the address, once listening)"
    ),
) -> None:
    """Serve a live dashboard of the specs' stacks on 127.0.0.1: pools, jobs, tasks, logs."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a port", code="InvalidFlag")
    if interval <= 0:
        raise InputError("--interval must be more than 0", code="InvalidFlag")
    from bspec.ui import serve  # loads aiohttp and the Azure SDKs only for this command

    def announce(url: str) -> None:
        if as_json:
            emit_json({"url": url})
        else:
            out.print(f"bspec ui is serving on {url}", markup=False, soft_wrap=True)
            err.print("(the address carries the access token; Ctrl-C stops)", markup=False)

    try:
        serve(
            list(specs or ()),
            port=port,
            open_browser=open_browser,
            vars=var,
            target=target,
            interval=interval,
            announce=announce,
        )
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
