"""The `bspec` command: parse flags, call bspec.operations, map errors to exit codes.

Commands live in `bspec.commands.*` and register themselves on `app` / `local_app`.
Every command takes `--json`; with it, stdout carries exactly one JSON object (the
result, or `{"formatVersion": 1, "error": {...}}`) and everything else goes to stderr.
Exit codes follow DESIGN.md: 0 ok, 1 service/task failure, 2 bad input, 3 refused,
4 plan found changes (--detailed-exitcode), 130 interrupted.
"""

from __future__ import annotations

import gc
import json
import shlex
import sys
from typing import Any, NoReturn

import typer
from bspec.errors import BspecError, TransientServiceError
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


def _with_resume_hint(exc: BspecError, args: list[str]) -> BspecError:
    """A service that stopped answering (down, restarting) is worth telling how to go on:
    every command picks up where an interrupted one stopped."""
    if isinstance(exc, TransientServiceError) and exc.status is None and not exc.hint:
        exc.hint = (
            "when the service answers again (local target: `bspec local up`), run "
            f"`bspec {shlex.join(args)}` again: it resumes where this one stopped"
        )
    return exc


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def _collect_garbage_less_often() -> None:
    """The CLI process is the collector's owner, not a library call: rendering a large spec
    allocates millions of small acyclic objects, and the young-generation collections they
    trigger cost about 20% of the render time at 100,000 tasks. Freezing what start-up
    allocated and collecting a hundred times less often gets that back, while cycles are
    still collected during hours of waiting (the library never touches the collector)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Never lets a traceback reach a user for a known error."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    if argv is None:  # the console script owns its process; a caller of main(argv) keeps its own
        _collect_garbage_less_often()
    try:
        app(args=args, prog_name="bspec", standalone_mode=False)
    except BspecError as exc:
        fail(_with_resume_hint(exc, args), as_json)
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
