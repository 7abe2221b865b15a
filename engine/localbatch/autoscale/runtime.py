"""What compiled formulas run on: the frame of one evaluation and the errors that end it."""

from __future__ import annotations

from collections.abc import Callable

from . import syntax
from .errors import EVALUATION_ERROR, EVALUATION_MESSAGE, AutoScaleError
from .snapshot import PoolSnapshot
from .values import Timestamp, Value


class Stop(Exception):
    """Raised by stop(): the formula ends here."""


class EvaluationError(Exception):
    def __init__(self, error: AutoScaleError) -> None:
        super().__init__(error.detail)
        self.error = error


def fail(node: syntax.Expr | syntax.Statement, detail: str) -> EvaluationError:
    return EvaluationError(
        AutoScaleError(EVALUATION_ERROR, EVALUATION_MESSAGE, detail, node.line, node.column)
    )


class Frame:
    """One run's state: variable slots, the snapshot's current values, the clock."""

    __slots__ = ("current", "dedicated_set", "low_priority_set", "now", "rand", "slots", "snapshot")

    def __init__(
        self,
        slots: list[Value | None],
        snapshot: PoolSnapshot,
        now: Timestamp,
        rand: Callable[[], float],
    ) -> None:
        self.slots = slots
        self.snapshot = snapshot
        self.current = snapshot.current_values()
        self.now = now
        self.rand = rand
        self.dedicated_set = False
        self.low_priority_set = False


Code = Callable[[Frame], Value]
Run = Callable[[Frame], None]
