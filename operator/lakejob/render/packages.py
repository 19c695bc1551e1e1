"""Pure rules of the package store: where a Spark or Flink job's files come from, and the `fetch`
init container that puts them into its pod as local files before the JVM starts. No I/O.

The vendors' users name their files in three ways, and Spark or Flink in a pod can read none of
them as they are:
- a DLI package name, `group/name` or a bare `name` (in `file`, `jars`, `files`, `pyFiles`,
  `resources`, `groups`; Flink's `entrypoint`, `dependency_jars`, `dependency_files`): an object
  under the operator's package store (`LAKEJOB_PACKAGES_URL`, e.g. `s3://dli-packages/`), as
  DLI's resource management holds them in OBS;
- an object store path: `obs://bucket/key` (Huawei OBS) and `s3a://` / `s3://` go to the S3 store
  (`LAKEJOB_S3_ENDPOINT`), `oss://` to the OSS store (`LAKEJOB_OSS_ENDPOINT`), Azure's
  `wasb(s)://CONTAINER@ACCOUNT.blob.core.windows.net/key` and `abfs(s)://FS@ACCOUNT.dfs…/key` to
  the account's Blob service (`LAKEJOB_BLOB_ENDPOINT`);
- what the image or Spark itself reads (`local:`, `file:`, `http(s):`, `hdfs:`, an absolute
  path): left as it is.
Each fetched object lands at a fixed place in an emptyDir (`PACKAGES_DIR`), keeping its base name
(Spark's `SparkFiles.get(name)` and a working directory's file names depend on it), and the job
is given that local path instead. One mechanism for every kind: the `fetch` container is
`lakejob-oss fetch` from the operator's image, as for a DagJob task's package (render.dag).
Credentials come from the Secret the operator's settings name (`LAKEJOB_STORE_SECRET`), in the
job's namespace, as secretKeyRefs: never in a spec, a status or an Event.

Called by render.spark (driver pods) and the controllers' decide functions (to refuse a job whose
names cannot be resolved, before anything is created).
"""
from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lakejob.render.common import Unrenderable
from lakejob.settings import Settings

PACKAGES_DIR = "/opt/lakejob/packages"  # an emptyDir in the pod: package names under it, objects below
VOLUME = "lakejob-packages"
FETCHER = "fetch"
TOOL = "lakejob-oss"
# Kept as they are: what Spark, Flink or the image read themselves.
PASS_THROUGH = ("local", "file", "http", "https", "hdfs", "viewfs")
# Object store schemes → the store lakejob-oss reads them from (its oss://, s3:// or blob:// paths).
STORE_OF = {"obs": "s3", "s3a": "s3", "s3": "s3", "s3n": "s3", "oss": "oss",
            "wasb": "blob", "wasbs": "blob", "abfs": "blob", "abfss": "blob"}
# The Secret keys the fetcher reads, per store (lakejob.oss.client's and lakejob.oss.blob's variables).
SECRET_KEYS = {"s3": ("S3_ACCESS_KEY_ID", "S3_ACCESS_KEY_SECRET", "S3_SESSION_TOKEN"),
               "oss": ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"),
               "blob": ("BLOB_ACCOUNT_KEY", "BLOB_SAS_TOKEN")}


FETCH_FAILED = "FetchFailed"  # the reason of a job whose `fetch` container failed: its JVM never started
# A fetch failure no retry can mend: the object or its bucket is not in the store.
_BEYOND_RETRY = ("NoSuchKey", "NoSuchBucket")


class PackageError(Unrenderable):
    """A reference that cannot be resolved; the message names the field, the value and the rule."""


@dataclass(frozen=True)
class Fetch:
    """One object to copy into the pod."""

    field: str  # the spec field that names it, e.g. "jars[0]", for messages
    ref: str  # as the spec gives it
    remote: str  # s3://bucket/key, oss://bucket/key or blob://container@account/key
    local: str  # where it lands in the pod


def _key_problem(key: str) -> str | None:
    if not key or key.endswith("/"):
        return "names a folder, not a file"
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' path segment"
    return None


def locate(ref: str, field: str, settings: Settings) -> tuple[str, Fetch | None]:
    """What the job is given for `ref` (a local path when it is fetched), and the Fetch that puts
    it there (None when the job reads `ref` itself). PackageError when it cannot be resolved."""
    ref = ref.strip()
    scheme, sep, rest = ref.partition("://")
    if ref.startswith("/") or (sep and scheme in PASS_THROUGH) or ref.startswith(("local:", "file:")):
        return ref, None
    if sep:
        store = STORE_OF.get(scheme.lower())
        if store is None:
            raise PackageError(f"{field}: {ref!r}: the scheme {scheme}:// is not one the operator can fetch "
                               f"(object stores: {', '.join(s + '://' for s in STORE_OF)}; read by the job "
                               f"itself: {', '.join(s + '://' for s in PASS_THROUGH)}, or an absolute path)")
        bucket, _, key = rest.partition("/")
        if store == "blob":
            # HDInsight's and ADLS Gen2's form: CONTAINER@ACCOUNT.blob.core.windows.net (or .dfs…);
            # the account is the host's first label, wherever the service is (sovereign clouds too).
            container, at, host = bucket.partition("@")
            if not (container and at and host.partition(".")[0]):
                raise PackageError(f"{field}: {ref!r} has no container or account: expected "
                                   f"{scheme}://CONTAINER@ACCOUNT.blob.core.windows.net/PATH")
            remote_bucket = f"{container}@{host.partition('.')[0]}"
        else:
            remote_bucket = bucket
        problem = "has no bucket" if not bucket else _key_problem(key)
        if problem is not None:
            raise PackageError(f"{field}: {ref!r} {problem}: expected {scheme}://BUCKET/KEY")
        local = posixpath.join(PACKAGES_DIR, "objects", scheme.lower(), bucket, key)
        return local, Fetch(field, ref, f"{store}://{remote_bucket}/{key}", local)
    # A DLI package name: group/name or name, under the package store.
    if (problem := _key_problem(ref)) is not None:
        raise PackageError(f"{field}: {ref!r} {problem}: a package name is NAME or GROUP/NAME")
    if not settings.packages_url:
        raise PackageError(f"{field}: {ref!r} is a DLI package name, and the operator has no package store: "
                           "set LAKEJOB_PACKAGES_URL (chart stores.packagesUrl), e.g. s3://dli-packages/, or give an "
                           "obs://, s3a:// or local:// path")
    store_scheme, _, store_rest = settings.packages_url.partition("://")
    remote = f"{STORE_OF[store_scheme]}://{store_rest.rstrip('/')}/{ref}"
    local = posixpath.join(PACKAGES_DIR, ref)
    return local, Fetch(field, ref, remote, local)


