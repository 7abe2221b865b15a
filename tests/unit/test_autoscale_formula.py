"""The autoscale formula language (bspec.localbatch.autoscale), pure: no service runs.

Formulas marked "Microsoft" are copied from "Create a formula to automatically scale compute
nodes in a Batch pool" (and its .NET, Python and PowerShell snippets); each runs on snapshots
crafted so the documented target follows.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from bspec.localbatch.autoscale import (
    EVALUATION_ERROR,
    INSUFFICIENT_SAMPLE_DATA,
    READ_ONLY,
    RESOURCE_METRICS,
    SYNTAX_ERROR,
    TOO_LONG,
    AutoScaleOutcome,
    FormulaError,
    PoolSnapshot,
    SampleRecorder,
    SampleSeries,
    compile_formula,
    evaluate,
    schedule,
)
from bspec.localbatch.autoscale.examples import (
    CPU,
    DOCUMENTED,
    INITIAL_SIZE,
    PARALLEL_TASKS,
    PENDING_TASKS,
    POWERSHELL,
    PREEMPTED,
    PYTHON_SDK,
    TASK_BASED,
    TIME_BASED,
)
from bspec.localbatch.autoscale.values import format_double, format_interval
from hypothesis import given, settings
from hypothesis import strategies as st

# A Tuesday, 10:00 UTC (working hours on a weekday).
NOW = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
SATURDAY = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.UTC)


def history(values: list[float], now: dt.datetime = NOW, period: float = 30.0) -> SampleSeries:
    """Samples oldest first, the newest taken at `now`, one every `period` seconds."""
    end = now.timestamp()
    times = [end - period * (len(values) - 1 - i) for i in range(len(values))]
    return SampleSeries(times, [float(v) for v in values])


def run(
    formula: str, snapshot: PoolSnapshot | None = None, now: dt.datetime = NOW
) -> AutoScaleOutcome:
    return evaluate(formula, snapshot or PoolSnapshot(), now, rand=lambda: 0.25)


def ok(
    formula: str, snapshot: PoolSnapshot | None = None, now: dt.datetime = NOW
) -> AutoScaleOutcome:
    outcome = run(formula, snapshot, now)
    assert outcome.error is None, outcome.error
    return outcome


def results(outcome: AutoScaleOutcome) -> dict[str, str]:
    return dict(part.split("=", 1) for part in outcome.results.split(";"))


def value(expression: str, snapshot: PoolSnapshot | None = None) -> str:
    """What `$v = expression` shows in results."""
    return results(ok(f"$v = {expression};", snapshot))["$v"]


def failure(formula: str, snapshot: PoolSnapshot | None = None) -> tuple[str, str]:
    """(code, the `Message` value) of a formula that must fail to compile or to run."""
    outcome = run(formula, snapshot)
    assert outcome.error is not None, outcome.results
    assert outcome.target_dedicated is None and outcome.target_low_priority is None
    return outcome.error.code, outcome.error.values[0][1]


# ---- Microsoft's documented formulas ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_documented_formula_compiles(name: str) -> None:
    compile_formula(DOCUMENTED[name])


def test_pending_tasks_starts_with_one_node_until_samples_exist() -> None:
    outcome = ok(PENDING_TASKS, PoolSnapshot(active_tasks=40))
    assert (outcome.target_dedicated, outcome.node_deallocation_option) == (1, "taskcompletion")
    assert results(outcome)["$pendingTaskSamplePercent"] == "0"


def test_pending_tasks_follows_the_average_and_caps_at_25() -> None:
    samples = {"$PendingTasks": history([10, 20, 30, 40, 50, 60])}
    outcome = ok(PENDING_TASKS, PoolSnapshot(samples=samples))
    assert outcome.target_dedicated == 25
    assert results(outcome)["$pendingTaskSamples"] == "35"
    samples = {"$PendingTasks": history([2, 2, 4, 4, 6, 6])}
    assert ok(PENDING_TASKS, PoolSnapshot(samples=samples)).target_dedicated == 4
    samples = {"$PendingTasks": history([0] * 6)}
    assert ok(PENDING_TASKS, PoolSnapshot(samples=samples)).target_dedicated == 0


def test_preempted_nodes_are_replaced_by_dedicated_ones() -> None:
    samples = {"$PreemptedNodeCount": history([0, 0, 1, 2, 3, 3])}
    outcome = ok(PREEMPTED, PoolSnapshot(samples=samples))
    assert (outcome.target_dedicated, outcome.target_low_priority) == (0, 25)
    samples = {"$PreemptedNodeCount": history([3, 3, 3, 3, 4, 5])}
    outcome = ok(PREEMPTED, PoolSnapshot(samples=samples))
    assert (outcome.target_dedicated, outcome.target_low_priority) == (3, 22)


def test_cpu_formula_without_its_semicolon_is_a_syntax_error_as_microsoft_warns() -> None:
    code, message = failure(CPU)
    assert code == SYNTAX_ERROR
    assert message.startswith("Line 8, Col 1: Expected ';'")


def test_cpu_formula_holds_the_pool_when_cpu_reads_zero_locally() -> None:
    # The local CPU samples are zeros: avg < 0.2, so 90% of the current dedicated nodes.
    samples = {"$CPUPercent": history([0] * 120)}
    outcome = ok(
        DOCUMENTED["cpu (semicolon fixed)"], PoolSnapshot(current_dedicated=10, samples=samples)
    )
    assert outcome.target_dedicated == 9
    assert results(outcome)["$totalDedicatedNodes"] == "9"
    high = {"$CPUPercent": history([0.9] * 120)}
    outcome = ok(
        DOCUMENTED["cpu (semicolon fixed)"], PoolSnapshot(current_dedicated=10, samples=high)
    )
    assert results(outcome)["$TargetDedicatedNodes"] == "11"


@pytest.mark.parametrize(
    ("now", "dedicated"),
    [
        (NOW, 20),
        (NOW.replace(hour=7, minute=59), 10),
        (NOW.replace(hour=18), 10),
        (SATURDAY, 10),
        (SATURDAY + dt.timedelta(days=1), 10),  # Sunday: weekday 0
        (SATURDAY - dt.timedelta(days=1), 20),  # Friday: weekday 5
    ],
)
def test_time_based_formula(now: dt.datetime, dedicated: int) -> None:
    assert ok(TIME_BASED, now=now).target_dedicated == dedicated
    assert ok(PYTHON_SDK, now=now).target_dedicated == dedicated


def test_time_based_results_match_microsofts_sample_output() -> None:
    now = dt.datetime(2016, 10, 13, 19, 18, 47, 805_000, tzinfo=dt.UTC)
    formula = TIME_BASED.replace("$NodeDeallocationOption = taskcompletion;", "")
    assert ok(formula, now=now).results == (
        "$TargetDedicatedNodes=10;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;"
        "$curTime=2016-10-13T19:18:47.805Z;$isWeekday=1;$isWorkingWeekdayHour=0;$workHours=0"
    )


def test_task_based_formula() -> None:
    # No history: the last sample (none yet) or half the current target.
    assert ok(TASK_BASED, PoolSnapshot(target_dedicated=8)).target_dedicated == 4
    samples = {"$PendingTasks": history([6] * 31)}
    assert ok(TASK_BASED, PoolSnapshot(samples=samples)).target_dedicated == 6
    samples = {"$PendingTasks": history([50] * 31)}
    assert ok(TASK_BASED, PoolSnapshot(samples=samples)).target_dedicated == 20
    # Under 70% of the samples: the last one alone.
    samples = {"$PendingTasks": history([9, 9, 3])}
    outcome = ok(TASK_BASED, PoolSnapshot(samples=samples))
    assert outcome.target_dedicated == 3
    assert results(outcome)["$samples"] == "10"


def test_parallel_tasks_formula() -> None:
    samples = {"$ActiveTasks": history([9] * 31)}
    outcome = ok(PARALLEL_TASKS, PoolSnapshot(target_dedicated=1, samples=samples))
    # cores 4, extra (9 - 4 + 3) / 4 = 2, target 1 + 2 = 3 (capped at 3).
    assert results(outcome)["$extraVMs"] == "2"
    assert outcome.target_dedicated == 3
    samples = {"$ActiveTasks": history([0] * 31)}
    assert (
        ok(PARALLEL_TASKS, PoolSnapshot(target_dedicated=1, samples=samples)).target_dedicated == 0
    )


def test_initial_size_formula_waits_ten_minutes_then_drops_to_zero() -> None:
    started = "Tue, 01 Dec 2026 09:55:00 GMT"
    young = INITIAL_SIZE.replace("{0}", started).replace("{1}", "4")
    assert ok(young).target_dedicated == 4
    old = INITIAL_SIZE.replace("{0}", "Tue, 01 Dec 2026 08:00:00 GMT").replace("{1}", "4")
    idle = {name: history([0] * 121) for name in ("$RunningTasks", "$ActiveTasks")}
    assert ok(old, PoolSnapshot(samples=idle)).target_dedicated == 0
    busy = {**idle, "$ActiveTasks": history([0] * 120 + [2])}
    assert ok(old, PoolSnapshot(samples=busy)).target_dedicated == 4
    code, message = failure(old)  # after 10 minutes with no samples: the 50% rule
    assert code == INSUFFICIENT_SAMPLE_DATA
    assert message.endswith("$RunningTasks wanted 50%, received 0%")


def test_powershell_and_aliases() -> None:
    assert ok(POWERSHELL, PoolSnapshot(current_dedicated=7)).target_dedicated == 5
    samples = {"$CPUPercent": history([0.9] * 21)}
    outcome = ok(POWERSHELL, PoolSnapshot(current_dedicated=10, samples=samples))
    assert outcome.target_dedicated == 11
    assert outcome.results.startswith("$TargetDedicatedNodes=11;")


def test_dotnet_snippets() -> None:
    monday = NOW - dt.timedelta(days=1)
    assert ok(DOCUMENTED[".net monday"], now=monday).target_dedicated == 5
    assert ok(DOCUMENTED[".net monday"]).target_dedicated == 1
    assert ok(DOCUMENTED[".net keep"], PoolSnapshot(current_dedicated=3)).target_dedicated == 3
    assert (
        ok(DOCUMENTED["evaluate placeholder"], PoolSnapshot(target_dedicated=5)).target_dedicated
        == 0
    )
    assert ok(DOCUMENTED["mountain time"]).target_dedicated == 4


def test_sdk_sample_error_matches_the_batch_sdk_test() -> None:
    """Azure's .NET SDK tests this exact formula and message (Line 1, Col 24: the '(')."""
    outcome = run(DOCUMENTED["last-run sample"])
    assert outcome.error is not None
    assert outcome.error.to_autoscale_run_error() == {
        "code": "InsufficientSampleData",
        "message": "Autoscale evaluation failed due to insufficient sample data",
        "values": [
            {
                "name": "Message",
                "value": "Line 1, Col 24: Insufficient data from data set: $RunningTasks wanted 100%, received 0%",
            }
        ],
    }


# ---- results -------------------------------------------------------------------------------


def test_results_list_targets_first_then_user_variables_by_name() -> None:
    formula = "zeta = 1; $Alpha = 2; beta = 3; $TargetLowPriorityNodes = 2;"
    outcome = ok(formula, PoolSnapshot(target_dedicated=4))
    assert outcome.results == (
        "$TargetDedicatedNodes=4;$TargetLowPriorityNodes=2;$NodeDeallocationOption=requeue;"
        "$Alpha=2;$beta=3;$zeta=1"
    )
    assert (outcome.target_dedicated, outcome.target_low_priority) == (4, 2)


def test_doazureparallel_style_results() -> None:
    formula = (
        "$maxTasksPerNode = 4; $round = 3; $samples = 100; $tasks = 0; $targetVMs = 1;"
        "$TargetDedicatedNodes = 2; $TargetLowPriorityNodes = 5;"
        "$NodeDeallocationOption = taskcompletion;"
    )
    assert ok(formula).results == (
        "$TargetDedicatedNodes=2;$TargetLowPriorityNodes=5;$NodeDeallocationOption=taskcompletion;"
        "$maxTasksPerNode=4;$round=3;$samples=100;$targetVMs=1;$tasks=0"
    )


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("1", "1"),
        ("0.5", "0.5"),
        ("1 / 3", "0.3333333333333333"),
        ("10 * 1.1", "11"),
        ("1e15", "1E+15"),
        ("1e20", "1E+20"),
        ("0.00001", "1E-05"),
        ("0.0001", "0.0001"),
        ("-2.5", "-2.5"),
        ("$PendingTasks.GetSample(3)", "[1,2,3]"),
        ("TimeInterval_Minute * 90", "01:30:00"),
        ("TimeInterval_Day * 2 + TimeInterval_Millisecond", "2.00:00:00.0010000"),
        ("-TimeInterval_Second", "-00:00:01"),
        ('time("2016-10-14T18:36:43.282Z")', "2016-10-14T18:36:43.282Z"),
        ('"text"', "text"),
    ],
)
def test_number_and_value_formats(expression: str, shown: str) -> None:
    snapshot = PoolSnapshot(samples={"$PendingTasks": history([0, 1, 2, 3])})
    assert value(expression, snapshot) == shown


