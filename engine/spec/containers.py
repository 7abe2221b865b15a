"""The spec's container and secret parts, rendered: a task's (or start task's) `container`,
its `secretEnvironment`, and a pool's `containers` (images and registries).

Task fields arrive here rendered but not validated again by the schema (templates may have
produced anything), so each value is checked where it is read; secrets are looked up in
bspec's own environment once per name (`SecretBook`), and a name that is not set is a
problem at its place in the spec, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from bspec.model import ContainerSettingsSpec, PoolContainersSpec, RegistrySpec
from bspec.spec import secrets
from bspec.spec.environment import Failure
from bspec.spec.loading import PathKey

SECRET_NAME = re.compile(r"^(?!BSPEC_)[A-Za-z_][A-Za-z0-9_]*$")
WORKING_DIRECTORIES = ("taskWorkingDirectory", "containerImageDefault")


class SecretBook:
    """The secrets a spec names, read from the environment once each: name -> digest."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = env
        self.digests: dict[str, str] = {}
        self._checked: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self._parts: dict[tuple[str, ...], dict[str, str]] = {}

    def use(self, name: Any, path: PathKey) -> str:
        """The digest of the secret `name`; a Failure at `path` when it is not set."""
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            raise Failure(
                path,
                f"{name!r} is not an environment variable name (letters, digits and "
                "underscores, not starting with a digit; BSPEC_ is reserved)",
            )
        known = self.digests.get(name)
        if known is not None:
            return known
        value = secrets.lookup(name, self.env)
        if value is None:
            raise Failure(
                path,
                f"environment variable {name} is not set: the spec takes a secret from it "
                f"(set it in the environment bspec runs in; its value is never printed)",
            )
        known = self.digests[name] = secrets.digest(name, value)
        return known

    def names(
        self, node: Any, path: PathKey, environment: Mapping[str, Any] | None
    ) -> tuple[str, ...]:
        """A `secretEnvironment` list, checked: names set, unique, not also in `environment`.
        A list seen before (every task of a template has the same) is checked once."""
        if node is None:
            return ()
        if not isinstance(node, list):
            raise Failure(path, f"secretEnvironment must be a list of names, got {node!r}")
        try:
            names = self._checked.get(tuple(node))
        except TypeError:  # an unhashable item: checked below, which reports it
            names = None
        if names is None:
            seen: set[str] = set()
            for i, name in enumerate(node):
                self.use(name, (*path, i))
                if name in seen:
                    raise Failure((*path, i), f"{name} is named twice in secretEnvironment")
                seen.add(name)
            names = self._checked[tuple(node)] = tuple(node)
        if environment:
            for i, name in enumerate(names):
                if name in environment:
                    raise Failure(
                        (*path, i),
                        f"{name} is in both environment and secretEnvironment: give it once",
                    )
        return names

    def of(self, names: tuple[str, ...]) -> dict[str, str]:
        """name -> digest of names already `use`d (the same dict for the same names)."""
        part = self._parts.get(names)
        if part is None:
            part = self._parts[names] = {n: self.digests[n] for n in names}
        return part

    def entries(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.digests.items()))


def container_settings(node: Any, path: PathKey) -> ContainerSettingsSpec | None:
    """A rendered `container:` mapping as the spec object; a Failure at the bad field."""
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise Failure(path, f"container must be a mapping with an image, got {node!r}")
    image = node.get("image")
    if not isinstance(image, str) or not image.strip():
        raise Failure(
            (*path, "image"), f"container image must be a non-empty string, got {image!r}"
        )
    options = node.get("runOptions")
    if options is not None and not isinstance(options, str):
        raise Failure((*path, "runOptions"), f"runOptions must be a string, got {options!r}")
    wd = node.get("workingDirectory")
    if wd is not None and wd not in WORKING_DIRECTORIES:
        raise Failure(
            (*path, "workingDirectory"),
            f"workingDirectory must be taskWorkingDirectory or containerImageDefault, got {wd!r}",
        )
    return ContainerSettingsSpec(
        image=image.strip(), run_options=options or None, working_directory=wd
    )


@lru_cache(maxsize=1024)
def fingerprint_part(c: ContainerSettingsSpec) -> dict[str, str]:
    """A container's part of a task's fingerprint (defaults filled in, so that spelling the
    default out does not rerun a task); the same dict for equal settings (do not change it)."""
    return {
        "image": c.image,
        "runOptions": c.run_options or "",
        "workingDirectory": c.working_directory or "taskWorkingDirectory",
    }


def pool_containers(node: Any, path: PathKey, book: SecretBook) -> PoolContainersSpec | None:
    """A pool's rendered `containers:`; registry passwords are looked up (not kept)."""
    if node is None:
        return None
    images = tuple(str(i) for i in node.get("images") or ())
    registries = []
    for i, reg in enumerate(node.get("registries") or ()):
        where = (*path, "registries", i)
        env = reg.get("passwordEnv")
        if env is not None:
            book.use(env, (*where, "passwordEnv"))
        registries.append(
            RegistrySpec(
                server=str(reg["server"]),
                username=reg.get("username"),
                password_env=env,
                identity=reg.get("identity"),
            )
        )
    servers = [r.server.lower() for r in registries]
    for i, s in enumerate(servers):
        if s in servers[:i]:
            raise Failure((*path, "registries", i, "server"), f"registry {s} is listed twice")
    return PoolContainersSpec(images=images, registries=tuple(registries))