def locate_all(refs: Sequence[str] | None, field: str, settings: Settings) -> tuple[list[str], list[Fetch]]:
    """`locate` over a list field (`jars`, `files`…): the paths the job is given, the fetches."""
    given: list[str] = []
    fetches: list[Fetch] = []
    for i, ref in enumerate(refs or []):
        path, fetch = locate(ref, f"{field}[{i}]", settings)
        given.append(path)
        fetches += [fetch] if fetch is not None else []
    return given, fetches


def fetcher(fetches: Iterable[Fetch], settings: Settings, uid: int,
            container_sc: dict[str, Any]) -> dict[str, Any] | None:
    """The `fetch` init container for `fetches` (None when there is none): every object to its
    local path in the emptyDir VOLUME, the stores' endpoints from the operator's settings and their
    keys from the Secret LAKEJOB_STORE_SECRET names (optional keys: a public bucket needs none).
    Its failure (one line naming the object and the store's reason, e.g. NoSuchKey) is its
    termination message, which the controllers report."""
    todo = sorted({f.local: f for f in fetches}.values(), key=lambda f: f.local)
    if not todo:
        return None
    stores = sorted({f.remote.partition("://")[0] for f in todo})
    env: list[dict[str, Any]] = []
    for store in stores:
        prefix = store.upper()
        if store == "blob":
            env += [{"name": "BLOB_ENDPOINT", "value": settings.blob_endpoint}] if settings.blob_endpoint else []
        else:
            endpoint, style, region = ((settings.s3_endpoint, settings.s3_addressing_style, settings.s3_region)
                                       if store == "s3" else
                                       (settings.oss_endpoint, settings.oss_addressing_style, settings.oss_region))
            if endpoint:
                env.append({"name": f"{prefix}_ENDPOINT", "value": endpoint})
            env.append({"name": f"{prefix}_ADDRESSING_STYLE", "value": style})
            if region:
                env.append({"name": f"{prefix}_REGION", "value": region})
        if settings.store_secret:
            env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": settings.store_secret, "key": k,
                                                               "optional": True}}}
                    for k in SECRET_KEYS[store]]
    return {
        "name": FETCHER,
        "image": settings.fetcher_image,
        "imagePullPolicy": "IfNotPresent",
        "command": [TOOL, "fetch"],
        "args": [a for f in todo for a in ("--map", f"{f.remote}={f.local}")],
        "env": env,
        "volumeMounts": [{"name": VOLUME, "mountPath": PACKAGES_DIR}],
        "securityContext": {**container_sc, "readOnlyRootFilesystem": True},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def add_to_pod(pod: dict[str, Any], containers: Sequence[dict[str, Any]], init: dict[str, Any] | None) -> None:
    """Put the fetcher first among the pod's init containers, and its emptyDir, read-only, into
    `containers` (the job's own): what the job reads was checked by nobody but the store's owner,
    and it never needs to write there."""
    if init is None:
        return
    spec = pod["spec"]
    spec["initContainers"] = [init, *spec.get("initContainers", [])]
    spec.setdefault("volumes", []).append({"name": VOLUME, "emptyDir": {}})
    for c in containers:
        c.setdefault("volumeMounts", []).append({"name": VOLUME, "mountPath": PACKAGES_DIR, "readOnly": True})


def failed_fetch(pod_status: dict[str, Any]) -> dict[str, Any] | None:
    """The terminated state of a pod's `fetch` container that failed (its current state, or its last
    one while the kubelet retries it in a pod that restarts), None when it has not failed."""
    for cs in pod_status.get("initContainerStatuses") or []:
        if cs.get("name") == FETCHER:
            failed = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
            return failed if failed.get("exitCode") else None  # exit code 0: a fetch that succeeded
    return None


def beyond_retry(why: str) -> bool:
    """Whether a fetch failure (explain_failure's text) would fail again: the object is missing."""
    return any(code in why for code in _BEYOND_RETRY)


def explain_failure(message: str, fetches: Iterable[Fetch]) -> str:
    """A fetcher's termination message (`lakejob-oss: fetch failed: s3://b/k: NoSuchKey …`) with
    the spec's own name of the object first: `jars[0] 'demo-1.0.0.jar' (s3://b/k): NoSuchKey …`."""
    detail = message.strip().splitlines()[-1] if message.strip() else "the fetch failed"
    detail = detail.removeprefix(f"{TOOL}: ").removeprefix("fetch failed: ")
    for f in fetches:
        if detail.startswith(f.remote + ":"):
            return f"{f.field} {f.ref!r} ({f.remote}){detail[len(f.remote):]}"
    return detail
