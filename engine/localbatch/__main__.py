"""`python -m bspec.localbatch`: run the local Batch service in the foreground.

services.py starts it detached with its output in the state folder's logs; SIGTERM stops it
gracefully (task process groups killed, the database closed), and the next start requeues the
tasks that were running, as a node reboot does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web
from bspec.common.account import load_or_create_account

from .quotas import add_quota_flags, quotas_from_flags
from .rest.app import Service
from .settings import CLOCK_MODES, MAX_API, MIN_API, Settings
from .versions import parse_version


def _api_version(text: str) -> str:
    """A published api-version (versions.parse_version), else argparse's usage error."""
    if parse_version(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a published Batch api-version")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bspec.localbatch", description="The local Azure Batch service."
    )
    parser.add_argument("--home", required=True, type=Path, help="state folder (BSPEC_HOME)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10080)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--delete-delay", type=float, default=1.0)
    parser.add_argument("--max-processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--min-api-version", default=MIN_API, type=_api_version)
    parser.add_argument("--max-api-version", default=MAX_API, type=_api_version)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--bearer-token")
    parser.add_argument(
        "--clock",
        choices=CLOCK_MODES,
        default="real",
        help="real: the system clock; manual: service time moves only by POST /_local/clock",
    )
    add_quota_flags(parser)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the local Batch service binds to loopback only")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    name, key = load_or_create_account(args.home)
    settings = Settings(
        latency_ms=args.latency_ms,
        fault_rate=args.fault_rate,
        delete_delay=args.delete_delay,
        max_processes=max(1, args.max_processes),
        clock=args.clock,
    )
    try:
        settings.quotas = quotas_from_flags(args)
    except ValueError as exc:
        parser.error(str(exc))
    service = Service(
        args.home,
        name,
        key,
        settings,
        min_api=args.min_api_version,
        max_api=args.max_api_version,
        bearer_token=args.bearer_token,
    )
    context = None
    scheme = "http"
    if args.tls_cert and args.tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        scheme = "https"
    service.set_base_url(f"{scheme}://{args.host}:{args.port}")
    asyncio.run(_serve(service, args.host, args.port, context))
    return 0


async def _serve(service: Service, host: str, port: int, context: ssl.SSLContext | None) -> None:
    runner = web.AppRunner(service.app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    await site.start()
    logging.getLogger("bspec.localbatch").info(
        "serving account %s on %s:%s", service.account, host, port
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
