"""The node agent: run one task (or start task) in its folder on a simulated node.

What a Batch node agent does on Linux, for one task: download the resource files over
HTTP from their SAS URLs, run the command line split into words like a POSIX shell
splits them (shlex) with no shell in between, in its own session and process group,
with stdout.txt and stderr.txt in the task folder, kill the whole group when
maxWallClockTime passes (`expire()`, called from the service clock), then upload the
output files that match each pattern and upload condition to their container SAS URLs.
Task-level failures never raise: they become an `Outcome` with Batch's failure codes, which
the scheduler records on the task.

Nothing here writes a SAS signature to a log or a file: URLs pass through `redact`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import glob
import io
import logging
import os
import re
import shlex
import signal
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from bspec.common import proctree

from . import processes as procs
from .containers import ContainerRun

log = logging.getLogger("bspec.localbatch.agent")

DEFAULT_FILE_MODE = 0o770  # what Batch applies on Linux when fileMode is not given
BLOCK_SIZE = 4 * 1024 * 1024  # files above this go up in blocks
STORAGE_VERSION = "2021-12-02"
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL on kill()
RETRY_WAITS = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0)  # ~20 s: outlast a storage restart
UPLOAD_ATTEMPTS = len(RETRY_WAITS) + 1
# A storage endpoint that stops answering fails the task instead of hanging it forever.
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
_WILDCARD = re.compile(r"[*?\[]")
_SIG = re.compile(r"(?i)(sig=)[^&\s'\"]+")
_ENV_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def redact(text: str) -> str:
    """Hide SAS signatures (`sig=...`) in anything headed for a log or a file."""
    return _SIG.sub(r"\1REDACTED", text)


@dataclass(frozen=True)
class ResourceFile:
    """Batch's ResourceFile, already resolved by the scheduler."""

    http_url: str | None = None
    storage_container_url: str | None = None
    blob_prefix: str | None = None
    file_path: str | None = None  # relative to the working dir (file or, for containers, a folder)
    file_mode: str | None = None  # octal string, e.g. "0755"


@dataclass(frozen=True)
class OutputFile:
    file_pattern: str  # relative to the working dir; *, **, ../std*.txt
    container_url: str  # container SAS URL
    path: str | None = None  # blob name (single file) or virtual dir prefix
    upload_condition: str = "tasksuccess"  # tasksuccess | taskfailure | taskcompletion


@dataclass(frozen=True)
class Execution:
    command_line: str
    task_dir: Path  # AZ_BATCH_TASK_DIR; stdout.txt and stderr.txt land here
    working_dir: Path  # AZ_BATCH_TASK_WORKING_DIR (task_dir / "wd")
    environment: Mapping[str, str]  # every AZ_BATCH_* plus the user's settings
    resource_files: tuple[ResourceFile, ...] = ()
    output_files: tuple[OutputFile, ...] = ()
    # seconds of real time; the service leaves it None and calls expire() from its clock
    max_wall_clock_time: float | None = None
    container: ContainerRun | None = None  # run through podman, not on the host
    refusal: tuple[str, str] | None = None  # (code, message): the task cannot run here


@dataclass(frozen=True)
class Outcome:
    result: str  # "success" | "failure"
    exit_code: int | None  # None when no process ran or it was killed before exiting
    failure_info: dict[str, Any] | None  # Batch's TaskFailureInfo JSON
    start_time: datetime | None  # process start (UTC)
    end_time: datetime
    stage: str  # "resourcefiles" | "process" | "timeout" | "killed" | "outputfiles" | "done"


def failure_info(
    code: str, message: str, category: str = "usererror", **details: str
) -> dict[str, Any]:
    """Batch's TaskFailureInfo: category, code, message and name/value details."""
    pairs = [{"name": "Message", "value": message}]
    pairs += [{"name": k, "value": redact(v)} for k, v in details.items()]
    return {"category": category, "code": code, "message": message, "details": pairs}


class _StepFailed(Exception):
    """A resource file or upload step failed; carries the TaskFailureInfo to record."""

    def __init__(self, info: dict[str, Any], retryable: bool = False) -> None:
        super().__init__(info["message"])
        self.info = info
        self.retryable = retryable  # a server error or a dropped connection: worth another try


def _now() -> datetime:
    return datetime.now(UTC)


