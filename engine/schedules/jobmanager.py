"""bspec's job manager: adds a scheduled job's tasks to the run it was started in.

Batch starts it as the job manager task of every job a bspec job schedule makes, with the
task collection bspec rendered (`tasks.json`, Batch REST task bodies) beside it and an
authentication token for its own job. It then:

1. replaces `$AZ_BATCH_JOB_ID` (and `${AZ_BATCH_JOB_ID}`) in every string of the task
   bodies with the run's job id, so each run's outputs and logs land under its own folder;
2. adds the tasks to its job through the Batch REST API (AddTaskCollection, 100 at a time,
   in the waves bspec ordered them, so that no task names a dependency Batch has not seen),
   with the token as a Bearer credential; 5xx, 429 and network errors are retried with
   backoff (honouring Retry-After), and a TaskExists answer counts as added, so a manager
   that Batch restarts adds nothing twice;
3. switches its job's onAllTasksComplete to terminatejob, so the run ends when its tasks
   do and the schedule's next run is not blocked by this one. (The job starts with
   noaction: a job whose tasks are not in yet would otherwise end at once.)

The task itself has killJobOnCompletion false: the job outlives the manager. Standard
library only (it runs on the pool's nodes, with their python3); it never prints the token.
Usage: python3 jobmanager.py tasks.json
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

API_VERSION = "2025-06-01.21.0"
CHUNK = 100  # AddTaskCollection takes at most 100 tasks
MAX_BYTES = 900_000  # and less than 1 MB
ATTEMPTS = 8
RUN_TOKENS = ("${AZ_BATCH_JOB_ID}", "$AZ_BATCH_JOB_ID")
RETRIED = frozenset({408, 429, 500, 502, 503, 504})
PAUSE = 0.5  # the first retry's wait in seconds, doubled on each next one


class Failed(Exception):
    """A request Batch refused for good, or that kept failing."""


def substitute(value: Any, job_id: str) -> Any:
    """`value` with the run's job id in place of $AZ_BATCH_JOB_ID in every string."""
    if isinstance(value, str):
        for token in RUN_TOKENS:
            value = value.replace(token, job_id)
        return value
    if isinstance(value, list):
        return [substitute(v, job_id) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, job_id) for k, v in value.items()}
    return value


def chunks(bodies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """At most CHUNK tasks and MAX_BYTES per request."""
    out: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    size = 20
    for b in bodies:
        n = len(json.dumps(b)) + 1
        if chunk and (len(chunk) >= CHUNK or size + n > MAX_BYTES):
            out.append(chunk)
            chunk, size = [], 20
        chunk.append(b)
        size += n
    if chunk:
        out.append(chunk)
    return out


class Batch:
    """The few Batch REST calls the manager makes, with its job's token."""

    def __init__(self, account_url: str, token: str, job_id: str) -> None:
        self.base = account_url.rstrip("/")
        self.token = token
        self.job_id = job_id
        self.pause = PAUSE
        self.job_path = "/jobs/" + urllib.parse.quote(job_id, safe="")

    def call(self, method: str, path: str, body: Any) -> Any:
        """One request, retried on 5xx, 429 and network errors; the answer's JSON."""
        url = f"{self.base}{path}?api-version={API_VERSION}"
        data = json.dumps(body).encode()
        delay = self.pause
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(
                url,
                data=data,
                method=method,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json; odata=minimalmetadata",
                    "Accept": "application/json",
                },
            )
            wait = delay
            try:
                with urllib.request.urlopen(request, timeout=60) as resp:
                    text = resp.read()
                    return json.loads(text) if text.strip() else {}
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                if exc.code not in RETRIED or attempt == ATTEMPTS - 1:
                    raise Failed(f"{method} {path}: HTTP {exc.code}: {detail}") from None
                after = exc.headers.get("Retry-After") if exc.headers else None
                if after and after.strip().isdigit():
                    wait = max(wait, float(after))
            except (urllib.error.URLError, OSError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise Failed(f"{method} {path}: {exc}") from None
            time.sleep(min(wait, 30.0))
            delay *= 2
        raise Failed(f"{method} {path}: no answer")  # not reached

    def add(self, bodies: list[dict[str, Any]]) -> list[str]:
        """Add tasks; the ids Batch refused for good, with why."""
        failed: list[str] = []
        for chunk in chunks(bodies):
            pending = chunk
            for attempt in range(ATTEMPTS):
                answer = self.call("POST", self.job_path + "/addtaskcollection", {"value": pending})
                by_id = {b["id"]: b for b in pending}
                retry = []
                for r in answer.get("value", []):
                    status = str(r.get("status", "")).lower()
                    error = r.get("error") or {}
                    if status == "success" or error.get("code") == "TaskExists":
                        continue
                    if status == "servererror" and r.get("taskId") in by_id:
                        retry.append(by_id[r["taskId"]])
                        continue
                    message = (error.get("message") or {}).get("value") or ""
                    failed.append(f"{r.get('taskId')}: {error.get('code')}: {message}")
                if not retry:
                    break
                pending = retry
                time.sleep(min(self.pause * 2**attempt, 30.0))
            else:
                failed.extend(f"{b['id']}: server error" for b in pending)
        return failed

    def end_with_tasks(self) -> None:
        """The run's job ends when its tasks do."""
        self.call("PATCH", self.job_path, {"onAllTasksComplete": "terminatejob"})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: jobmanager.py tasks.json", file=sys.stderr)
        return 2
    env = os.environ
    missing = [
        name
        for name in ("AZ_BATCH_AUTHENTICATION_TOKEN", "AZ_BATCH_ACCOUNT_URL", "AZ_BATCH_JOB_ID")
        if not env.get(name)
    ]
    if missing:
        print(f"bspec job manager: {', '.join(missing)} not set", file=sys.stderr)
        return 2
    job_id = env["AZ_BATCH_JOB_ID"]
    with open(argv[1], encoding="utf-8") as fh:
        collection = json.load(fh)
    batch = Batch(env["AZ_BATCH_ACCOUNT_URL"], env["AZ_BATCH_AUTHENTICATION_TOKEN"], job_id)
    failed: list[str] = []
    added = 0
    try:
        for wave in collection.get("waves", []):
            bodies = substitute(wave, job_id)
            failed.extend(batch.add(bodies))
            added += len(bodies)
        print(f"bspec job manager: {added - len(failed)} of {added} tasks in job {job_id}")
    except Failed as exc:
        failed.append(str(exc))
    try:
        batch.end_with_tasks()  # even after a failure: a run left open blocks the next ones
    except Failed as exc:
        failed.append(str(exc))
    for line in failed[:20]:
        print(f"bspec job manager: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
