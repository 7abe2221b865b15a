"""`bspec init DIR [--template NAME] [--name NAME] [--force] [--list] [--json]`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from bspec import scaffold
from bspec.cli import JSON_HELP, app, emit_json, out
from bspec.errors import InputError


@app.command("init")
def init_command(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder to write the project into (created if needed).")
    ] = None,
    template: Annotated[
        str, typer.Option("--template", "-t", help="Which built-in scaffold to write.")
    ] = scaffold.DEFAULT_TEMPLATE,
    name: Annotated[
        str | None,
        typer.Option("--name", help="The stack name (default: made from the folder's name)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    list_: Annotated[
        bool, typer.Option("--list", help="List the built-in scaffolds and exit.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Start a new project: a working spec, its task script and sample data."""
    if list_:
        templates = scaffold.list_templates()
        if as_json:
            emit_json(
                {"templates": [{"name": t.name, "description": t.description} for t in templates]}
            )
        else:
            width = max(len(t.name) for t in templates)
            for t in templates:
                out.print(f"{t.name:<{width}}  {t.description}", markup=False)
        return
    if directory is None:
        raise InputError("missing DIR: the folder to write the project into", code="InvalidFlag")
    result = scaffold.init(directory, template=template, name=name, force=force)
    if as_json:
        emit_json(
            {
                "template": result.template,
                "name": result.name,
                "directory": str(result.directory.resolve()),
                "spec": str(result.spec.resolve()),
                "files": list(result.files),
            }
        )
        return
    out.print(
        f"Wrote {len(result.files)} files for stack {result.name!r} "
        f"(template {result.template}) to {result.directory}:",
        markup=False,
    )
    for rel in result.files:
        out.print(f"  {rel}", markup=False)
    where = shlex.quote(str(result.directory))
    out.print(
        "\nNext:\n"
        f"  cd {where}\n"
        f"  bspec validate {scaffold.SPEC_FILE}   # check the spec\n"
        f"  bspec plan {scaffold.SPEC_FILE}       # see what it would create\n"
        f"  bspec apply {scaffold.SPEC_FILE}      # run it on the local target",
        markup=False,
    )