def _base_environment() -> dict[str, str]:
    """The minimal environment every task starts from, taken from the service's own."""
    env = {"PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"}
    for name in ("HOME", "LANG", "TMPDIR"):
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Expand $VAR and ${VAR} as Batch does in output file patterns on Linux."""
    return _ENV_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def _inside(base: Path, relative: str | None) -> Path | None:
    """BASE/RELATIVE, or None when RELATIVE is absolute or breaks out of BASE with '..'."""
    if not relative:
        return base
    if os.path.isabs(relative):
        return None
    target = Path(os.path.normpath(base / relative))
    if target != base and base not in target.parents:
        return None
    return target


def _blob_url(container_url: str, blob_name: str, extra_query: str = "") -> str:
    """The URL of BLOB_NAME inside a container SAS URL, keeping the SAS query."""
    parts = urllib.parse.urlsplit(container_url)
    path = parts.path.rstrip("/") + "/" + urllib.parse.quote(blob_name, safe="/~")
    query = "&".join(q for q in (parts.query, extra_query) if q)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _storage_version(url: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return query.get("sv", [STORAGE_VERSION])[0]


def match_output_files(
    pattern: str, working_dir: Path, env: Mapping[str, str]
) -> tuple[list[tuple[Path, str]], bool]:
    """Files an output file pattern matches, each with its name relative to the pattern's
    fixed part; and whether the pattern had wildcards. `*` stays within one folder, `**`
    spans folders, names starting with "." only match when the pattern says so."""
    expanded = _expand(pattern, env)
    full = os.path.normpath(expanded if os.path.isabs(expanded) else working_dir / expanded)
    segments = full.split("/")
    first = next((i for i, s in enumerate(segments) if _WILDCARD.search(s)), None)
    if first is None:
        path = Path(full)
        return ([(path, path.name)] if path.is_file() else []), False
    base = Path("/".join(segments[:first]) or "/")
    rest = "/".join(segments[first:])
    if not base.is_dir():
        return [], True
    names = glob.glob(rest, root_dir=base, recursive=True)
    return [(base / n, n) for n in sorted(names) if (base / n).is_file()], True


class TaskRun:
    """One run of one task on one node; `run()` once, `kill()` any time from the loop."""

    def __init__(
        self,
        execution: Execution,
        http: aiohttp.ClientSession,
        processes: asyncio.Semaphore,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.execution = execution
        self.http = http
        self.processes = processes
        self.clock = clock  # the service's clock: start and end times come from it
        self.pid: int | None = None
        self._killed = asyncio.Event()
        self._expired = asyncio.Event()
        self._exited = False
        self._container_name: str | None = None

    # ------------------------------------------------------------------ public

    def kill(self) -> None:
        """Kill the whole process group (SIGTERM, SIGKILL after a short grace); idempotent.

        Before the process starts, the run stops where it is; run() returns stage "killed".
        """
        if self._killed.is_set():
            return
        self._killed.set()
        self._remove_container()
        pid = self.pid
        if pid is not None and not self._exited:
            procs.signal_group(pid, signal.SIGTERM)
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(
                    KILL_GRACE, procs.signal_group, pid, signal.SIGKILL
                )

    def _remove_container(self, ended: bool = False) -> None:
        """A container task stopped from outside: `podman rm -f` its container, in a thread
        (podman forwards SIGTERM, but a SIGKILL of podman would leave the container)."""
        c, name = self.execution.container, self._container_name
        if c is not None and name is not None and (ended or not self._exited):
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().run_in_executor(None, c.remove, name)

    def expire(self) -> None:
        """The task's maxWallClockTime passed (on the service clock): kill the process group
        at once; run() returns stage "timeout". Nothing happens before the process starts."""
        self._expired.set()

    async def run(self, on_running: Callable[[int], Awaitable[None]] | None = None) -> Outcome:
        """Resource files, then the process (holding a `processes` slot), then output files."""
        ex = self.execution
        if ex.refusal is not None:
            return self._outcome("failure", None, failure_info(*ex.refusal), None, "resourcefiles")
        if ex.resource_files:
            # The folders first, for the downloads; otherwise the thread that starts the
            # process makes them (a mkdir can take a millisecond: never on the loop).
            unmade = await self._make_dirs()
            if unmade is not None:
                return unmade
            try:
                done = await self._unless_killed(self._download_all())
            except _StepFailed as exc:
                return self._outcome("failure", None, exc.info, None, "resourcefiles")
            if not done:
                return self._killed_outcome(None)
        elif self._killed.is_set():
            return self._killed_outcome(None)
        if ex.container is not None:  # its image present first (pulled if need be)
            failed = await asyncio.to_thread(ex.container.prepare)
            if failed is not None:
                return self._outcome("failure", None, failure_info(*failed), None, "resourcefiles")

        async with self.processes:
            if self._killed.is_set():
                return self._killed_outcome(None)
            started = await self._spawn(make_dirs=not ex.resource_files)
            if isinstance(started, Outcome):
                return started
            proc, start_time = started
            watch = procs.ExitWatch(proc)
            try:
                if on_running is not None:
                    await on_running(proc.pid)
                exit_code, stage = await self._wait(proc, watch.exited)
            except BaseException:
                # Cancelled (the service stopping) or on_running failed: leave no process, and
                # reap it so nothing is left a zombie or warns when collected.
                procs.signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(watch.exited), KILL_GRACE)
                watch.release()
                raise
            finally:
                self._exited = True

        if stage == "killed":
            return self._killed_outcome(start_time)
        if stage == "timeout":
            self._remove_container(ended=True)
        failed = ex.container.failure(exit_code, ex.task_dir) if ex.container else None
        if failed is not None and stage == "process":  # podman's own exit 125
            return self._outcome("failure", exit_code, failure_info(*failed), start_time, stage)
        result = "success" if stage == "process" and exit_code == 0 else "failure"
        upload_error: dict[str, Any] | None = None
        if ex.output_files:
            found: list[dict[str, Any] | None] = []

            async def uploads() -> None:
                found.append(await self._upload_all(result))

            if not await self._unless_killed(uploads()):  # kill() during uploads ends them too
                return self._killed_outcome(start_time)
            upload_error = found[0]
        if stage == "timeout":
            return self._outcome(
                "failure",
                None,
                failure_info(
                    "MaxWallClockTimeExpiry",
                    "The task ran longer than its maxWallClockTime constraint allows, and was killed",
                ),
                start_time,
                "timeout",
            )
        if result == "failure":
            return self._outcome(
                "failure",
                exit_code,
                failure_info(
                    "FailureExitCode",
                    "The task exited with an exit code representing a failure",
                ),
                start_time,
                "process",
            )
        if upload_error is not None:
            return self._outcome("failure", exit_code, upload_error, start_time, "outputfiles")
        return self._outcome("success", exit_code, None, start_time, "done")

    # ------------------------------------------------------------------ process

    async def _make_dirs(self) -> Outcome | None:
        """Create the task's folders in a worker thread; the failure outcome, or None."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                procs.spawner(), procs.make_dirs, self.execution
            )
        except OSError as exc:
            return self._dirs_failed(exc)
        return None

    def _dirs_failed(self, exc: OSError) -> Outcome:
        info = failure_info(
            "ResourceDirectoryCreateFailed", f"Cannot create the task's folder: {exc.strerror}"
        )
        return self._outcome("failure", None, info, None, "resourcefiles")

    async def _spawn(self, make_dirs: bool) -> tuple[subprocess.Popen[bytes], datetime] | Outcome:
        """Start the process from a worker thread, so the fork and exec never stall the loop;
        MAKE_DIRS: that thread creates the task's folders first."""
        ex = self.execution
        try:
            argv = shlex.split(ex.command_line)
        except ValueError as exc:
            info = failure_info(
                "CommandLaunchFailed", f"The command line cannot be split into words: {exc}"
            )
            argv = []
        else:
            info = failure_info("CommandLaunchFailed", "The command line is empty")
        env = _base_environment()
        env.update(ex.environment)
        if ex.container is not None and (argv or not ex.command_line.strip()):
            try:  # the task's `podman run` (no command line: the image's ENTRYPOINT)
                argv, env, self._container_name = ex.container.command(ex)
            except ValueError as exc:
                info = failure_info(ex.container.invalid, str(exc))
                argv = []
        if not argv:
            unmade = await self._make_dirs() if make_dirs else None
            return unmade or self._outcome("failure", None, info, None, "process")
        loop = asyncio.get_running_loop()
        starting = loop.run_in_executor(procs.spawner(), procs.popen, argv, ex, env, make_dirs)
        try:
            proc = await asyncio.shield(starting)
        except procs.DirsUnmade as exc:
            return self._dirs_failed(exc.error)
        except FileNotFoundError:
            info = failure_info(
                "CommandProgramNotFound",
                f"The program {argv[0]!r} of the command line was not found",
            )
        except PermissionError:
            info = failure_info(
                "CommandLaunchFailed",
                f"The program {argv[0]!r} of the command line is not executable",
            )
        except OSError as exc:
            info = failure_info("CommandLaunchFailed", f"The task could not start: {exc.strerror}")
        except procs.OutputUnwritable as exc:
            info = failure_info(
                "CommandLaunchFailed",
                f"Cannot create the task's stdout.txt or stderr.txt: {exc.error.strerror}",
            )
        except asyncio.CancelledError:
            # The start goes on in its thread: whatever it starts is killed and reaped.
            starting.add_done_callback(procs.abandon)
            raise
        else:
            self.pid = proc.pid
            if self._killed.is_set():  # kill() raced the start
                procs.signal_group(proc.pid, signal.SIGKILL)
                self._remove_container(ended=True)
            return proc, self.clock()
        return self._outcome("failure", None, info, None, "process")

    async def _wait(
        self, proc: subprocess.Popen[bytes], waiter: asyncio.Future[int]
    ) -> tuple[int | None, str]:
        """Wait for exit (WAITER), kill() or the wall clock; returns (exit code, stage)."""
        limit = self.execution.max_wall_clock_time
        killer = asyncio.ensure_future(self._killed.wait())
        expirer = asyncio.ensure_future(self._expired.wait())
        either: set[asyncio.Future[Any]] = {waiter, killer, expirer}
        try:
            done, _ = await asyncio.wait(either, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            killer.cancel()
            expirer.cancel()
        if waiter in done and not self._killed.is_set():
            return waiter.result(), "process"
        if self._killed.is_set():  # kill() wins even when the exit was seen first
            await asyncio.shield(waiter)  # kill() signalled the group; SIGKILL follows the grace
            return None, "killed"
        procs.signal_group(proc.pid, signal.SIGKILL)
        await asyncio.shield(waiter)
        return None, "timeout"

    # ------------------------------------------------------------------ resource files

    async def _unless_killed(self, coro: Awaitable[None]) -> bool:
        """Run CORO unless kill() comes first; False when it did."""
        work = asyncio.ensure_future(coro)
        killer = asyncio.ensure_future(self._killed.wait())
        try:
            done, _ = await asyncio.wait({work, killer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            killer.cancel()
        if work in done:
            work.result()
            return True
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, _StepFailed):
            await work
        return False

    async def _download_all(self) -> None:
        for rf in self.execution.resource_files:
            if rf.http_url:
                await self._download_http(rf)
            elif rf.storage_container_url:
                await self._download_container(rf)

    def _mode(self, rf: ResourceFile) -> int:
        if rf.file_mode:
            try:
                return int(rf.file_mode, 8)
            except ValueError:
                pass
        return DEFAULT_FILE_MODE

    async def _download_http(self, rf: ResourceFile) -> None:
        assert rf.http_url is not None
        name = rf.file_path or urllib.parse.unquote(
            urllib.parse.urlsplit(rf.http_url).path.rsplit("/", 1)[-1]
        )
        target = _inside(self.execution.working_dir, name)
        if target is None or target == self.execution.working_dir:
            raise _StepFailed(
                failure_info(
                    "ResourceFileCreateFailed",
                    f"The resource file path {name!r} is outside the task's working directory",
                )
            )
        await self._fetch(rf.http_url, target, self._mode(rf))

    async def _download_container(self, rf: ResourceFile) -> None:
        assert rf.storage_container_url is not None
        folder = _inside(self.execution.working_dir, rf.file_path)
        if folder is None:
            raise _StepFailed(
                failure_info(
                    "ResourceFileCreateFailed",
                    f"The resource file path {rf.file_path!r} is outside the task's working directory",
                )
            )
        for blob in await self._list_blobs(rf.storage_container_url, rf.blob_prefix or ""):
            target = _inside(folder, blob)
            if target is None or target == folder:
                continue
            await self._fetch(_blob_url(rf.storage_container_url, blob), target, self._mode(rf))

    async def _list_blobs(self, container_url: str, prefix: str) -> list[str]:
        names: list[str] = []
        marker = ""
        while True:
            query = "restype=container&comp=list&" + urllib.parse.urlencode(
                {"prefix": prefix, **({"marker": marker} if marker else {})}
            )
            url = _with_query(container_url, query)
            try:
                async with self.http.get(
                    url, headers={"x-ms-version": _storage_version(url)}, timeout=HTTP_TIMEOUT
                ) as resp:
                    body = await resp.read()
                    if resp.status == 403:
                        raise _StepFailed(
                            failure_info(
                                "ResourceContainerAccessDenied",
                                "Access to a resource file container was denied",
                                Url=redact(container_url),
                            )
                        )
                    if resp.status >= 300:
                        raise _StepFailed(
                            failure_info(
                                "ResourceContainerListMiscError",
                                f"Listing a resource file container failed with HTTP {resp.status}",
                                Url=redact(container_url),
                            )
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _StepFailed(
                    failure_info(
                        "ResourceContainerListMiscError",
                        f"Listing a resource file container failed: {exc}",
                        Url=redact(container_url),
                    )
                ) from exc
            try:
                root = ET.fromstring(body)
            except ET.ParseError as exc:
                raise _StepFailed(
                    failure_info(
                        "ResourceContainerListMiscError",
                        "Listing a resource file container answered something other than XML",
                        Url=redact(container_url),
                    )
                ) from exc
            names += [el.text or "" for el in root.iterfind("./Blobs/Blob/Name")]
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return [n for n in names if n and not n.endswith("/")]

    async def _fetch(self, url: str, target: Path, mode: int) -> None:
        """Download URL to TARGET, trying again after server errors and dropped connections."""
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                await self._fetch_once(url, target, mode)
                return
            except _StepFailed as exc:
                if not exc.retryable or attempt == UPLOAD_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(RETRY_WAITS[attempt])

    async def _fetch_once(self, url: str, target: Path, mode: int) -> None:
        safe = redact(url)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _StepFailed(
                failure_info(
                    "ResourceDirectoryCreateFailed",
                    f"Cannot create {target.parent}: {exc.strerror}",
                )
            ) from exc
        try:
            async with self.http.get(
                url, headers={"x-ms-version": _storage_version(url)}, timeout=HTTP_TIMEOUT
            ) as resp:
                if resp.status == 404:
                    raise _StepFailed(
                        failure_info("BlobNotFound", "A resource file was not found", Url=safe)
                    )
                if resp.status == 403:
                    raise _StepFailed(
                        failure_info(
                            "BlobAccessDenied",
                            "Access to a resource file was denied",
                            Url=safe,
                        )
                    )
                if resp.status >= 300:
                    raise _StepFailed(
                        failure_info(
                            "BlobDownloadMiscError",
                            f"Downloading a resource file failed with HTTP {resp.status}",
                            Url=safe,
                        ),
                        retryable=resp.status >= 500 or resp.status == 429,
                    )
                try:
                    with open(target, "wb") as fh:
                        async for chunk in resp.content.iter_chunked(1 << 20):
                            fh.write(chunk)
                    os.chmod(target, mode)
                except OSError as exc:
                    raise _StepFailed(
                        failure_info(
                            "ResourceFileWriteFailed",
                            f"Cannot write {target.name}: {exc.strerror}",
                        )
                    ) from exc
        except TimeoutError as exc:
            raise _StepFailed(
                failure_info(
                    "BlobDownloadTimedOut",
                    "Downloading a resource file timed out",
                    Url=safe,
                ),
                retryable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise _StepFailed(
                failure_info(
                    "BlobDownloadMiscError",
                    f"Downloading a resource file failed: {redact(str(exc))}",
                    Url=safe,
                ),
                retryable=True,
            ) from exc

    # ------------------------------------------------------------------ output files

    async def _upload_all(self, result: str) -> dict[str, Any] | None:
        """Upload every output file whose condition holds; the first failure, or None."""
        ex = self.execution
        env = {**_base_environment(), **ex.environment}
        wanted = {
            "tasksuccess": result == "success",
            "taskfailure": result == "failure",
            "taskcompletion": True,
        }
        first_error: dict[str, Any] | None = None
        out_lines: list[str] = []
        err_lines: list[str] = []
        for spec in ex.output_files:
            if not wanted.get(spec.upload_condition.lower(), False):
                continue
            files, wildcard = match_output_files(spec.file_pattern, ex.working_dir, env)
            for path, relative in files:
                if wildcard:
                    name = f"{spec.path.rstrip('/')}/{relative}" if spec.path else relative
                else:
                    name = spec.path or relative
                try:
                    try:
                        await self._upload(path, spec.container_url, name)
                    except OSError as exc:  # the file went away or cannot be read
                        raise _StepFailed(
                            failure_info(
                                "FileUploadMiscError",
                                f"Reading an output file failed: {exc.strerror}",
                            )
                        ) from exc
                    out_lines.append(
                        f"uploaded {path} to {redact(_blob_url(spec.container_url, name))}"
                    )
                except _StepFailed as exc:
                    err_lines.append(f"{path}: {exc.info['message']}")
                    log.warning("output file upload failed: %s: %s", path, exc.info["message"])
                    first_error = first_error or exc.info
        if out_lines or err_lines:
            with contextlib.suppress(OSError):
                (ex.task_dir / "fileuploadout.txt").write_text(
                    "".join(f"{line}\n" for line in out_lines)
                )
                (ex.task_dir / "fileuploaderr.txt").write_text(
                    "".join(f"{line}\n" for line in err_lines)
                )
        return first_error

    async def _upload(self, path: Path, container_url: str, name: str) -> None:
        size = path.stat().st_size
        url = _blob_url(container_url, name)
        headers = {
            "x-ms-version": _storage_version(url),
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
        }
        if size <= BLOCK_SIZE:
            await self._put(url, headers, path.read_bytes(), container_url)
            return
        ids: list[str] = []
        with open(path, "rb") as fh:
            index = 0
            while chunk := fh.read(BLOCK_SIZE):
                block_id = base64.b64encode(f"{index:08d}".encode()).decode()
                query = urllib.parse.urlencode({"comp": "block", "blockid": block_id})
                await self._put(
                    _blob_url(container_url, name, query),
                    {"x-ms-version": headers["x-ms-version"]},
                    chunk,
                    container_url,
                )
                ids.append(block_id)
                index += 1
        body = (
            '<?xml version="1.0" encoding="utf-8"?><BlockList>'
            + "".join(f"<Latest>{i}</Latest>" for i in ids)
            + "</BlockList>"
        ).encode()
        await self._put(
            _blob_url(container_url, name, "comp=blocklist"),
            {
                "x-ms-version": headers["x-ms-version"],
                "x-ms-blob-content-type": "application/octet-stream",
            },
            body,
            container_url,
        )

    async def _put(
        self, url: str, headers: dict[str, str], body: bytes, container_url: str
    ) -> None:
        safe = redact(container_url)
        for attempt in range(UPLOAD_ATTEMPTS):
            try:
                async with self.http.put(
                    url, headers=headers, data=io.BytesIO(body), timeout=HTTP_TIMEOUT
                ) as resp:
                    await resp.read()
                    if resp.status < 300:
                        return
                    if resp.status == 403:
                        raise _StepFailed(
                            failure_info(
                                "FileUploadAccessDenied",
                                "Access to an output file container was denied",
                                Url=safe,
                            )
                        )
                    if resp.status == 404:
                        raise _StepFailed(
                            failure_info(
                                "FileUploadContainerNotFound",
                                "An output file container does not exist",
                                Url=safe,
                            )
                        )
                    if (resp.status < 500 and resp.status != 429) or attempt == UPLOAD_ATTEMPTS - 1:
                        raise _StepFailed(
                            failure_info(
                                "FileUploadMiscError",
                                f"Uploading an output file failed with HTTP {resp.status}",
                                Url=safe,
                            )
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == UPLOAD_ATTEMPTS - 1:
                    raise _StepFailed(
                        failure_info(
                            "FileUploadMiscError",
                            f"Uploading an output file failed: {redact(str(exc))}",
                            Url=safe,
                        )
                    ) from exc
            await asyncio.sleep(RETRY_WAITS[attempt])

    # ------------------------------------------------------------------ outcomes

    def _outcome(
        self,
        result: str,
        exit_code: int | None,
        info: dict[str, Any] | None,
        start: datetime | None,
        stage: str,
    ) -> Outcome:
        return Outcome(result, exit_code, info, start, self.clock(), stage)

    def _killed_outcome(self, start: datetime | None) -> Outcome:
        return self._outcome(
            "failure",
            None,
            failure_info(
                "TaskEnded",
                "The task was ended before it completed",
                category="servererror",
            ),
            start,
            "killed",
        )


def _with_query(url: str, query: str) -> str:
    parts = urllib.parse.urlsplit(url)
    merged = "&".join(q for q in (parts.query, query) if q)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, merged, ""))


def kill_node_processes(root: Path) -> list[int]:
    """Kill every process still running for the node(s) under ROOT (one node's folder or a
    pool's): what tasks and start tasks left behind in the background. Call it when a node
    or a pool goes away; returns the PIDs it signalled."""
    return proctree.kill_under(root)
