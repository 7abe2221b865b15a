"""`bspec ui`: a live web dashboard for stacks, pools, jobs, tasks and logs.

`serve` loads and connects the given specs' stacks, then runs the aiohttp app (bspec.ui.app)
on 127.0.0.1 until interrupted. Every read and write goes through bspec.operations.
"""

from __future__ import annotations

import asyncio
import socket
import webbrowser
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from bspec.errors import InputError
from bspec.operations import Vars
from bspec.ui.app import make_app
from bspec.ui.security import Guard
from bspec.ui.state import watching

HOST = "127.0.0.1"

__all__ = ["HOST", "serve"]


def serve(
    specs: list[Path],
    *,
    port: int = 0,
    open_browser: bool = False,
    vars: Vars = None,
    target: str | None = None,
    interval: float = 2.0,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the dashboard until interrupted; `announce` gets the URL (with its token)."""
    sock = _listen(port)  # before loading and connecting: a taken port fails at once
    with sock, watching(specs, vars, target) as dash:
        guard = Guard(port=sock.getsockname()[1])
        url = f"http://{HOST}:{guard.port}/?token={guard.token}"
        app = make_app(dash, guard, interval=interval)

        async def run() -> None:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.SockSite(runner, sock)
            await site.start()
            announce(url)
            if open_browser:
                webbrowser.open(url)
            try:
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

        asyncio.run(run())


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as err:
        sock.close()
        raise InputError(
            f"cannot listen on {HOST}:{port}: {err.strerror or err}",
            code="InvalidFlag",
            hint="choose another --port, or 0 for any free port",
        ) from None
    return sock
