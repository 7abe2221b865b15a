"""Secrets named by environment variable: `secretEnvironment` values, registry passwords.

A spec names a secret; its value comes from bspec's own environment, when the spec is
rendered (to check it is set and to hash it) and again when a request is built (to send it).
The value itself is never kept in the desired state, a plan, a saved plan or any output:
what bspec keeps is a digest, salted with the variable's name and slow to compute (PBKDF2),
so that a fingerprint or a saved plan does not make guessing a short secret cheap, and a
changed secret still shows as a change.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from functools import lru_cache

from bspec.errors import InputError, StalePlanError

PREFIX = "pbkdf2:"
ITERATIONS = 100_000
SALT = "bspec-secret-v1:"
REDACTED = "(secret)"


@lru_cache(maxsize=256)
def _digest(name: str, value: str) -> str:
    raw = hashlib.pbkdf2_hmac("sha256", value.encode(), (SALT + name).encode(), ITERATIONS)
    return PREFIX + raw.hex()


def digest(name: str, value: str) -> str:
    """The salted digest of `value` as the secret `name` (cached per process)."""
    return _digest(name, value)


def lookup(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The secret's value from the environment, or None when the variable is not set."""
    return (os.environ if env is None else env).get(name)


def value(name: str) -> str:
    """The secret's value, to put in a request; InputError (exit 2) when it is not set."""
    found = lookup(name)
    if found is None:
        raise InputError(
            f"environment variable {name} is not set: the spec names it as a secret",
            code="MissingSecret",
        )
    return found


def check(expected: Iterable[tuple[str, str]], env: Mapping[str, str] | None = None) -> None:
    """Before applying a saved plan: every secret it was made with is set (InputError,
    exit 2, otherwise) and has the value it had (StalePlanError, exit 3, otherwise)."""
    missing: list[str] = []
    changed: list[str] = []
    for name, want in expected:
        found = lookup(name, env)
        if found is None:
            missing.append(name)
        elif digest(name, found) != want:
            changed.append(name)
    if missing:
        raise InputError(
            "the saved plan uses secrets from environment variables that are not set: "
            + ", ".join(missing),
            code="MissingSecret",
        )
    if changed:
        raise StalePlanError(
            "the saved plan is stale: the value of the secret environment variable"
            f"{'s' if len(changed) > 1 else ''} {', '.join(changed)} changed since it was made",
            hint="run `bspec plan -o PLAN` again and apply the new plan",
        )
