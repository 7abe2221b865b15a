"""Fixtures for the local Batch service's own tests: a reference-checked client."""

from __future__ import annotations

from reference import checked_client, reference

__all__ = ["checked_client", "reference"]