def test_format_helpers_edge_cases() -> None:
    assert format_double(math.nan) == "NaN"
    assert format_double(-math.inf) == "-Infinity"
    assert format_double(-0.0) == "-0"
    assert format_double(123456789012345.0) == "123456789012345"
    assert format_double(1.5e300) == "1.5E+300"
    assert format_interval(0) == "00:00:00"


# ---- operators -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),
        ("12 / 4 / 3", "1"),
        ("-3 + 5", "2"),
        ("--3", "3"),
        ("!0", "1"),
        ("!2", "0"),
        ("!!5", "1"),
        ("1 / 0", "Infinity"),
        ("-1 / 0", "-Infinity"),
        ("0 / 0", "NaN"),
        ("2 < 3", "1"),
        ("3 <= 3", "1"),
        ("2 > 3", "0"),
        ("3 >= 4", "0"),
        ("3 == 3", "1"),
        ("3 != 3", "0"),
        ("1 < 2 == 1", "1"),
        ("1 && 0", "0"),
        ("1 && 2", "1"),
        ("0 || 0", "0"),
        ("0 || 3", "1"),
        ("1 || 0 && 0", "1"),
        ("1 ? 2 : 3", "2"),
        ("0 ? 2 : 3", "3"),
        ("0 ? 1 : 0 ? 2 : 3", "3"),
        ("1 ? 0 ? 4 : 5 : 6", "5"),
        ("0.5 ? 7 : 8", "7"),
        ('"abc" < "abd"', "1"),
        ('"abc" == "abc"', "1"),
        ("TimeInterval_Minute > TimeInterval_Second", "1"),
        ("TimeInterval_Hour == 60 * TimeInterval_Minute", "1"),
        ('time() > time("2020-01-01T00:00:00Z")', "1"),
        ('time() - time("2026-12-01T09:00:00Z") == TimeInterval_Hour', "1"),
        ("TimeInterval_Hour - TimeInterval_Minute", "00:59:00"),
        ("TimeInterval_Hour / 4", "00:15:00"),
        ("TimeInterval_Hour * 0.5", "00:30:00"),
        ('TimeInterval_Minute + time("2026-12-01T09:00:00Z")', "2026-12-01T09:01:00.000Z"),
        ("TimeInterval_100ns * 5", "00:00:00.0000005"),
        ("TimeInterval_Microsecond", "00:00:00.0000010"),
        ("TimeInterval_Zero", "00:00:00"),
        ("TimeInterval_Week", "7.00:00:00"),
        ("TimeInterval_Year", "365.00:00:00"),
        ("$PendingTasks.GetSample(3) + 1", "[2,3,4]"),
        ("$PendingTasks.GetSample(3) * $PendingTasks.GetSample(3)", "[1,4,9]"),
        ("$PendingTasks.GetSample(3) - 1", "[0,1,2]"),
        ("$PendingTasks.GetSample(3) / 2", "[0.5,1,1.5]"),
        ("$PendingTasks.GetSample(2) / $PendingTasks.GetSample(2) ", "[1,1]"),
    ],
)
def test_operators(expression: str, shown: str) -> None:
    snapshot = PoolSnapshot(samples={"$PendingTasks": history([1, 2, 3])})
    assert value(expression, snapshot) == shown


