"""lakejob.gateway.signing verifies what the vendors' real SDKs sign, and nothing else.

Every request here is built and signed by the unmodified SDK (huaweicloudsdkcore/huaweicloudsdkdli
3.1.219, batchcompute 2.1.7) and caught at its transport, just before the bytes would leave:
requests' HTTPAdapter.send for Huawei (the PreparedRequest: final URL, headers, body), the
http.client connection for BatchCompute. No network.
"""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from lakejob.gateway.signing import SignatureError, SignedRequest, verify_batchcompute, verify_dli

AK, SK, PROJECT = "HPUAEXAMPLEAK0000001", "dli-secret-key-of-ak-1", "0123456789abcdef0123456789abcdef"
BC_AK, BC_SK = "LTAIexampleBatchAK01", "batchcompute-secret-of-ak"
PORT = 18080


def secrets(table: dict[str, str]) -> Callable[[str], str | None]:
    return table.get


# --- Huawei DLI: capture what DliClient sends --------------------------------------------------

@dataclass
class Sent:
    req: SignedRequest
    url: str
    date: datetime


@pytest.fixture
def dli_sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Sent]]:
    sent: list[Sent] = []

    def send(self: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        split = urlsplit(request.url or "")
        body = request.body or b""
        assert isinstance(body, bytes)
        # requests puts header values on the wire as latin-1: the SDK stored each as its UTF-8
        # bytes read as latin-1, so the server (aiohttp) decodes the original text back.
        headers = {k: v.encode("latin-1").decode("utf-8") if isinstance(v, str) else v.decode("utf-8")
                   for k, v in request.headers.items()}
        date = datetime.strptime(headers["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        sent.append(Sent(SignedRequest(request.method or "", split.path, split.query, headers, body),
                         request.url or "", date))
        response = requests.Response()
        response.status_code, response._content = 200, b"{}"
        response.headers["Content-Type"] = "application/json"
        response.request, response.url = request, request.url or ""
        return response

    monkeypatch.setattr(HTTPAdapter, "send", send)
    yield sent


def dli_client(derived: bool = False) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkdli.v1 import DliClient
    credentials = BasicCredentials(AK, SK, PROJECT)
    builder = DliClient.new_builder().with_credentials(credentials)
    if not derived:
        # What a user of the gateway writes: the default signer, an http endpoint on loopback.
        return builder.with_endpoint(f"http://127.0.0.1:{PORT}").build()
    # V11 (derived keys) is opt-in, and DLI's builder never names a service for it: done here the
    # way the SDK's clients for other services do, to check the gateway accepts it too.
    from huaweicloudsdkcore.region.region import Region
    credentials.with_derived_predicate(BasicCredentials.get_default_derived_predicate())
    return (builder.with_region(Region("lakejob-1", f"http://127.0.0.1:{PORT}"))
            ._with_derived_auth_service_name("dli").build())


def dli_create_batch(sent: list[Sent], **body: Any) -> Sent:
    from huaweicloudsdkdli.v1 import CreateSparkJobRequest, CreateSparkJobRequestBody
    spec = {"file": "obs://bucket/app.jar", "class_name": "com.example.Main", "queue": "q1",
            "args": ["--day", "2026-01-01"], "conf": {"spark.executor.instances": "2"}} | body
    dli_client().create_spark_job(CreateSparkJobRequest(body=CreateSparkJobRequestBody(**spec)))
    return sent[-1]


def dli_list_batches(sent: list[Sent]) -> Sent:
    from huaweicloudsdkdli.v1 import ListSparkJobsRequest
    dli_client().list_spark_jobs(ListSparkJobsRequest(
        cluster_name="q1", job_name="nightly etl&x=ü+1", size=10, start=0, state="running", order="desc"))
    return sent[-1]


def dli_show_batch(sent: list[Sent], batch_id: str) -> Sent:
    from huaweicloudsdkdli.v1 import ShowSparkJobRequest
    dli_client().show_spark_job(ShowSparkJobRequest(batch_id=batch_id))
    return sent[-1]


def verify(s: Sent, req: SignedRequest | None = None, table: dict[str, str] | None = None,
           now: datetime | None = None) -> str:
    return verify_dli(req or s.req, secrets({AK: SK} if table is None else table), now or s.date)


def test_dli_create_batch_signed_by_the_sdk_verifies(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    # Not trivially passing: the SDK really signed it, as we expect it to.
    assert s.req.method == "POST" and s.req.path == f"/v2.0/{PROJECT}/batches" and s.req.query == ""
    assert s.url == f"http://127.0.0.1:{PORT}/v2.0/{PROJECT}/batches"
    auth = s.req.headers["Authorization"]
    assert auth.startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=")
    assert "content-type;host;user-agent;x-project-id;x-sdk-date," in auth
    assert s.req.headers["X-Project-Id"] == PROJECT and s.req.headers["Host"] == f"127.0.0.1:{PORT}"
    assert json.loads(s.req.body)["className"] == "com.example.Main"
    assert verify(s) == AK


def test_dli_list_with_query_parameters_verifies(dli_sent: list[Sent]) -> None:
    s = dli_list_batches(dli_sent)
    assert s.req.method == "GET" and s.req.body == b""
    # The SDK sends its canonical query: sorted, every reserved character encoded.
    assert s.req.query == ("cluster_name=q1&job_name=nightly%20etl%26x%3D%C3%BC%2B1&order=desc&size=10"
                           "&start=0&state=running")
    assert verify(s) == AK
    # Order on the wire does not matter (a proxy may reorder): the canonical form sorts.
    shuffled = "&".join(reversed(s.req.query.split("&")))
    assert verify(s, replace(s.req, query=shuffled)) == AK


def test_dli_path_with_characters_that_need_encoding_verifies(dli_sent: list[Sent]) -> None:
    s = dli_show_batch(dli_sent, "batch id/ü+~x")
    assert s.req.path == f"/v2.0/{PROJECT}/batches/batch%20id%2F%C3%BC%2B~x"
    assert verify(s) == AK


def test_dli_non_ascii_signed_header_verifies(dli_sent: list[Sent]) -> None:
    from huaweicloudsdkdli.v1 import CreateSparkJobRequest, CreateSparkJobRequestBody
    dli_client().create_spark_job(CreateSparkJobRequest(
        user_id="usér", body=CreateSparkJobRequestBody(file="obs://b/a.jar", queue="q1")))
    s = dli_sent[-1]
    assert s.req.headers["USER-ID"] == "usér" and "user-id;" in s.req.headers["Authorization"]
    assert verify(s) == AK


def test_dli_derived_key_v11_signature_verifies(dli_sent: list[Sent]) -> None:
    from huaweicloudsdkdli.v1 import ListSparkJobsRequest
    dli_client(derived=True).list_spark_jobs(ListSparkJobsRequest(queue_name="q1"))
    s = dli_sent[-1]
    assert s.req.headers["Authorization"].startswith(
        f"V11-HMAC-SHA256 Credential={AK}/{s.date:%Y%m%d}/lakejob-1/dli, SignedHeaders=")
    assert verify(s) == AK
    with pytest.raises(SignatureError, match=f"signature mismatch for access key {AK}"):
        verify(s, table={AK: SK + "x"})


def test_dli_tampered_body_is_rejected(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    tampered = s.req.body.replace(b"com.example.Main", b"com.example.Evil")
    assert tampered != s.req.body
    with pytest.raises(SignatureError, match=f"^signature mismatch for access key {AK}$") as e:
        verify(s, replace(s.req, body=tampered))
    assert e.value.string_to_sign is not None and SK not in e.value.string_to_sign
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(s, replace(s.req, body=b""))


def test_dli_declared_body_hash_must_be_the_body_received(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    wrong = hashlib.sha256(b"another body").hexdigest()
    headers = dict(s.req.headers) | {"X-Sdk-Content-Sha256": wrong}
    with pytest.raises(SignatureError, match="X-Sdk-Content-Sha256 does not match the body"):
        verify(s, replace(s.req, headers=headers))
    unsigned = dict(s.req.headers) | {"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    with pytest.raises(SignatureError, match="UNSIGNED-PAYLOAD refused"):
        verify(s, replace(s.req, headers=unsigned))


def test_dli_tampered_path_and_query_are_rejected(dli_sent: list[Sent]) -> None:
    s = dli_list_batches(dli_sent)
    for req in (replace(s.req, path=f"/v2.0/{PROJECT}/batches/other"),
                replace(s.req, path="/v2.0/another-project/batches"),
                replace(s.req, query=s.req.query.replace("size=10", "size=1000")),
                replace(s.req, query=s.req.query + "&queue_name=q2"),
                replace(s.req, query=""),
                replace(s.req, method="DELETE")):
        with pytest.raises(SignatureError, match=f"^signature mismatch for access key {AK}$"):
            verify(s, req)


def test_dli_tampered_signed_header_is_rejected(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    other_project = dict(s.req.headers) | {"X-Project-Id": "another-project"}
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(s, replace(s.req, headers=other_project))
    without = {k: v for k, v in s.req.headers.items() if k != "X-Project-Id"}
    with pytest.raises(SignatureError, match="^signed header x-project-id is missing from the request$"):
        verify(s, replace(s.req, headers=without))


def test_dli_wrong_secret_and_unknown_key_are_rejected(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    with pytest.raises(SignatureError, match=f"^signature mismatch for access key {AK}$") as e:
        verify(s, table={AK: "not-the-secret"})
    assert "not-the-secret" not in str(e.value)
    with pytest.raises(SignatureError, match=f"^unknown access key {AK}$"):
        verify(s, table={"SOMEONEELSE": SK})


def test_dli_date_outside_the_window_is_rejected(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    assert verify(s, now=s.date + timedelta(minutes=14)) == AK
    assert verify(s, now=s.date - timedelta(minutes=14)) == AK
    for now in (s.date + timedelta(minutes=16), s.date - timedelta(minutes=16)):
        with pytest.raises(SignatureError, match="^request date X-Sdk-Date .* is outside the allowed window"):
            verify(s, now=now)
    # A fresh date on the old signature does not help: the date is signed.
    later = s.date + timedelta(hours=1)
    headers = dict(s.req.headers) | {"X-Sdk-Date": f"{later:%Y%m%dT%H%M%SZ}"}
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(s, replace(s.req, headers=headers), now=later)


def test_dli_missing_headers_and_unsupported_algorithm_are_rejected(dli_sent: list[Sent]) -> None:
    s = dli_create_batch(dli_sent)
    for missing in ("Authorization", "X-Sdk-Date"):
        headers = {k: v for k, v in s.req.headers.items() if k != missing}
        with pytest.raises(SignatureError, match=f"^missing header {missing}$"):
            verify(s, replace(s.req, headers=headers))
    # Header names are case-insensitive.
    lower = {k.lower(): v for k, v in s.req.headers.items()}
    assert verify(s, replace(s.req, headers=lower)) == AK
    auth = s.req.headers["Authorization"]
    for algorithm in ("SDK-HMAC-SM3", "SDK-ECDSA-P256-SHA256", "AWS4-HMAC-SHA256"):
        headers = dict(s.req.headers) | {"Authorization": auth.replace("SDK-HMAC-SHA256", algorithm)}
        with pytest.raises(SignatureError, match=f"^unsupported signing algorithm '{algorithm}'"):
            verify(s, replace(s.req, headers=headers))
    headers = dict(s.req.headers) | {"Authorization": auth.split(", Signature=")[0]}
    with pytest.raises(SignatureError, match="^malformed Authorization: no Signature=$"):
        verify(s, replace(s.req, headers=headers))
    headers = dict(s.req.headers) | {"X-Sdk-Date": "Thu, 03 Dec 2026 14:00:00 GMT"}
    with pytest.raises(SignatureError, match="^malformed X-Sdk-Date"):
        verify(s, replace(s.req, headers=headers))


# --- Alibaba BatchCompute: capture what Client sends ---------------------------------------------

class _Response:
    status = 200

    def __init__(self, body: bytes) -> None:
        self._body = body

    def read(self) -> bytes:
        return self._body

    def getheaders(self) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json")]

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return dict(self.getheaders()).get(name, default)


@pytest.fixture
def bc_sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Sent]]:
    import batchcompute.utils.http as bc_http
    from batchcompute.utils import constants, functions
    sent: list[Sent] = []

    class Connection:
        """http.client.HTTPConnection's place: what request() gets is what goes on the wire."""

        def __init__(self, host: str, port: int) -> None:
            assert (host, port) == ("127.0.0.1", PORT)

        def request(self, method: str, url: str, body: str | bytes | None = None,
                    headers: dict[str, str] | None = None) -> None:
            split = urlsplit(url)
            # http.client sends a str body as latin-1 (the SDK's JSON is ASCII).
            raw = body.encode("latin-1") if isinstance(body, str) else body or b""
            hdrs = dict(headers or {})
            date = parsedate_to_datetime(hdrs["Date"])
            sent.append(Sent(SignedRequest(method, split.path, split.query, hdrs, raw), url, date))

        def getresponse(self) -> _Response:
            return _Response(json.dumps({"Id": "job-0001", "Items": [], "NextMarker": ""}).encode())

        def close(self) -> None:
            pass

    monkeypatch.setattr(bc_http.httplib, "HTTPConnection", Connection)
    # register_region changes the SDK's globals: put them back after the test.
    monkeypatch.setattr(constants, "SERVICE_PORT", constants.SERVICE_PORT)
    monkeypatch.setitem(functions.ENDPOINT_INFO, "lakejob", "")
    yield sent


def bc_client() -> Any:
    from batchcompute import Client
    # What a user of the gateway writes: a region named for the gateway's host and port, over http.
    Client.register_region("lakejob", "127.0.0.1", port=PORT)
    return Client("127.0.0.1", BC_AK, BC_SK)


def bc_create_job(sent: list[Sent]) -> Sent:
    from batchcompute.resources import DAG, JobDescription, TaskDescription
    task = TaskDescription()
    task.Parameters.Command.CommandLine = "python main.py --day 2026-01-01"
    task.Parameters.StdoutRedirectPath = "oss://bucket/logs/"
    task.Parameters.StderrRedirectPath = "oss://bucket/logs/"
    task.InstanceCount, task.ClusterId = 1, "cls-0001"
    dag = DAG()
    dag.add_task("etl", task)
    job = JobDescription()
    job.Name, job.Priority, job.DAG = "nightly", 1, dag
    bc_client().create_job(job)
    return sent[-1]


def bc_verify(s: Sent, req: SignedRequest | None = None, table: dict[str, str] | None = None,
              now: datetime | None = None) -> str:
    return verify_batchcompute(req or s.req, secrets({BC_AK: BC_SK} if table is None else table), now or s.date)


def test_batchcompute_create_job_signed_by_the_sdk_verifies(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    assert s.req.method == "POST" and s.req.path == "/jobs" and s.req.query == ""
    assert s.req.headers["Authorization"].startswith(f"acs {BC_AK}:")
    assert s.req.headers["x-acs-signature-method"] == "HMAC-SHA1"
    assert s.req.headers["x-acs-region-id"] == "lakejob"
    assert json.loads(s.req.body)["DAG"]["Tasks"]["etl"]["ClusterId"] == "cls-0001"
    # The SDK's body digest: hex MD5 under a header its signer does not read.
    assert s.req.headers["contentMd5"] == hashlib.md5(s.req.body).hexdigest()
    assert "Content-MD5" not in s.req.headers
    assert bc_verify(s) == BC_AK


def test_batchcompute_get_and_list_jobs_verify(bc_sent: list[Sent]) -> None:
    bc_client().get_job("job-0001")
    got = bc_sent[-1]
    assert (got.req.method, got.req.path, got.req.query, got.req.body) == ("GET", "/jobs/job-0001", "", b"")
    assert bc_verify(got) == BC_AK
    bc_client().list_jobs("", 10, state="Running", cluster_id="cls-0001")
    listed = bc_sent[-1]
    # A blank value goes as the bare name ("Marker"), names sorted.
    assert listed.req.query == "ClusterId=cls-0001&Marker&MaxItemCount=10&State=Running"
    assert bc_verify(listed) == BC_AK
    with pytest.raises(SignatureError, match=f"^signature mismatch for access key {BC_AK}$"):
        bc_verify(listed, replace(listed.req, query=listed.req.query.replace("=10", "=100")))
    with pytest.raises(SignatureError, match="signature mismatch"):
        bc_verify(listed, replace(listed.req, query=""))


def test_batchcompute_tampered_path_and_method_are_rejected(bc_sent: list[Sent]) -> None:
    bc_client().get_job("job-0001")
    s = bc_sent[-1]
    for req in (replace(s.req, path="/jobs/job-0002"), replace(s.req, method="DELETE")):
        with pytest.raises(SignatureError, match=f"^signature mismatch for access key {BC_AK}$"):
            bc_verify(s, req)


def test_batchcompute_tampered_body_is_rejected_by_its_digest(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    tampered = s.req.body.replace(b"cls-0001", b"cls-0666")
    assert tampered != s.req.body
    with pytest.raises(SignatureError, match="^contentMd5 does not match the body received$"):
        bc_verify(s, replace(s.req, body=tampered))
    # A signed Content-MD5 (RFC 1864, base64) is checked too.
    digest = base64.b64encode(hashlib.md5(s.req.body).digest()).decode()
    headers = dict(s.req.headers) | {"Content-MD5": digest}
    with pytest.raises(SignatureError, match="^Content-MD5 does not match the body received$"):
        bc_verify(s, replace(s.req, headers=headers, body=tampered))


def test_batchcompute_signature_does_not_cover_the_body(bc_sent: list[Sent]) -> None:
    """The limit of the SDK's scheme, pinned down: whoever also fixes contentMd5 gets through."""
    s = bc_create_job(bc_sent)
    tampered = s.req.body.replace(b"cls-0001", b"cls-0666")
    headers = dict(s.req.headers) | {"contentMd5": hashlib.md5(tampered).hexdigest()}
    assert bc_verify(s, replace(s.req, headers=headers, body=tampered)) == BC_AK


def test_batchcompute_wrong_secret_and_unknown_key_are_rejected(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    with pytest.raises(SignatureError, match=f"^signature mismatch for access key {BC_AK}$") as e:
        bc_verify(s, table={BC_AK: "not-the-secret"})
    assert "not-the-secret" not in str(e.value) and BC_SK not in (e.value.string_to_sign or "")
    with pytest.raises(SignatureError, match=f"^unknown access key {BC_AK}$"):
        bc_verify(s, table={})


def test_batchcompute_tampered_acs_header_is_rejected(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    for name, value in (("x-acs-signature-nonce", "replayed-nonce"), ("x-acs-region-id", "cn-hangzhou"),
                        ("x-acs-extra", "1"), ("Accept", "text/xml"), ("Content-Type", "text/plain")):
        headers = dict(s.req.headers) | {name: value}
        with pytest.raises(SignatureError, match="signature mismatch"):
            bc_verify(s, replace(s.req, headers=headers))
    headers = dict(s.req.headers) | {"x-acs-access-key-id": "SOMEONEELSE"}
    with pytest.raises(SignatureError, match="^x-acs-access-key-id does not match"):
        bc_verify(s, replace(s.req, headers=headers))


def test_batchcompute_date_outside_the_window_is_rejected(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    assert bc_verify(s, now=s.date + timedelta(minutes=14)) == BC_AK
    for now in (s.date + timedelta(minutes=16), s.date - timedelta(minutes=16)):
        with pytest.raises(SignatureError, match="^request date Date .* is outside the allowed window"):
            bc_verify(s, now=now)
    later = s.date + timedelta(hours=1)
    headers = dict(s.req.headers) | {"Date": f"{later:%a, %d %b %Y %H:%M:%S GMT}"}
    with pytest.raises(SignatureError, match="signature mismatch"):
        bc_verify(s, replace(s.req, headers=headers), now=later)


def test_batchcompute_missing_headers_and_unsupported_schemes_are_rejected(bc_sent: list[Sent]) -> None:
    s = bc_create_job(bc_sent)
    for missing in ("Authorization", "Date"):
        headers = {k: v for k, v in s.req.headers.items() if k != missing}
        with pytest.raises(SignatureError, match=f"^missing header {missing}$"):
            bc_verify(s, replace(s.req, headers=headers))
    auth = s.req.headers["Authorization"]
    for bad, message in ((auth.replace("acs ", "OSS ", 1), "^unsupported signature scheme 'OSS'"),
                         ("acs " + BC_AK, "^malformed Authorization")):
        headers = dict(s.req.headers) | {"Authorization": bad}
        with pytest.raises(SignatureError, match=message):
            bc_verify(s, replace(s.req, headers=headers))
    headers = dict(s.req.headers) | {"x-acs-signature-method": "HMAC-SHA256"}
    with pytest.raises(SignatureError, match="^unsupported x-acs-signature-method 'HMAC-SHA256'"):
        bc_verify(s, replace(s.req, headers=headers))
    headers = dict(s.req.headers) | {"Date": "20261203T144815Z"}
    with pytest.raises(SignatureError, match="^malformed Date"):
        bc_verify(s, replace(s.req, headers=headers))
