"""What every resource module has: the store of rows, the service clock, the live runtime."""

from __future__ import annotations

from .clock import Clock
from .resources import touch
from .runs import Runtime
from .store import Row, Store


class ResourceModule:
    def __init__(self, store: Store, clock: Clock, runtime: Runtime) -> None:
        self.store = store
        self.clock = clock
        self.runtime = runtime

    def touch(self, row: Row) -> None:
        """ROW changed: a new ETag, lastModified now on the service clock."""
        touch(row.body, self.clock.iso())