def test_logical_operators_short_circuit() -> None:
    # The right side would fail (no samples for 70%) but is never evaluated.
    ok("$v = 0 && $ActiveTasks.GetSample(TimeInterval_Minute * 5, 70);")
    ok("$v = 1 || $ActiveTasks.GetSample(TimeInterval_Minute * 5, 70);")


def test_ternary_evaluates_only_the_chosen_branch() -> None:
    ok("$v = 1 ? 2 : $ActiveTasks.GetSample(TimeInterval_Minute * 5, 70);")


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        ('"a" + 1', "Operator '+' does not apply to string and double"),
        ('1 - "a"', "Operator '-' does not apply to double and string"),
        ("1 + TimeInterval_Second", "Operator '+' does not apply to double and timeinterval"),
        (
            "TimeInterval_Second * TimeInterval_Second",
            "Operator '*' does not apply to timeinterval and timeinterval",
        ),
        ("time() + time()", "Operator '+' does not apply to timestamp and timestamp"),
        (
            "time() - TimeInterval_Second",
            "Operator '-' does not apply to timestamp and timeinterval",
        ),
        ("2 / TimeInterval_Second", "Operator '/' does not apply to double and timeinterval"),
        ('1 < "a"', "Operator '<' does not apply to double and string"),
        ("time() == 1", "Operator '==' does not apply to timestamp and double"),
        ('-"a"', "Operator '-' does not apply to string"),
        ("!TimeInterval_Second", "Operator '!' does not apply to timeinterval"),
        ('"a" && 1', "Operator '&&' does not apply to string"),
        ('0 || "a"', "Operator '||' does not apply to string"),
        ('"a" ? 1 : 2', "The condition of '?:' must be a double, not string"),
        ("TimeInterval_Second / 0", "Division of a timeinterval by zero"),
        ("(1).hour", "Member 'hour' needs a timestamp, not double"),
        ('avg("a")', "Function 'avg' takes doubles and doubleVecs, not string"),
        ("avg($PendingTasks.GetSample(0))", "Function 'avg' has no values to work on"),
        ("time(3)", "Function 'time' needs a string, not double"),
        ('time("yesterday")', "'yesterday' is neither a W3C-DTF nor an RFC 1123 date and time"),
        ("val($PendingTasks.GetSample(3), 3)", "Index 3 is outside the vector of 3 values"),
        ("val($PendingTasks.GetSample(3), 0.5)", "Index 0.5 is outside the vector of 3 values"),
        ('val("a", 0)', "Function 'val' needs a doubleVec, not string"),
        (
            "percentile($PendingTasks.GetSample(3), 101)",
            "The percentile must be between 0 and 100, not 101",
        ),
        (
            '$PendingTasks.GetSample("a")',
            "Method 'GetSample' needs a timeinterval or timestamp, not string",
        ),
        (
            '$PendingTasks.GetSample(TimeInterval_Minute, TimeInterval_Second, "a")',
            "The sample percentage must be a double, not string",
        ),
        (
            "$PendingTasks.GetSample(3) + $PendingTasks.GetSample(2)",
            "Operator '+' needs vectors of one length, not 3 and 2",
        ),
        ("$PendingTasks.GetSample(3) < 1", "Operator '<' does not apply to doubleVec and double"),
        ("time() + TimeInterval_Year * 10000", "The timestamp is out of range"),
        ("TimeInterval_Year * 1e300", "The timeinterval is out of range"),
        ("1e300 * TimeInterval_Year", "The timeinterval is out of range"),
    ],
)
def test_type_errors_fail_at_run_time_with_their_position(expression: str, detail: str) -> None:
    snapshot = PoolSnapshot(samples={"$PendingTasks": history([1, 2, 3])})
    code, message = failure(f"x = 1;\n  $v = {expression};", snapshot)
    assert code == EVALUATION_ERROR
    assert message.startswith("Line 2, Col ")
    assert message.endswith(": " + detail)


