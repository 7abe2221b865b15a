"""Handlers of the job schedule operations: parse, check conditions, call `jobschedules`."""

from __future__ import annotations

from .. import odata
from ..resources import BatchError
from ..service import Batch
from ..store import Row
from .paging import conditions, created, entity, entity_headers, page, written
from .protocol import Call, Reply

# What Batch lets a job schedule list filter on.
SCHEDULE_PROPS = frozenset(
    {
        "id",
        "displayName",
        "state",
        "previousState",
        "creationTime",
        "lastModified",
        "stateTransitionTime",
        "previousStateTransitionTime",
        "executionInfo/nextRunTime",
        "executionInfo/endTime",
        "executionInfo/recentJob/id",
    }
)


def _no_stats(call: Call) -> None:
    """Lifetime statistics are not kept by the local service: `$expand=stats` says so."""
    expand = call.query.get("$expand")
    if expand and "stats" in [e.strip() for e in expand.split(",")]:
        raise BatchError(
            400,
            "UnsupportedQueryParameterValue",
            "Job schedule statistics (stats) are not supported by the local Batch service.",
            {"QueryParameterName": "$expand", "QueryParameterValue": expand},
        )


class JobSchedulesApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.schedules = batch.jobschedules

    def create(self, call: Call) -> Reply:
        return created(self.schedules.create(call.base, call.json_body()).body)

    def get(self, call: Call) -> Reply:
        _no_stats(call)
        return entity(call, self.schedules.get(call.params["jobScheduleId"]).body, "jobschedules")

    def exists(self, call: Call) -> Reply:
        row = self.batch.store.get("jobschedule", "", call.params["jobScheduleId"])
        if row is None:
            return Reply(404)
        conditions(call, row.body, write=False)
        return Reply(200, None, entity_headers(row.body))

    def list(self, call: Call) -> Reply:
        _no_stats(call)
        return page(self.batch.store, call, "jobschedule", "", SCHEDULE_PROPS, "jobschedules")

    def list_jobs(self, call: Call) -> Reply:
        _no_stats(call)
        row = self.schedules.get(call.params["jobScheduleId"])
        prefix = f"{row.key}:job-"
        scope = ("substr(key, 1, ?) = ?", [len(prefix), prefix])
        return page(self.batch.store, call, "job", "", odata.JOB_PROPS, "jobs", scope=scope)

    def _for_write(self, call: Call) -> Row:
        row = self.schedules.get(call.params["jobScheduleId"])
        conditions(call, row.body, write=True)
        return row

    def update(self, call: Call) -> Reply:
        row = self.schedules.writable(self._for_write(call))
        self.schedules.update(row, call.json_body(), replace=False)
        return written(200, row.body)

    def replace(self, call: Call) -> Reply:
        row = self.schedules.writable(self._for_write(call))
        self.schedules.update(row, call.json_body(), replace=True)
        return written(200, row.body)

    def delete(self, call: Call) -> Reply:
        self.schedules.delete(self._for_write(call))
        return Reply(202)

    def disable(self, call: Call) -> Reply:
        self.schedules.disable(self._for_write(call))
        return written(204, self.schedules.get(call.params["jobScheduleId"]).body)

    def enable(self, call: Call) -> Reply:
        self.schedules.enable(self._for_write(call))
        return written(204, self.schedules.get(call.params["jobScheduleId"]).body)

    def terminate(self, call: Call) -> Reply:
        self.schedules.terminate(self._for_write(call))
        return written(202, self.schedules.get(call.params["jobScheduleId"]).body)
