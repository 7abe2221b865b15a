"""The `bspec` command: parse flags, call bspec.operations, map errors to exit codes.

Commands live in `bspec.commands.*` and register themselves on `app` / `local_app`.
Every command takes `--json`; with it, stdout carries exactly one JSON object (the
result, or `{"formatVersion": 1, "error": {...}}`) and everything else goes to stderr.
Exit codes follow DESIGN.md: 0 ok, 1 service/task failure, 2 bad input, 3 refused,
4 plan found changes (--detailed-exitcode), 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from bspec.errors import BspecError
from bspec.reporting.console import err, out

FORMAT_VERSION = 1

app = typer.Typer(
    name="bspec",
    help="Declarative runner for Azure Batch: plan, apply and destroy workloads from one spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
local_app = typer.Typer(
    help="Manage the local Batch service and Azurite (the default target).",
    no_args_is_help=True,
)
app.add_typer(local_app, name="local")

__all__ = ["JSON_HELP", "app", "emit_json", "err", "fail", "local_app", "main", "out"]

JSON_HELP = "Print one JSON object on stdout (see schema/output.schema.json)."


def emit_json(data: dict[str, Any]) -> None:
    """Write the command's one JSON object to stdout."""
    payload = {"formatVersion": FORMAT_VERSION, **data}
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail(exc: BspecError, as_json: bool) -> NoReturn:
    """Report a BspecError the one way users see errors, and exit with its code."""
    if as_json:
        emit_json({"error": exc.to_json()})
    else:
        err.print(f"Error: {exc}", markup=False)
    raise SystemExit(exc.exit_code)


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Never lets a traceback reach a user for a known error."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    try:
        app(args=args, prog_name="bspec", standalone_mode=False)
    except BspecError as exc:
        fail(exc, as_json)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("Aborted.")
        raise SystemExit(130) from None
    except typer.TyperException as exc:
        # Usage errors (unknown flag, bad value, missing argument) carry exit_code 2.
        code = int(getattr(exc, "exit_code", 2))
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if as_json:
            emit_json(
                {
                    "error": {
                        "code": "InvalidFlag",
                        "message": message,
                        "file": None,
                        "line": None,
                        "path": None,
                    }
                }
            )
        else:
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                err.print(ctx.get_usage(), markup=False)
            err.print(f"Error: {message}", markup=False)
        raise SystemExit(code) from None
    except KeyboardInterrupt:
        err.print("Interrupted.")
        raise SystemExit(130) from None


# Command modules register on `app` / `local_app` when imported.
from bspec.commands import load_all  # noqa: E402

load_all()
