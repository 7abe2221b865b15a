"""Blob Storage through `azure-storage-blob`: containers, uploaded blobs, SAS, the lock blob.

One list call per container reads every blob's Content-MD5 and metadata; uploads set
Content-MD5 so the next plan compares by it. SAS tokens are least privilege and made
with the account key, or a user-delegation key under Entra ID. SDK exceptions leave this
module as bspec errors through the boundary `errors.sdk_errors`.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.storage.blob import (
    BlobLeaseClient,
    BlobServiceClient,
    ContentSettings,
    generate_blob_sas,
    generate_container_sas,
)
from bspec.errors import ConflictError, NotFoundError, ServiceError
from bspec.kinds import blob as blob_kind
from bspec.kinds import container as container_kind
from bspec.model import STACK_CONTAINER_METADATA, UPLOADED_BLOB_METADATA, Resource
from bspec.providers.errors import sdk_errors

DEFAULT_SAS_TTL = timedelta(days=7)


@dataclass
class StorageProvider:
    """All of bspec's Blob Storage calls for one stack."""

    client: BlobServiceClient
    stack: str
    account_key: str | None = None  # shared key; None means Entra ID (user-delegation SAS)
    workers: int = 8
    _delegation: Any = field(default=None, repr=False)
    _delegation_expiry: datetime | None = field(default=None, repr=False)

    @property
    def account_url(self) -> str:
        return str(self.client.url).rstrip("/")

    @property
    def account_name(self) -> str:
        return str(self.client.account_name)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        with sdk_errors("storage", what):
            return fn(*args, **kw)

    # ------------------------------------------------------------------ reads
    def read_containers(self, keys_by_name: dict[str, str]) -> list[Resource]:
        """The containers the spec names, and every other one the stack owns."""
        out = []
        items = self._call(
            "list containers", lambda: list(self.client.list_containers(include_metadata=True))
        )
        for c in items:
            owner = (c.metadata or {}).get(STACK_CONTAINER_METADATA)
            if c.name not in keys_by_name and owner != self.stack:
                continue
            key = keys_by_name.get(c.name, c.name)
            out.append(
                container_kind.from_listing(key, c.name, owner, bool(getattr(c, "deleted", False)))
            )
        return out

    def read_blobs(self, container: str, key: str) -> list[Resource]:
        cc = self.client.get_container_client(container)
        blobs = self._call(
            f"list blobs in {container}", lambda: list(cc.list_blobs(include=["metadata"]))
        )
        out = []
        for b in blobs:
            md5 = b.content_settings.content_md5 if b.content_settings else None
            owner = (b.metadata or {}).get(UPLOADED_BLOB_METADATA)
            out.append(
                blob_kind.from_listing(
                    key, container, b.name, bytes(md5).hex() if md5 else None, owner, b.size
                )
            )
        return out

    # ------------------------------------------------------------------ writes
    def ensure_container(self, name: str) -> None:
        """Create the container tagged with the stack, or tag the existing one (adopt)."""
        cc = self.client.get_container_client(name)
        meta = {STACK_CONTAINER_METADATA: self.stack}
        deadline = time.monotonic() + 120
        while True:
            try:
                self._call(f"create container {name}", cc.create_container, metadata=meta)
                return
            except ConflictError as err:
                if err.status != 409:
                    raise
                if err.service_code == "ContainerBeingDeleted" and time.monotonic() < deadline:
                    time.sleep(1.0)
                    continue
                self._call(f"tag container {name}", cc.set_container_metadata, meta)
                return

    def delete_container(self, name: str) -> None:
        try:
            self._call(f"delete container {name}", self.client.delete_container, name)
        except NotFoundError:
            return

    def upload(self, container: str, name: str, path: str, md5_hex: str) -> int:
        """Upload one file with Content-MD5 and the stack's metadata; returns bytes sent."""
        bc = self.client.get_blob_client(container, name)
        with open(path, "rb") as fh:
            data = fh.read()
        settings = ContentSettings(content_md5=bytearray(bytes.fromhex(md5_hex)))
        self._call(
            f"upload {container}/{name}",
            bc.upload_blob,
            data,
            overwrite=True,
            content_settings=settings,
            metadata={UPLOADED_BLOB_METADATA: self.stack},
            max_concurrency=1,
        )
        return len(data)

    def upload_many(
        self,
        items: Sequence[tuple[str, str, str, str]],
        progress: Callable[[int], None] | None = None,
        parallel: bool = True,
    ) -> int:
        """Upload (container, name, path, md5) items, several at once; bytes sent."""
        total = 0

        def one(item: tuple[str, str, str, str]) -> int:
            n = self.upload(*item)
            if progress:
                progress(n)
            return n

        if not parallel:
            return sum(one(i) for i in items)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for n in pool.map(one, items):
                total += n
        return total

    def delete_blobs(self, container: str, names: Iterable[str]) -> None:
        cc = self.client.get_container_client(container)

        def one(name: str) -> None:
            try:
                self._call(f"delete {container}/{name}", cc.delete_blob, name)
            except NotFoundError:
                return

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(one, list(names)))

    # ------------------------------------------------------------------ SAS
    def _user_delegation_key(self, expiry: datetime) -> Any:
        if self._delegation is None or (self._delegation_expiry or expiry) < expiry:
            start = datetime.now(UTC) - timedelta(minutes=5)
            self._delegation = self._call(
                "get user delegation key", self.client.get_user_delegation_key, start, expiry
            )
            self._delegation_expiry = expiry
        return self._delegation

    def sas_url(
        self, container: str, blob: str | None, permission: str, ttl: timedelta = DEFAULT_SAS_TTL
    ) -> str:
        """A least-privilege SAS URL for a container (`rl`, `cw`) or one blob (`r`)."""
        expiry = datetime.now(UTC) + ttl
        start = datetime.now(UTC) - timedelta(minutes=5)
        creds: dict[str, Any] = (
            {"account_key": self.account_key}
            if self.account_key
            else {"user_delegation_key": self._user_delegation_key(expiry)}
        )
        if blob is None:
            token = generate_container_sas(
                self.account_name,
                container,
                permission=permission,
                expiry=expiry,
                start=start,
                **creds,
            )
            return f"{self.account_url}/{container}?{token}"
        token = generate_blob_sas(
            self.account_name,
            container,
            blob,
            permission=permission,
            expiry=expiry,
            start=start,
            **creds,
        )
        return f"{self.account_url}/{container}/{quote(blob)}?{token}"

    # ------------------------------------------------------------------ the lock blob
    def try_lease(
        self, container: str, blob: str, holder: dict[str, str], duration: int = 60
    ) -> str | None:
        """Take a lease on the lock blob and record the holder in its metadata.

        Returns the lease id, or None when someone else holds it. Three writes when the
        lock blob exists (acquire, record, and later release)."""
        bc = self.client.get_blob_client(container, blob)
        lease = BlobLeaseClient(bc)
        for _ in range(3):
            try:
                self._call("acquire lock", lease.acquire, lease_duration=duration)
                break
            except NotFoundError:
                self.ensure_container(container)
                with contextlib.suppress(ConflictError):  # someone else created it first
                    self._call(
                        f"create lock {container}/{blob}", bc.upload_blob, b"", overwrite=False
                    )
            except ServiceError as err:
                if err.status == 409:  # leased by someone else
                    return None
                raise
        else:
            raise ServiceError(
                f"storage: cannot create the lock blob {container}/{blob}", service="storage"
            )
        self._call("record lock holder", bc.set_blob_metadata, holder, lease=lease.id)
        return str(lease.id)

    def lease_holder(self, container: str, blob: str) -> dict[str, str]:
        bc = self.client.get_blob_client(container, blob)
        try:
            props = self._call("read lock holder", bc.get_blob_properties)
        except ServiceError:
            return {}
        return dict(props.metadata or {})

    def renew_lease(self, container: str, blob: str, lease_id: str) -> None:
        bc = self.client.get_blob_client(container, blob)
        self._call("renew lock", BlobLeaseClient(bc, lease_id=lease_id).renew)

    def release_lease(self, container: str, blob: str, lease_id: str) -> None:
        bc = self.client.get_blob_client(container, blob)
        try:
            self._call("release lock", BlobLeaseClient(bc, lease_id=lease_id).release)
        except ServiceError:
            return  # else it expires by itself within 60 s

    def break_lease(self, container: str, blob: str) -> dict[str, str] | None:
        """Break the lock blob's lease at once (`bspec unlock`); returns the holder it
        recorded, or None when the blob is missing or not leased."""
        bc = self.client.get_blob_client(container, blob)
        try:
            props = self._call("read lock", bc.get_blob_properties)
        except NotFoundError:
            return None
        if str(getattr(props.lease, "state", "")).lower() not in ("leased", "breaking"):
            return None
        self._call("break lock", BlobLeaseClient(bc).break_lease, lease_break_period=0)
        return dict(props.metadata or {})

    def download(self, container: str, name: str) -> bytes:
        bc = self.client.get_blob_client(container, name)
        data: bytes = self._call(
            f"download {container}/{name}", lambda: bc.download_blob().readall()
        )
        return data

    def download_to(self, container: str, name: str, sink: Callable[[bytes], None]) -> None:
        """Stream a blob's bytes into `sink`, chunk by chunk."""
        bc = self.client.get_blob_client(container, name)
        with sdk_errors("storage", f"download {container}/{name}"):
            for chunk in bc.download_blob().chunks():
                sink(chunk)

    def list_blob_items(self, container: str, prefix: str | None = None) -> list[Any]:
        """The container's blob items (name, size, content settings, etag) under `prefix`."""
        cc = self.client.get_container_client(container)
        return list(
            self._call(
                f"list blobs in {container}",
                lambda: list(cc.list_blobs(name_starts_with=prefix or None)),
            )
        )


def md5_b64(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


__all__ = ["DEFAULT_SAS_TTL", "ServiceError", "StorageProvider", "md5_b64"]
