"""`lakejob-oss fetch` reading Azure Blob (blob:// paths, render.packages's form of wasb:// and
abfs://), run as a subprocess against a real Blob service on loopback: Azurite, Microsoft's
emulator (hack/azurite.py, from npm). No control plane: the in-pod path is
test_packages_real_node.py's Livy example.

A file and a folder are copied; a missing blob fails with one line naming it and the service's
reason (BlobNotFound); a wrong key is refused by the service; the key is never printed.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack"))
import azurite  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
TOOL = Path(sys.executable).parent / "lakejob-oss"
WRONG_KEY = "d3Jvbmcta2V5LWRvLW5vdC1wcmludA=="


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from tests.e2e.objectstore import _free_port

    log = Path(tempfile.gettempdir()) / "lakejob-azurite-unit.log"
    proc, url = azurite.start("127.0.0.1", _free_port("127.0.0.1"), log)
    yield url
    azurite.stop(proc)


@pytest.fixture(scope="module")
def container(endpoint: str) -> Any:
    from azure.storage.blob import ContainerClient

    c = ContainerClient(endpoint.replace("{account}", azurite.ACCOUNT), "jobs",
                        credential={"account_name": azurite.ACCOUNT, "account_key": azurite.ACCOUNT_KEY})
    c.create_container()
    for name, body in (("app/sample.jar", b"jar"), ("conf/a.xml", b"<a/>"), ("conf/sub/b.xml", b"<b/>")):
        c.upload_blob(name, body)
    return c


def fetch(endpoint: str, key: str, *maps: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{TOOL.parent}:/usr/bin:/bin", "BLOB_ENDPOINT": endpoint, "BLOB_ACCOUNT_KEY": key}
    args = [a for m in maps for a in ("--map", m)]
    r = subprocess.run([str(TOOL), "fetch", *args], env=env, capture_output=True, text=True, timeout=120)
    assert key not in r.stdout + r.stderr
    return r


def test_a_blob_and_a_folder_of_blobs_are_copied(endpoint: str, container: Any, tmp_path: Path) -> None:
    src = f"blob://jobs@{azurite.ACCOUNT}"
    r = fetch(endpoint, azurite.ACCOUNT_KEY, f"{src}/app/sample.jar={tmp_path}/p/sample.jar",
              f"{src}/conf/={tmp_path}/conf")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "sample.jar").read_bytes() == b"jar"
    assert (tmp_path / "conf" / "a.xml").read_bytes() == b"<a/>"
    assert (tmp_path / "conf" / "sub" / "b.xml").read_bytes() == b"<b/>"


def test_a_missing_blob_fails_naming_it_and_the_reason(endpoint: str, container: Any, tmp_path: Path) -> None:
    r = fetch(endpoint, azurite.ACCOUNT_KEY, f"blob://jobs@{azurite.ACCOUNT}/app/absent.jar={tmp_path}/x.jar")
    assert r.returncode == 1
    assert r.stderr.startswith(f"lakejob-oss: fetch failed: blob://jobs@{azurite.ACCOUNT}/app/absent.jar: BlobNotFound")
    assert not list(tmp_path.iterdir())  # no partial file


def test_a_wrong_key_is_refused_by_the_service(endpoint: str, container: Any, tmp_path: Path) -> None:
    r = fetch(endpoint, WRONG_KEY, f"blob://jobs@{azurite.ACCOUNT}/app/sample.jar={tmp_path}/x.jar")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"lakejob-oss: fetch failed: blob://jobs@{azurite.ACCOUNT}/app/sample.jar: "
                               "AuthorizationFailure"), r.stderr


def test_a_blob_path_without_an_account_is_refused_before_any_transfer(endpoint: str, tmp_path: Path) -> None:
    r = fetch(endpoint, azurite.ACCOUNT_KEY, f"blob://jobs/app/sample.jar={tmp_path}/x.jar")
    assert r.returncode == 2 and "expected blob://CONTAINER@ACCOUNT/KEY" in r.stderr
