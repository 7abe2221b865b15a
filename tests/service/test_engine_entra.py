"""Issue 4's test 8, Entra ID half: the azure target with a bearer token (no account key)
against a local Batch service in its test mode (HTTPS with a self-signed certificate,
accepting one static bearer token). Same engine code path as shared key."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec import local as services
from engine_support import Stack, changes, writes

TOKEN = "test-token-0123456789"


def _jwt() -> str:
    """A token Azurite's OAuth mode accepts (it checks issuer, audience and lifetime, not
    the signature); the TLS Batch service is started to accept the very same string."""
    import base64

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": "https://storage.azure.com",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
    }
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


@pytest.fixture
def tls_batch(
    tmp_path: Path, tls_cert: tuple[Path, Path], request: pytest.FixtureRequest
) -> Iterator[tuple[str, Path]]:
    """A second local Batch service: HTTPS, static bearer token, its own state folder."""
    token = getattr(request, "param", TOKEN)
    home = tmp_path / "tls-home"
    home.mkdir()
    cert, key = tls_cert
    port = services.free_port()
    log = (tmp_path / "tls-batch.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bspec.localbatch",
            "--home",
            str(home),
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--bearer-token",
            token,
            "--delete-delay",
            "0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_local/health", context=context, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the TLS Batch service did not start") from None
                time.sleep(0.2)
        yield url, cert
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def test_azure_target_with_a_bearer_token_over_https(
    tls_batch: tuple[str, Path],
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> None:
    url, cert = tls_batch
    monkeypatch.setenv("AZURE_BATCH_ENDPOINT", url)
    monkeypatch.delenv("AZURE_BATCH_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AZURE_BATCH_ACCOUNT", raising=False)
    monkeypatch.setenv("BSPEC_TEST_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", local_services.storage_connection_string)
    name = unique_id("entra")
    s = Stack(tmp_path / name, name, target="azure")
    s.files = {"a.txt": "one"}
    first = s.apply()
    assert changes(first.data)[-3:] == [
        ("create", f"pool/{s.pool_id}"),
        ("create", f"job/{s.job_id}"),
        ("create", f"task/{s.job_id}/wc-a"),
    ]
    assert s.plan()[0].empty()
    assert writes(s.apply().data) == {"batch": 0, "storage": 0}
    s.destroy()
    # a wrong token is refused, as Batch refuses it
    monkeypatch.setenv("BSPEC_TEST_BEARER_TOKEN", "wrong")
    from bspec.errors import ServiceError

    with pytest.raises(ServiceError) as info:
        s.plan()
    assert info.value.status in (401, 403)


JWT = _jwt()


@pytest.fixture
def oauth_azurite(tmp_path: Path, tls_cert: tuple[Path, Path]) -> Iterator[str]:
    """A second Azurite: HTTPS and OAuth (bearer tokens), for user-delegation SAS."""
    cert, key = tls_cert
    port = services.free_port()
    command = services.azurite_command()
    data = tmp_path / "azurite-oauth"
    data.mkdir()
    log = (tmp_path / "azurite-oauth.log").open("wb")
    proc = subprocess.Popen(
        [
            *command,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(data),
            "--oauth",
            "basic",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"https://127.0.0.1:{port}/devstoreaccount1"
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}?comp=list", context=context, timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without credentials): it is up
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError("the OAuth Azurite did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


@pytest.mark.parametrize("tls_batch", [JWT], indirect=True)
def test_azure_target_entra_id_for_batch_and_storage(
    tls_batch: tuple[str, Path],
    oauth_azurite: str,
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> None:
    """No key anywhere: bearer tokens for both services, user-delegation SAS for Batch."""
    url, cert = tls_batch
    monkeypatch.setenv("AZURE_BATCH_ENDPOINT", url)
    for var in ("AZURE_BATCH_ACCESS_KEY", "AZURE_BATCH_ACCOUNT", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "devstoreaccount1")
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", oauth_azurite)
    monkeypatch.setenv("BSPEC_TEST_BEARER_TOKEN", JWT)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    name = unique_id("oauth")
    s = Stack(tmp_path / name, name, target="azure")
    s.files = {"a.txt": "one"}
    first = s.apply()
    assert first.data["outcome"]["blobsUploaded"] == 1
    assert s.plan()[0].empty()
    # the task carries a user-delegation SAS (skoid=...), never an account-key one
    from azure.batch import BatchClient
    from bspec.targets import _StaticToken

    client = BatchClient(url, _StaticToken(JWT))
    try:
        task = client.get_task(s.job_id, "wc-a")
    finally:
        client.close()
    sas = task.resource_files[0].http_url
    assert "skoid=" in sas and "sp=r&" in sas
    s.destroy()
