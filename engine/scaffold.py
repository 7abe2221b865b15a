"""`bspec init`: write a new project (a spec, its task scripts, sample data) from a scaffold.

Scaffolds ship in the package under `templates/init/<name>/`. Every file in a scaffold is
copied verbatim, except:

- names ending `.j2` are rendered (and lose the suffix). The spec inside a scaffold is itself
  full of Jinja (`{{ item.stem | batchid }}`) meant for `bspec apply`, so scaffold rendering
  uses different delimiters: `[[ name ]]`, `[% if ... %]`, `[# comment #]`. The scope is
  `name` (the stack name) and `schema` (the path of the packaged bspec.schema.json);
- names starting `_` describe the scaffold and are not copied (`_about.txt`: its first line
  is the description `bspec init --list` shows).

Nothing is written when any destination file exists, unless `force`: a half-written project
is worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import jinja2
from bspec.errors import InputError

DEFAULT_TEMPLATE = "topwords"
SPEC_FILE = "bspec.yaml"  # every scaffold writes its spec under this name
ABOUT_FILE = "_about.txt"

# A stack name becomes part of container names (`<stack>-<key>`: lowercase letters, digits and
# single hyphens, 3 to 63 characters), so init keeps it to that alphabet and short.
_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){1,29}$")
NAME_RULE = "2 to 30 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"


@dataclass(frozen=True)
class Template:
    """A built-in scaffold."""

    name: str
    description: str


@dataclass(frozen=True)
class InitResult:
    """What `init` wrote; `files` are relative to `directory`, sorted."""

    template: str
    name: str
    directory: Path
    files: tuple[str, ...]
    spec: Path


def _root() -> Traversable:
    return resources.files("bspec.templates").joinpath("init")


def list_templates() -> list[Template]:
    """The built-in scaffolds, sorted by name."""
    found: list[Template] = []
    for entry in _root().iterdir():
        if not entry.is_dir() or entry.name.startswith(("_", ".")):
            continue
        about = entry.joinpath(ABOUT_FILE)
        description = about.read_text("utf-8").strip().splitlines()[0] if about.is_file() else ""
        found.append(Template(entry.name, description))
    return sorted(found, key=lambda t: t.name)


def stack_name_for(directory: Path, fallback: str) -> str:
    """A valid stack name from a folder's name: `My Project_2` -> `my-project-2`."""
    text = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")[:30].strip("-")
    return text if _NAME_RE.match(text) else fallback


def check_name(name: str) -> str:
    """Refuse a stack name that would make invalid container or Batch names."""
    if not _NAME_RE.match(name):
        raise InputError(f"invalid project name {name!r}: use {NAME_RULE}", code="InvalidName")
    return name


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        variable_start_string="[[",
        variable_end_string="]]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _schema_path() -> str:
    """Where the packaged schema lives, for the spec's `yaml-language-server` comment."""
    return str(Path(str(resources.files("bspec.schema").joinpath("bspec.schema.json"))).resolve())


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """Every file of a scaffold as (relative path, file), sorted, metadata files excluded."""
    files: list[tuple[str, Traversable]] = []
    for entry in sorted(node.iterdir(), key=lambda e: e.name):
        if entry.name.startswith("_") or entry.name == "__pycache__":
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            files += _walk(entry, rel + "/")
        else:
            files.append((rel, entry))
    return files


def render_files(template: str, name: str) -> dict[str, bytes]:
    """The scaffold's files as they will be written: relative path -> content."""
    names = [t.name for t in list_templates()]
    if template not in names:
        raise InputError(
            f"unknown template {template!r}; choose one of: {', '.join(names)}",
            code="UnknownTemplate",
            hint="bspec init --list shows them with a description",
        )
    env = _environment()
    scope = {"name": name, "schema": _schema_path()}
    out: dict[str, bytes] = {}
    for rel, entry in _walk(_root().joinpath(template)):
        if rel.endswith(".j2"):
            text = env.from_string(entry.read_text("utf-8")).render(scope)
            out[rel[: -len(".j2")]] = text.encode("utf-8")
        else:
            out[rel] = entry.read_bytes()
    return out


def init(
    directory: Path,
    template: str = DEFAULT_TEMPLATE,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """Write scaffold `template` into `directory` (created if needed) and say what was written."""
    stack = check_name(name) if name is not None else stack_name_for(directory, template)
    files = render_files(template, stack)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a directory", code="NotADirectory")
    clashes = sorted(rel for rel in files if (directory / rel).exists())
    if clashes and not force:
        shown = ", ".join(clashes[:5]) + (
            f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        )
        raise InputError(
            f"{directory}: would overwrite {shown}",
            code="FileExists",
            hint="choose an empty directory, or pass --force to overwrite these files",
        )
    for rel in files:
        target = directory / rel
        if target.is_dir():
            raise InputError(f"{target} is a directory; init needs to write a file there")
    for rel, content in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if rel.endswith((".py", ".sh")):
            target.chmod(0o755)
    return InitResult(
        template=template,
        name=stack,
        directory=directory,
        files=tuple(sorted(files)),
        spec=directory / SPEC_FILE,
    )
