"""Handlers of the job and task operations: parse, check conditions, call `jobs`/`tasks`."""

from __future__ import annotations

from .. import jobtasks, odata
from ..resources import BatchError
from ..service import Batch
from ..store import Row
from .paging import conditions, created, entity, page, written
from .protocol import Call, Reply


class JobsApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.jobs = batch.jobs
        self.tasks = batch.tasks

    # ------------------------------------------------------------------ jobs

    def create_job(self, call: Call) -> Reply:
        return created(self.jobs.create(call.base, call.json_body()).body)

    def get_job(self, call: Call) -> Reply:
        return entity(call, self.jobs.get(call.params["jobId"]).body, "jobs")

    def list_jobs(self, call: Call) -> Reply:
        return page(self.batch.store, call, "job", "", odata.JOB_PROPS, "jobs")

    def _for_write(self, call: Call) -> Row:
        row = self.jobs.get(call.params["jobId"])
        conditions(call, row.body, write=True)
        return row

    def update_job(self, call: Call) -> Reply:
        row = self.jobs.writable(self._for_write(call))
        self.jobs.update(row, call.json_body(), replace=False)
        return written(200, row.body)

    def replace_job(self, call: Call) -> Reply:
        row = self.jobs.writable(self._for_write(call))
        self.jobs.update(row, call.json_body(), replace=True)
        return written(200, row.body)

    def delete_job(self, call: Call) -> Reply:
        self.jobs.delete(self._for_write(call))
        return Reply(202)

    def disable_job(self, call: Call) -> Reply:
        row = self.jobs.writable(self._for_write(call))
        self.jobs.disable(row, call.json_body().get("disableTasks"))
        return written(202, self.jobs.get(call.params["jobId"]).body)

    def enable_job(self, call: Call) -> Reply:
        self.jobs.enable(self._for_write(call))
        return written(202, self.jobs.get(call.params["jobId"]).body)

    def terminate_job(self, call: Call) -> Reply:
        row = self._for_write(call)
        reason = call.optional_body().get("terminateReason") or "UserTerminate"
        self.jobs.terminate(row, reason)
        return written(202, self.jobs.get(call.params["jobId"]).body)

    def task_counts(self, call: Call) -> Reply:
        counts = self.tasks.task_counts(self.jobs.get(call.params["jobId"]).key)
        return Reply(
            200, {"odata.metadata": f"{call.base}/$metadata#taskcounts/@Element", **counts}
        )

    def prep_release_status(self, call: Call) -> Reply:
        job = self.jobs.get(call.params["jobId"])
        if not job.body.get("jobPreparationTask") and not job.body.get("jobReleaseTask"):
            raise BatchError(
                409,
                "JobPreparationTaskNotSpecified",
                "The specified job does not have a job preparation task.",
            )
        return page(
            self.batch.store,
            call,
            jobtasks.KIND,
            job.key,
            jobtasks.STATUS_PROPS,
            "jobpreparationandreleasetaskstatuslist",
        )

    # ------------------------------------------------------------------ tasks

    def _task(self, call: Call) -> Row:
        return self.tasks.get(self.jobs.get(call.params["jobId"]), call.params["taskId"])

    def create_task(self, call: Call) -> Reply:
        job = self.jobs.writable(self.jobs.get(call.params["jobId"]))
        return created(self.tasks.add(call.base, job, call.json_body()).body)

    def create_task_collection(self, call: Call) -> Reply:
        job = self.jobs.writable(self.jobs.get(call.params["jobId"]))
        results = self.tasks.add_collection(call.base, job, call.json_body())
        return Reply(
            200, {"odata.metadata": f"{call.base}/$metadata#taskaddresult", "value": results}
        )

    def list_tasks(self, call: Call) -> Reply:
        job = self.jobs.get(call.params["jobId"])
        return page(self.batch.store, call, "task", job.key, odata.TASK_PROPS, "tasks")

    def get_task(self, call: Call) -> Reply:
        row = self._task(call)
        reply = entity(call, row.body, "tasks")
        reply.headers["DataServiceId"] = row.body["url"]
        return reply

    def replace_task(self, call: Call) -> Reply:
        row = self._task(call)
        conditions(call, row.body, write=True)
        self.tasks.replace(row, call.json_body())
        return written(200, row.body)

    def delete_task(self, call: Call) -> Reply:
        row = self._task(call)
        conditions(call, row.body, write=True)
        self.tasks.delete(row)
        return Reply(200)

    def terminate_task(self, call: Call) -> Reply:
        row = self._task(call)
        conditions(call, row.body, write=True)
        self.tasks.terminate(row)
        return written(204, self._task(call).body)

    def reactivate_task(self, call: Call) -> Reply:
        row = self._task(call)
        conditions(call, row.body, write=True)
        self.tasks.reactivate(row, self.jobs.get(call.params["jobId"]))
        return written(204, self._task(call).body)