def test_a_run_time_error_reports_the_operator_column_and_keeps_earlier_results() -> None:
    outcome = run('a = 5;\nb = a + "x";')
    assert outcome.error is not None
    assert outcome.error.values == (
        ("Message", "Line 2, Col 7: Operator '+' does not apply to double and string"),
    )
    assert outcome.results.endswith(";$a=5")
    assert outcome.to_autoscale_run()["error"]["code"] == EVALUATION_ERROR


# ---- functions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "shown"),
    [
        ("avg(1, 2, 6)", "3"),
        ("avg($PendingTasks.GetSample(3), 7)", "3.25"),  # [1,2,3] and 7, as Microsoft's avg(v, 7)
        ("len($PendingTasks.GetSample(3), 7)", "4"),
        ("count($PendingTasks.GetSample(3))", "3"),
        ("len($PendingTasks.GetSample(0))", "0"),
        ("max(1, $PendingTasks.GetSample(3))", "3"),
        ("min($PendingTasks.GetSample(3), 0.5)", "0.5"),
        ("max(0, $PendingTasks.GetSample(0))", "0"),
        ("sum($PendingTasks.GetSample(3))", "6"),
        ("sum($PendingTasks.GetSample(0))", "0"),
        ("range(4, 1, 9)", "8"),
        ("std(2, 4, 4, 4, 5, 5, 7, 9)", "2.138089935299395"),
        ("std(5)", "0"),
        ("std(1e300, -1e300)", "Infinity"),
        ("sum(1 / 0, -1 / 0)", "NaN"),
        ("norm(3, 4)", "5"),
        ("lg(8)", "3"),
        ("ln(1)", "0"),
        ("log(1000)", "3"),
        ("log(0)", "-Infinity"),
        ("ln(-1)", "NaN"),
        ("lg($PendingTasks.GetSample(3))", "[0,1,1.584962500721156]"),
        ("log(10, 100)", "[1,2]"),
        ("percentile($PendingTasks.GetSample(3), 50)", "2"),
        ("percentile($PendingTasks.GetSample(3), 0)", "1"),
        ("percentile($PendingTasks.GetSample(3), 100)", "3"),
        ("percentile($PendingTasks.GetSample(3), 90)", "3"),
        ("rand()", "0.25"),
        ("val($PendingTasks.GetSample(3), 0)", "1"),
        ("val($PendingTasks.GetSample(3), 2)", "3"),
        ("time().year", "2026"),
        ("time().month", "12"),
        ("time().day", "1"),
        ("time().weekday", "2"),
        ("time().hour", "10"),
        ("time().minute", "0"),
        ('time("2026-12-01T10:11:12Z").second', "12"),
        ('time("")', "2026-12-01T10:00:00.000Z"),
        ('time("Tue, 01 Dec 2026 09:00:00 GMT")', "2026-12-01T09:00:00.000Z"),
        ('time("2026-12-01T12:00:00+02:00").hour', "10"),
        ('time("2023-04-14T10:11:12.123456789Z").second', "12"),
    ],
)
def test_functions(expression: str, shown: str) -> None:
    snapshot = PoolSnapshot(samples={"$PendingTasks": history([1, 2, 3])})
    assert value(expression, snapshot) == shown


