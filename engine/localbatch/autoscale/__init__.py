"""Azure Batch's autoscale formula language, as a pure package the local service calls.

    compile_formula(text) -> CompiledFormula        FormulaError (HTTP 400) if it cannot run
    evaluate(formula, snapshot, now) -> AutoScaleOutcome
    PoolSnapshot: counts and sample histories;  SampleRecorder: records them every 30 s
    schedule: Batch's interval and enable-spacing rules

Modules: syntax (tokenizer, parser, AST), compiler (names and operators, to closures),
builtins (functions and sample methods), runtime (the frame closures run on), values (types
and Batch's number formats), snapshot, evaluation, errors, schedule, examples (Microsoft's
documented formulas). docs/autoscale.md describes the language as supported here.
"""

from .compiler import DEALLOCATION_OPTIONS, CompiledFormula, compile_formula
from .errors import (
    EVALUATION_ERROR,
    INSUFFICIENT_SAMPLE_DATA,
    SYNTAX_ERROR,
    TOO_LONG,
    AutoScaleError,
    FormulaError,
)
from .evaluation import AutoScaleOutcome, compile_cached, evaluate
from .snapshot import (
    READ_ONLY,
    RESOURCE_METRICS,
    SAMPLE_PERIOD_SECONDS,
    PoolSnapshot,
    SampleRecorder,
    SampleSeries,
)

__all__ = [
    "DEALLOCATION_OPTIONS",
    "EVALUATION_ERROR",
    "INSUFFICIENT_SAMPLE_DATA",
    "READ_ONLY",
    "RESOURCE_METRICS",
    "SAMPLE_PERIOD_SECONDS",
    "SYNTAX_ERROR",
    "TOO_LONG",
    "AutoScaleError",
    "AutoScaleOutcome",
    "CompiledFormula",
    "FormulaError",
    "PoolSnapshot",
    "SampleRecorder",
    "SampleSeries",
    "compile_cached",
    "compile_formula",
    "evaluate",
]
