"""The local target's daemons: bspec's Batch service and Azurite, started, found and stopped.

`supervisor` runs the two processes (state folder, ports, detached start under a lock,
stop by PID), `endpoints` says where they listen, `azurite` finds the emulator,
`storageproxy` is the optional fault-injecting proxy in front of Azurite. The
engine reaches the services over HTTP only, never through bspec.localbatch's code.
"""

from __future__ import annotations

from bspec.local.azurite import azurite_command
from bspec.local.endpoints import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    DEFAULT_AZURITE_PORT,
    DEFAULT_BATCH_PORT,
    HOST,
    Endpoints,
    connection_string,
    http_json,
    state_home,
)
from bspec.local.supervisor import (
    StorageEndpoint,
    ensure_running,
    ensure_storage,
    free_port,
    status,
    stop,
)

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "DEFAULT_AZURITE_PORT",
    "DEFAULT_BATCH_PORT",
    "HOST",
    "Endpoints",
    "StorageEndpoint",
    "azurite_command",
    "connection_string",
    "ensure_running",
    "ensure_storage",
    "free_port",
    "http_json",
    "state_home",
    "status",
    "stop",
]