def test_stop_ends_the_formula_and_keeps_what_was_assigned() -> None:
    outcome = ok(
        "$TargetDedicatedNodes = 3; $CurrentDedicatedNodes > 2 ? stop() : 0; $TargetDedicatedNodes = 9;",
        PoolSnapshot(current_dedicated=5),
    )
    assert outcome.stopped and outcome.target_dedicated == 3
    outcome = ok(
        "$TargetDedicatedNodes = 3; $CurrentDedicatedNodes > 2 ? stop() : 0; $TargetDedicatedNodes = 9;"
    )
    assert not outcome.stopped and outcome.target_dedicated == 9


# ---- variables -----------------------------------------------------------------------------


def test_read_only_variables_read_the_snapshot() -> None:
    snapshot = PoolSnapshot(
        current_dedicated=2,
        current_low_priority=3,
        preempted=1,
        usable=4,
        task_slots_per_node=8,
        active_tasks=5,
        running_tasks=6,
        succeeded_tasks=7,
        failed_tasks=9,
    )
    expected = {
        "$ActiveTasks": "5",
        "$RunningTasks": "6",
        "$PendingTasks": "11",
        "$SucceededTasks": "7",
        "$FailedTasks": "9",
        "$TaskSlotsPerNode": "8",
        "$CurrentDedicatedNodes": "2",
        "$CurrentLowPriorityNodes": "3",
        "$PreemptedNodeCount": "1",
        "$UsableNodeCount": "4",
        "$SampleNodeCount": "5",
        **dict.fromkeys(RESOURCE_METRICS, "0"),
    }
    assert set(expected) == set(READ_ONLY)
    for name, shown in expected.items():
        assert value(name, snapshot) == shown, name


def test_service_names_are_case_insensitive_and_user_names_are_not() -> None:
    outcome = ok(
        "$targetdedicatednodes = max(0, $PENDINGTASKS.getsample(1)) == 0 ? 2 : 3; x = 1; X = 2;"
        "$NODEDEALLOCATIONOPTION = TaskCompletion; t = timeinterval_minute;",
    )
    assert outcome.target_dedicated == 2 and outcome.node_deallocation_option == "taskcompletion"
    assert results(outcome)["$x"] == "1" and results(outcome)["$X"] == "2"
    assert results(outcome)["$t"] == "00:01:00"


def test_dollar_is_optional_for_user_variables() -> None:
    outcome = ok("a = 2; $b = $a + 1; c = b * 2;")
    assert (results(outcome)["$a"], results(outcome)["$b"], results(outcome)["$c"]) == (
        "2",
        "3",
        "6",
    )


def test_targets_start_from_the_pools_current_targets() -> None:
    outcome = ok("x = 1;", PoolSnapshot(target_dedicated=3, target_low_priority=4))
    assert (outcome.target_dedicated, outcome.target_low_priority) == (3, 4)
    assert outcome.node_deallocation_option == "requeue"


def test_full_name_wins_over_its_alias() -> None:
    outcome = ok("$TargetDedicated = 5; $TargetLowPriority = 6;")
    assert (outcome.target_dedicated, outcome.target_low_priority) == (5, 6)
    assert outcome.results.startswith("$TargetDedicatedNodes=5;$TargetLowPriorityNodes=6;")
    outcome = ok(
        "$TargetDedicatedNodes = 2; $TargetDedicated = 5; x = $TargetDedicatedNodes; y = $TargetDedicated;"
    )
    assert outcome.target_dedicated == 2
    assert (results(outcome)["$x"], results(outcome)["$y"]) == ("2", "5")
    outcome = ok("$TargetDedicated = 5; x = $TargetDedicatedNodes;")
    assert results(outcome)["$x"] == "5"


