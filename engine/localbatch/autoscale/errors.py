"""The errors an autoscale formula can end in, in the two shapes Batch reports them.

    FormulaError (exception, carries an AutoScaleError)
      raised by compile_formula for a formula that never runs: syntax errors, unknown names,
      too long. The service answers these with HTTP 400 and a BatchError body.
    AutoScaleError (data)
      also the `error` of an AutoScaleOutcome when a compiled formula fails while it runs
      (not enough samples, a type mismatch, a bad target): Batch records those in
      `autoScaleRun.error` and answers evaluateautoscale with 200.

Codes are Batch's where Microsoft names them (InsufficientSampleData with its message from
the "Pool autoscale event" page; AutoScalingFormulaSyntaxError and AutoScalingFormulaTooLong
from "Batch status and error codes"); the code for other run-time failures is not documented
anywhere we could find, see EVALUATION_ERROR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYNTAX_ERROR = "AutoScalingFormulaSyntaxError"
SYNTAX_MESSAGE = "The specified auto-scaling formula has a syntax error."
TOO_LONG = "AutoScalingFormulaTooLong"
TOO_LONG_MESSAGE = "The specified auto-scaling formula exceeds lengths limit."
INSUFFICIENT_SAMPLE_DATA = "InsufficientSampleData"
INSUFFICIENT_SAMPLE_MESSAGE = "Autoscale evaluation failed due to insufficient sample data"
# Not documented: Microsoft shows only InsufficientSampleData among run-time failures.
EVALUATION_ERROR = "AutoScalingFormulaEvaluationError"
EVALUATION_MESSAGE = "Autoscale evaluation failed"


@dataclass(frozen=True, slots=True)
class AutoScaleError:
    """One error, with the position (1-based line and column) its detail names, if any."""

    code: str
    message: str
    detail: str
    line: int | None = None
    column: int | None = None

    @property
    def values(self) -> tuple[tuple[str, str], ...]:
        """Batch's `values`: one `Message` pair, prefixed `Line L, Col C: ` as Batch writes it."""
        where = f"Line {self.line}, Col {self.column}: " if self.line is not None else ""
        return (("Message", where + self.detail),)

    def to_autoscale_run_error(self) -> dict[str, Any]:
        """The REST definition's AutoScaleRunError (`values` are NameValuePairs)."""
        return {
            "code": self.code,
            "message": self.message,
            "values": [{"name": n, "value": v} for n, v in self.values],
        }

    def to_batch_error(self) -> dict[str, Any]:
        """The REST definition's BatchError, for a request refused with HTTP 400."""
        return {
            "code": self.code,
            "message": {"lang": "en-us", "value": self.message},
            "values": [{"key": n, "value": v} for n, v in self.values],
        }


class FormulaError(Exception):
    """A formula that cannot run at all; `error` says why and where."""

    def __init__(self, error: AutoScaleError) -> None:
        super().__init__(error.values[0][1])
        self.error = error


def syntax_error(detail: str, line: int, column: int) -> FormulaError:
    return FormulaError(AutoScaleError(SYNTAX_ERROR, SYNTAX_MESSAGE, detail, line, column))