@pytest.mark.parametrize(
    ("formula", "detail"),
    [
        (
            "$TargetDedicatedNodes = -1;",
            "$TargetDedicatedNodes must be a non-negative number, not -1",
        ),
        (
            "$TargetLowPriorityNodes = 0 / 0;",
            "$TargetLowPriorityNodes must be a non-negative number, not NaN",
        ),
        (
            "$TargetDedicatedNodes = 1 / 0;",
            "$TargetDedicatedNodes must be a non-negative number, not Infinity",
        ),
        ('$TargetDedicatedNodes = "5";', "$TargetDedicatedNodes must be a double, not string"),
        (
            "$NodeDeallocationOption = 1;",
            "$NodeDeallocationOption must be one of requeue, terminate, taskcompletion, retaineddata, not 1",
        ),
        (
            '$NodeDeallocationOption = "later";',
            "$NodeDeallocationOption must be one of requeue, terminate, taskcompletion, retaineddata, not later",
        ),
    ],
)
def test_invalid_targets_fail_the_evaluation(formula: str, detail: str) -> None:
    code, message = failure(formula)
    assert (code, message) == (EVALUATION_ERROR, detail)


def test_a_negative_intermediate_target_is_fine() -> None:
    assert (
        ok(
            "$TargetDedicatedNodes = -4; $TargetDedicatedNodes = max(0, $TargetDedicatedNodes);"
        ).target_dedicated
        == 0
    )


def test_fractional_targets_are_truncated_and_shown_as_computed() -> None:
    outcome = ok("$TargetDedicatedNodes = 2.9;")
    assert outcome.target_dedicated == 2
    assert outcome.results.startswith("$TargetDedicatedNodes=2.9;")


@pytest.mark.parametrize("option", ["requeue", "terminate", "taskcompletion", "retaineddata"])
def test_deallocation_options(option: str) -> None:
    assert ok(f"$NodeDeallocationOption = {option};").node_deallocation_option == option
    assert ok(f'$NodeDeallocationOption = "{option.upper()}";').node_deallocation_option == option


# ---- sample methods ------------------------------------------------------------------------


def test_get_sample_percentage_rule() -> None:
    """10 minutes hold 20 samples; with 18 of them (the last minute missing) 95% fails, 80% works."""
    full = history([1.0] * 21)
    missing_last_minute = SampleSeries(full.times[:-2], full.values[:-2])
    snapshot = PoolSnapshot(samples={"$CPUPercent": missing_last_minute})
    assert value("$CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)", snapshot) == "90"
    assert value("len($CPUPercent.GetSample(TimeInterval_Minute * 10, 80))", snapshot) == "18"
    code, message = failure("$v = $CPUPercent.GetSample(TimeInterval_Minute * 10, 95);", snapshot)
    assert code == INSUFFICIENT_SAMPLE_DATA
    assert (
        message
        == "Line 1, Col 27: Insufficient data from data set: $CPUPercent wanted 95%, received 90%"
    )
    snapshot = PoolSnapshot(samples={"$CPUPercent": full})
    assert value("len($CPUPercent.GetSample(TimeInterval_Minute * 10))", snapshot) == "20"
    assert value("$CPUPercent.GetSamplePercent(TimeInterval_Minute * 10)", snapshot) == "100"


def test_a_new_pool_has_no_samples_the_classic_trap() -> None:
    formula = "$TargetDedicatedNodes = max($ActiveTasks.GetSample(TimeInterval_Minute * 15, 70));"
    code, message = failure(formula, PoolSnapshot(active_tasks=10))
    assert code == INSUFFICIENT_SAMPLE_DATA
    assert message.endswith("$ActiveTasks wanted 70%, received 0%")
    # Without a percentage GetSample returns what there is, here nothing.
    assert value("len($ActiveTasks.GetSample(TimeInterval_Minute * 15))") == "0"
    assert value("len($ActiveTasks.GetSample(1))") == "0"


def test_samples_not_yet_visible_count_as_missing() -> None:
    snapshot = PoolSnapshot(samples={"$RunningTasks": history([1] * 7)}, sample_delay_seconds=60)
    assert (
        value("$RunningTasks.GetSamplePercent(180 * TimeInterval_Second)", snapshot)
        == "66.66666666666667"
    )
    assert (
        value(
            "$RunningTasks.GetSamplePercent(60 * TimeInterval_Second, 180 * TimeInterval_Second)",
            snapshot,
        )
        == "100"
    )
    assert (
        value(
            "len($RunningTasks.GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute))",
            snapshot,
        )
        == "5"
    )
    assert value("len($RunningTasks.GetSample(7))", snapshot) == "5"


def test_get_sample_windows() -> None:
    samples = {"$RunningTasks": history([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13])}
    snapshot = PoolSnapshot(samples=samples)
    # (now - 6 min, now - 1 min]: the 10 samples Microsoft's example returns.
    assert (
        value("$RunningTasks.GetSample(1 * TimeInterval_Minute, 6 * TimeInterval_Minute)", snapshot)
        == "[2,3,4,5,6,7,8,9,10,11]"
    )
    assert (
        value("$RunningTasks.GetSample(6 * TimeInterval_Minute, 1 * TimeInterval_Minute)", snapshot)
        == "[2,3,4,5,6,7,8,9,10,11]"
    )
    assert (
        value(
            "$RunningTasks.GetSample(60 * TimeInterval_Second, 120 * TimeInterval_Second, 75)",
            snapshot,
        )
        == "[10,11]"
    )
    assert value("$RunningTasks.GetSample(2)", snapshot) == "[12,13]"
    assert value("$RunningTasks.GetSample(100)", snapshot) == "[1,2,3,4,5,6,7,8,9,10,11,12,13]"
    assert (
        value('$RunningTasks.GetSample(time("2026-12-01T09:58:00Z"))', snapshot) == "[10,11,12,13]"
    )
    assert (
        value(
            '$RunningTasks.GetSample(time("2026-12-01T09:58:00Z"), time("2026-12-01T09:59:00Z"))',
            snapshot,
        )
        == "[10,11]"
    )
    assert value('$RunningTasks.GetSamplePercent(time("2026-12-01T09:58:00Z"))', snapshot) == "100"


def test_other_sample_methods() -> None:
    samples = {"$ActiveTasks": history([4, 5, 6])}
    snapshot = PoolSnapshot(samples=samples)
    assert value("$ActiveTasks.Count()", snapshot) == "3"
    assert value("$ActiveTasks.GetSamplePeriod()", snapshot) == "00:00:30"
    assert value("$ActiveTasks.HistoryBeginTime()", snapshot) == "2026-12-01T09:59:00.000Z"
    assert value("$ActiveTasks.HistoryBeginTime()") == "2026-12-01T10:00:00.000Z"
    assert value("$RunningTasks.Count()", snapshot) == "0"
    assert value("$ActiveTasks.getsample(1)", snapshot) == "[6]"


def test_recorder_keeps_a_sampled_history() -> None:
    recorder = SampleRecorder(retention_seconds=600)
    start = NOW - dt.timedelta(hours=1)
    assert recorder.due(start)
    for i in range(121):
        at = start + dt.timedelta(seconds=30 * i)
        if recorder.due(at):
            recorder.record(at, PoolSnapshot(active_tasks=i, running_tasks=1))
    recorder.record(NOW, PoolSnapshot())  # already recorded at that time: ignored
    assert not recorder.due(NOW + dt.timedelta(seconds=29))
    assert recorder.due(NOW + dt.timedelta(seconds=30))
    series = recorder.series()
    assert set(series) == set(READ_ONLY)
    assert series["$ActiveTasks"].values[-1] == 120.0
    assert series["$PendingTasks"].values[-1] == 121.0
    assert series["$CPUPercent"].values[-1] == 0.0
    assert NOW.timestamp() - series["$ActiveTasks"].times[0] <= 600 * 1.125 + 30
    snapshot = PoolSnapshot(samples=series)
    assert (
        value("$ActiveTasks.GetSample(TimeInterval_Minute * 2, 100)", snapshot)
        == "[117,118,119,120]"
    )


# ---- syntax and compile errors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("$TargetDedicatedNodes = ;", "Line 1, Col 25: Expected an expression, found ';'"),
        ("$TargetDedicatedNodes = (1 + 2;", "Line 1, Col 31: Expected ')' to close '(', found ';'"),
        ("x = 1 +\n\n   * 2;", "Line 3, Col 4: Expected an expression, found '*'"),
        ("x = 1 ? 2;", "Line 1, Col 10: Expected ':' in the conditional expression, found ';'"),
        ("x = 5 % 2;", "Line 1, Col 7: Unexpected character '%'"),
        ("x = 1 2;", "Line 1, Col 7: Expected ';' between statements, found '2'"),
        ("x = max(1, 2;", "Line 1, Col 13: Expected ')' after the arguments, found ';'"),
        ('x = "abc;', "Line 1, Col 5: Unterminated string literal"),
        ("x = y + 1;", "Line 1, Col 5: Undefined variable y: no earlier statement assigns it"),
        (
            "x = $y; $y = 1;",
            "Line 1, Col 5: Undefined variable $y: no earlier statement assigns it",
        ),
        ("x = foo(1);", "Line 1, Col 8: Unknown function 'foo'"),
        ("x = max();", "Line 1, Col 8: Function 'max' takes at least 1 argument, not 0"),
        ("x = rand(1);", "Line 1, Col 9: Function 'rand' takes 0 arguments, not 1"),
        ("x = val(1);", "Line 1, Col 8: Function 'val' takes 2 arguments, not 1"),
        ('x = time("a", "b");', "Line 1, Col 9: Function 'time' takes 0 to 1 arguments, not 2"),
        (
            "x = $ActiveTasks.GetSample();",
            "Line 1, Col 27: Method 'GetSample' takes 1 to 3 arguments, not 0",
        ),
        ("x = $ActiveTasks.Average();", "Line 1, Col 25: Unknown method 'Average'"),
        (
            "x = 1; y = x.GetSample(1);",
            "Line 1, Col 23: Method 'GetSample' applies only to the service's read-only variables",
        ),
        (
            "x = time().hours;",
            "Line 1, Col 12: Unknown member 'hours'; a timestamp has year, month, day, weekday, hour, minute, second",
        ),
        ("x = time().;", "Line 1, Col 12: Expected a method or member name after '.', found ';'"),
        (
            "$ActiveTasks = 3;",
            "Line 1, Col 1: $ActiveTasks is a read-only service-defined variable",
        ),
        (
            "TimeInterval_Second = 3;",
            "Line 1, Col 1: Cannot assign to the constant TimeInterval_Second",
        ),
        ("x = @;", "Line 1, Col 5: Unexpected character '@'"),
        ("$ = 1;", "Line 1, Col 1: Unexpected character '$'"),
        ("x = +1;", "Line 1, Col 5: Expected an expression, found '+'"),
    ],
)
def test_syntax_errors_say_where(formula: str, message: str) -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula(formula)
    error = caught.value.error
    assert error.code == SYNTAX_ERROR
    assert error.message == "The specified auto-scaling formula has a syntax error."
    assert error.values == (("Message", message),)
    assert failure(formula) == (SYNTAX_ERROR, message)


def test_syntax_error_as_a_batch_error_body() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("x = ;")
    assert caught.value.error.to_batch_error() == {
        "code": "AutoScalingFormulaSyntaxError",
        "message": {
            "lang": "en-us",
            "value": "The specified auto-scaling formula has a syntax error.",
        },
        "values": [{"key": "Message", "value": "Line 1, Col 5: Expected an expression, found ';'"}],
    }
    assert str(caught.value) == "Line 1, Col 5: Expected an expression, found ';'"


def test_comments_blank_statements_and_line_breaks() -> None:
    outcome = ok("// only a comment\n;;\n$TargetDedicatedNodes =\n  2; // trailing\n;")
    assert outcome.target_dedicated == 2
    assert ok("").target_dedicated == 0
    assert (
        ok("// nothing").results
        == "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue"
    )


def test_length_and_statement_limits() -> None:
    with pytest.raises(FormulaError) as caught:
        compile_formula("x = 1;" + " " * 8192)
    assert caught.value.error.code == TOO_LONG
    assert caught.value.error.values[0][1] == "The formula has 8198 characters; the limit is 8192"
    compile_formula("x = 1;" * 100)
    with pytest.raises(FormulaError) as caught:
        compile_formula("x = 1;" * 101)
    assert caught.value.error.code == TOO_LONG
    assert (
        caught.value.error.values[0][1]
        == "Line 1, Col 601: The formula has 101 statements; the limit is 100"
    )


def test_outcome_as_autoscale_run() -> None:
    run_ = ok("$TargetDedicatedNodes = 1;").to_autoscale_run()
    assert run_ == {
        "timestamp": "2026-12-01T10:00:00.000000Z",
        "results": "$TargetDedicatedNodes=1;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue",
    }


# ---- schedule ------------------------------------------------------------------------------


def test_schedule_rules() -> None:
    assert schedule.interval_in_range(dt.timedelta(minutes=5))
    assert not schedule.interval_in_range(dt.timedelta(minutes=4, seconds=59))
    assert schedule.interval_in_range(dt.timedelta(hours=168))
    assert not schedule.interval_in_range(dt.timedelta(hours=168, seconds=1))
    assert schedule.enable_too_soon(NOW, NOW + dt.timedelta(seconds=29))
    assert not schedule.enable_too_soon(NOW, NOW + dt.timedelta(seconds=30))
    assert not schedule.enable_too_soon(None, NOW)
    five = dt.timedelta(minutes=5)
    assert schedule.next_evaluation(NOW, five, NOW) == NOW + five
    assert schedule.next_evaluation(NOW, five, NOW + dt.timedelta(minutes=7)) == NOW + 2 * five
    assert schedule.next_evaluation(NOW, five, NOW - five) == NOW + five
    assert not schedule.evaluations_due(NOW, five, NOW, NOW + dt.timedelta(minutes=4))
    assert schedule.evaluations_due(NOW, five, NOW, NOW + five)
    assert schedule.evaluations_due(NOW, five, NOW + five, NOW + 3 * five)


# ---- no traceback for any input ------------------------------------------------------------


@pytest.mark.parametrize(
    "formula",
    [
        "x = " + "(" * 3000 + "1" + ")" * 3000 + ";",
        "x = " + "-" * 5000 + "1;",
        "x = " + "!" * 5000 + "1;",
    ],
)
def test_deep_nesting_is_a_syntax_error(formula: str) -> None:
    code, message = failure(formula)
    assert (code, message) == (SYNTAX_ERROR, "Line 1, Col 1: The formula nests too deeply")


PIECES = [
    *'$xyTt01.5 ;=+-*/!<>?:(),"&|\n',
    "GetSample",
    "$ActiveTasks",
    "TimeInterval_Minute",
    "avg",
    "time()",
    "stop()",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_any_text_ends_in_an_outcome_never_an_exception(text: str) -> None:
    outcome = run(text)
    assert (outcome.error is None) == (outcome.target_dedicated is not None)


def test_recorder_catches_up_after_a_clock_step() -> None:
    recorder = SampleRecorder()
    assert recorder.catch_up(NOW, PoolSnapshot(active_tasks=1)) == 1
    assert recorder.catch_up(NOW + dt.timedelta(seconds=20), PoolSnapshot()) == 0
    later = NOW + dt.timedelta(minutes=10, seconds=5)
    assert recorder.catch_up(later, PoolSnapshot(active_tasks=7)) == 20
    series = recorder.series()["$ActiveTasks"]
    assert series.values == [1.0] + [7.0] * 20
    assert series.times[-1] == (NOW + dt.timedelta(minutes=10)).timestamp()
    snapshot = PoolSnapshot(samples=recorder.series())
    outcome = ok("$v = $ActiveTasks.GetSamplePercent(TimeInterval_Minute * 10);", snapshot, later)
    assert results(outcome)["$v"] == "100"
    # A jump beyond the retention records only what is kept.
    recorder = SampleRecorder(retention_seconds=3600)
    recorder.catch_up(NOW, PoolSnapshot())
    assert recorder.catch_up(NOW + dt.timedelta(days=2), PoolSnapshot()) <= 121
