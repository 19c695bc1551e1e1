"""Pure builders: a FlinkJarJob spec → the manifests of a standalone application cluster. No I/O.

Called by lakejob.controllers.flinkjarjob, by its decide (which refuses with `problem` the files that
cannot be named, and names a failed fetch's object with `files_of`), and by the real-Flink e2e test,
which runs what we render.
The layout is Flink's own standalone Kubernetes one, with the official image's entrypoint:

- ConfigMap `<base>-flink-config`: the Flink configuration (`config.yaml` from Flink 2.0,
  `flink-conf.yaml` before) with the user's runtime_config merged over ours, and a console log4j
  configuration; mounted at /opt/flink/conf as Flink's Kubernetes guide does.
- Service `<base>-jobmanager`: RPC 6123, blob 6124, REST 8081; jobmanager.rpc.address points at it.
  Headless (as Flink's native Kubernetes mode makes its JobManager's), without a selector: the
  operator writes its Endpoints (render.endpoints).
- JobManager: one pod per attempt, `<base>-jm-<attempt>`, restartPolicy Never, running
  `standalone-job --job-id <id> [--job-classname C] [--fromSavepoint P] -- <args>`. A bare pod and not a
  Deployment, because the operator owns every restart: it counts them against resume_max_num and
  gives the new JobManager the checkpoint to resume from.
- TaskManagers: a ReplicaSet `<base>-taskmanager` of `taskmanager` pods. They hold no job state and
  re-register with whichever JobManager answers at the Service, so a ReplicaSet that replaces a
  lost one is all they need, and it survives the job's restarts unchanged. Not a Deployment: nothing
  rolls (a new run replaces the set whole), and Kubernetes' Deployment controller lists every pod
  of the namespace at each sync of each Deployment (docs/performance.md, "TaskManagers as a
  ReplicaSet"); the ReplicaSet controller finds its pods by owner.

The job's files (entrypoint, dependency_jars, dependency_files) are named as DLI's users name them:
package names and obs:// / s3a:// / oss:// paths are fetched from the stores by render.packages'
`fetch` init container into an emptyDir, in the JobManager and in every TaskManager (TaskManagers
load the job's classes from the same local paths), before Flink starts. The Flink container mounts
that emptyDir read-only at FLINK_PACKAGES, inside usrlib: standalone-job puts every jar under
usrlib on the job's classpath and finds the main class in it when main_class is not given. Jars
the job reads itself (local://, file://, absolute paths, http(s)://) go on pipeline.classpaths.
Dependency files, fetched or local, are copied by an init container into <FILES_DIR>/userData/,
and FILES_DIR is on the classpath, so `getResource("userData/<file>")` finds them as on DLI.
Every object carries the lakejob.io/* labels, the job's tags as labels, and an ownerReference to
the FlinkJarJob.
"""
from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from lakejob import sizing
from lakejob.models.common import PodCustomization
from lakejob.models.flinkjarjob import FlinkJarJobSpec
from lakejob.render import common, packages
from lakejob.render import workload as render_workload
from lakejob.render.endpoints import build_service
from lakejob.render.common import Owner
from lakejob.settings import Settings

RPC_PORT = 6123
BLOB_PORT = 6124
REST_PORT = 8081
TM_RPC_PORT = 6122
CONF_DIR = "/opt/flink/conf"
FILES_DIR = "/opt/flink/lakejob-files"
USRLIB = "/opt/flink/usrlib"
# The fetched files in the Flink containers: a folder of usrlib, not usrlib itself, so that jars an
# image keeps in its own usrlib stay visible.
FLINK_PACKAGES = f"{USRLIB}/packages"
LOG_DIR = "/opt/flink/log"
# With a read-only root file system, the emptyDirs where Flink writes: java.io.tmpdir (io.tmp.dirs:
# blobs, spill files, RocksDB's local state, web uploads; the start scripts' pid file) and its log
# directory (log.file: ours logs to the console only, but the scripts name a file there).
# The configuration directory is a ConfigMap, read-only already: the operator's image
# (images/flink) writes its merged configuration to a fresh folder under /tmp instead; the official
# image's in-place rewrite fails, as on every Flink Kubernetes deployment, and ours holds its values.
WRITABLE_DIRS = {"lakejob-tmp": "/tmp", "lakejob-log": LOG_DIR}
PLUGINS_ENV = "ENABLE_BUILT_IN_PLUGINS"
CONTAINER = "flink-main-container"
JAVA17_OPTS = " ".join(
    [f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.rmi/sun.rmi.registry", "jdk.compiler/com.sun.tools.javac.api", "jdk.compiler/com.sun.tools.javac.file",
        "jdk.compiler/com.sun.tools.javac.parser", "jdk.compiler/com.sun.tools.javac.tree",
        "jdk.compiler/com.sun.tools.javac.util", "java.security.jgss/sun.security.krb5")]
    + [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
        "java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect", "java.text", "java.time",
        "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "java.util.concurrent.locks")])
LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class Names(common.ChildNames):
    """Every child's name, from the CR's name only."""

    def jobmanager(self, attempt: int) -> str:
        return f"{self.base}-jm-{attempt}"

    @property
    def service(self) -> str:
        return f"{self.base}-jobmanager"

    @property
    def configmap(self) -> str:
        return f"{self.base}-flink-config"

    @property
    def taskmanagers(self) -> str:
        return f"{self.base}-taskmanager"


def job_id(uid: str, attempt: int) -> str:
    """The Flink JobID of an attempt (32 hex digits, Flink's shape): stable across operator restarts,
    new per attempt, so the REST answer about an earlier attempt is never mistaken for this one's."""
    return common.attempt_hash(uid, attempt)


def flink_version(spec: FlinkJarJobSpec, settings: Settings) -> str:
    return spec.flink_version or settings.default_flink_version


def image_for(spec: FlinkJarJobSpec, settings: Settings) -> str:
    if spec.image:
        return spec.image
    version = flink_version(spec, settings)
    major_minor = ".".join(version.split(".")[:2])
    return (settings.flink_images.get(version) or settings.flink_images.get(major_minor)
            or settings.flink_image_template.format(version=version))


def config_file(version: str) -> str:
    """Flink 2.0 reads only config.yaml (standard YAML); 1.x reads flink-conf.yaml."""
    return "config.yaml" if int(version.split(".")[0]) >= 2 else "flink-conf.yaml"


def resolve_sizing(spec: FlinkJarJobSpec, settings: Settings) -> sizing.FlinkSizing:
    return sizing.resolve_flink(
        cu_number=spec.cu_number, manager_cu_number=spec.manager_cu_number, tm_cus=spec.tm_cus,
        parallel_number=spec.parallel_number, tm_slot_num=spec.tm_slot_num,
        cu_millicpu=settings.flink_cu_millicpu, cu_memory_mib=settings.flink_cu_memory_mib)


# ------------------------------------------------------------------------------------ paths


def local_path(ref: str) -> str:
    """A path inside the pods of a file the job reads itself: local:///x and file:///x are /x."""
    for scheme in ("local://", "file://"):
        if ref.startswith(scheme):
            return ref[len(scheme):]
    return ref


def in_flink(fetched: str) -> str:
    """Where the Flink containers see a fetched file (packages.locate's path in the emptyDir)."""
    return FLINK_PACKAGES + fetched[len(packages.PACKAGES_DIR):]


@dataclass(frozen=True)
class Files:
    """Where the job's files are in the pods, and the objects the `fetch` init container fetches."""

    classpaths: list[str]  # pipeline.classpaths: jars read where they are (fetched jars are in usrlib)
    files: list[str]  # dependency files as paths in the pods, copied to FILES_DIR/userData
    fetches: list[packages.Fetch]


def _jars(spec: FlinkJarJobSpec) -> Iterator[tuple[str, str]]:
    if spec.entrypoint:
        yield "entrypoint", spec.entrypoint
    for i, ref in enumerate(spec.dependency_jars or []):
        yield f"dependency_jars[{i}]", ref


def files_of(spec: FlinkJarJobSpec, settings: Settings) -> Files:
    """packages.PackageError naming the field when a reference cannot be resolved."""
    classpaths: list[str] = []
    fetches: list[packages.Fetch] = []
    for field, ref in _jars(spec):
        path, fetch = packages.locate(ref, field, settings)
        if fetch is not None:
            fetches.append(fetch)
        else:  # http(s) as given (a class loader reads it), anything else a file:// URL
            classpaths.append(path if path.startswith(("http://", "https://")) else "file://" + local_path(path))
    files: list[str] = []
    for i, ref in enumerate(spec.dependency_files or []):
        path, fetch = packages.locate(ref, f"dependency_files[{i}]", settings)
        files.append(local_path(path) if fetch is None else in_flink(path))
        fetches += [fetch] if fetch is not None else []
    if spec.dependency_files:
        classpaths.append(f"file://{FILES_DIR}/")  # a directory URL: the class loader finds userData/<file> in it
    return Files(classpaths, files, fetches)


def problem(spec: FlinkJarJobSpec, settings: Settings) -> tuple[str, str] | None:
    """(reason, message) when the job's files cannot be named, so that nothing is created."""
    try:
        files = files_of(spec, settings)
    except packages.PackageError as e:
        return "InvalidPackage", str(e)
    seen: dict[str, int] = {}
    for i, path in enumerate(files.files):
        base = posixpath.basename(path)
        if base in seen:
            refs = spec.dependency_files or []
            return "InvalidPackage", (f"dependency_files[{i}]: {refs[i]!r} and dependency_files[{seen[base]}]: "
                                      f"{refs[seen[base]]!r} are both userData/{base}, where the job reads them; "
                                      "give each file its own name")
        seen[base] = i
    return None


# ------------------------------------------------------------------------------------ configuration


def parse_runtime_config(text: str | None) -> dict[str, str]:
    """runtime_config's `key: value` lines (the model's pattern has checked the form)."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(": ")
        out[key.strip()] = value.strip()
    return out


def configuration(spec: FlinkJarJobSpec, owner: Owner, sz: sizing.FlinkSizing, settings: Settings) -> dict[str, str]:
    """The Flink configuration: ours, then the user's runtime_config over it (the model rejects the
    keys the typed fields own, so nothing the user writes can resize or unwire the pods)."""
    names = Names.of(owner.name)
    major = int(flink_version(spec, settings).split(".")[0])
    ours: dict[str, str] = {
        "jobmanager.rpc.address": names.service,
        "jobmanager.rpc.port": str(RPC_PORT),
        "blob.server.port": str(BLOB_PORT),
        "rest.port": str(REST_PORT),
        "rest.address": names.service,
        "taskmanager.rpc.port": str(TM_RPC_PORT),
        # The image's default configuration binds to localhost; ours replaces it, so listen on the pod.
        "jobmanager.bind-host": "0.0.0.0",
        "taskmanager.bind-host": "0.0.0.0",
        "rest.bind-address": "0.0.0.0",
        "taskmanager.numberOfTaskSlots": str(sz.slots),
        "parallelism.default": str(sz.parallelism),
        "jobmanager.memory.process.size": f"{sz.jobmanager_memory_mib}m",
        "taskmanager.memory.process.size": f"{sz.taskmanager_memory_mib}m",
        "taskmanager.cpu.cores": f"{sz.taskmanager_millicpu / 1000:g}",
        # Every failure reaches the operator, which alone restarts (and counts against resume_max_num).
        "restart-strategy.type": "none",
        "jobmanager.execution.failover-strategy": "region",
        # What the image's own configuration sets and ours replaces: Flink on Java 17 needs these module
        # openings (without them the job fails at start with InaccessibleObjectException).
        "env.java.opts.all": JAVA17_OPTS,
    }
    paths = files_of(spec, settings).classpaths
    if paths:
        ours["pipeline.classpaths"] = ";".join(paths)
    if spec.checkpoint_path:
        ours["execution.checkpointing.dir" if major >= 2 else "state.checkpoints.dir"] = spec.checkpoint_path
        # A failed job's checkpoints must outlive it, or there is nothing to resume from.
        ours["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
        # The operator resumes from the newest checkpoint its last REST poll saw. With Flink's default
        # of one retained checkpoint, a checkpoint completing between that poll and the failure
        # deletes it, and every later attempt fails with "Cannot find checkpoint" (seen in the
        # real-Flink test). Keeping a few more covers a poll that lags a few checkpoints behind.
        ours["execution.checkpointing.num-retained" if major >= 2 else "state.checkpoints.num-retained"] = \
            str(settings.flink_checkpoints_retained)
    return {**ours, **parse_runtime_config(spec.runtime_config)}


def _yaml_safe(value: str) -> bool:
    """Whether `key: value` reads back in YAML as this very text (else it is written JSON-quoted)."""
    try:
        back = yaml.safe_load(f"k: {value}")
    except yaml.YAMLError:
        return False
    if not isinstance(back, dict) or back.get("k") is None or isinstance(back["k"], (bool, dict, list)):
        return False
    return str(back["k"]) == value


def config_text(conf: dict[str, str], user_keys: frozenset[str] = frozenset(), yaml_file: bool = True) -> str:
    """`key: value` lines. config.yaml is YAML: our values that YAML would misread are JSON-quoted.
    flink-conf.yaml is read line by line, raw. The user's values are written as they wrote them
    (they are Flink syntax for their version already)."""
    lines = []
    for key, value in conf.items():
        quote = yaml_file and key not in user_keys and not _yaml_safe(value)
        lines.append(f"{key}: {json.dumps(value) if quote else value}")
    return "\n".join(lines) + "\n"


def configmap(spec: FlinkJarJobSpec, owner: Owner, sz: sizing.FlinkSizing, settings: Settings) -> dict[str, Any]:
    """The Flink configuration file and log4j's; common.ObjectTooLarge when a ConfigMap cannot hold them."""
    names = Names.of(owner.name)
    conf = configuration(spec, owner, sz, settings)
    user = frozenset(parse_runtime_config(spec.runtime_config))
    file = config_file(flink_version(spec, settings))
    return common.check_size({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": common.meta(names.configmap, owner, labels(spec, owner, "config")),
        "data": {file: config_text(conf, user, yaml_file=file == "config.yaml"),
                 "log4j-console.properties": LOG4J},
    }, "the Flink configuration (spec.runtime_config, entrypoint, dependency_jars, checkpoint_path, tags)")


# ------------------------------------------------------------------------------------ pods


def labels(spec: FlinkJarJobSpec, owner: Owner, role: str) -> dict[str, str]:
    """Tags first, so lakejob's own labels always win (tag keys carry no prefix, they cannot clash)."""
    tags = {t.key: t.value for t in spec.tags or []}
    return {**tags, **common.labels(owner, Names.of(owner.name).base, role, spec.queue_name)}


def _annotations(spec: FlinkJarJobSpec) -> dict[str, str]:
    out = {}
    if spec.log_enabled and spec.obs_bucket:
        out["lakejob.io/log-bucket"] = spec.obs_bucket  # for the cluster's log shipper; Flink has no uploader
    return out


def _pod(spec: FlinkJarJobSpec, owner: Owner, role: str, args: list[str], millicpu: int, memory_mib: int,
         settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JobManager or TaskManager pod (without name) and its main container."""
    names = Names.of(owner.name)
    pod_sc, container_sc = common.security_context(settings.flink_uid)
    memory = sizing.k8s_quantity_mib(memory_mib)
    mounts: list[dict[str, Any]] = [{"name": "flink-config", "mountPath": CONF_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "flink-config", "configMap": {"name": names.configmap}}]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image_for(spec, settings),
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                # The official image's entrypoint sets jobmanager.rpc.address to this, or else to the
                # pod's own hostname (wrong for a TaskManager); so it repeats ours.
                {"name": "JOB_MANAGER_RPC_ADDRESS", "value": names.service}],
        # Requests are the CUs; the memory limit equals the Flink process size, as Flink sizes its JVM to it.
        "resources": {"requests": {"cpu": sizing.k8s_millicpu(millicpu), "memory": memory},
                      "limits": {"memory": memory}},
        "volumeMounts": mounts,
        "securityContext": container_sc,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec_: dict[str, Any] = {"enableServiceLinks": False, "securityContext": pod_sc, "containers": [container],
                             "volumes": volumes}
    files = files_of(spec, settings)
    if files.fetches:
        # The fetcher's emptyDir (added with the fetcher, once the pod is complete): inside usrlib.
        mounts.append({"name": packages.VOLUME, "mountPath": FLINK_PACKAGES, "readOnly": True})
    if spec.dependency_files:
        volumes.append({"name": "lakejob-files", "emptyDir": {}})
        mounts.append({"name": "lakejob-files", "mountPath": FILES_DIR, "readOnly": True})
        sources = " ".join(shlex.quote(f) for f in files.files)
        copy_mounts: list[dict[str, Any]] = [{"name": "lakejob-files", "mountPath": FILES_DIR}]
        if files.fetches:
            copy_mounts.append({"name": packages.VOLUME, "mountPath": FLINK_PACKAGES, "readOnly": True})
        spec_["initContainers"] = [{
            "name": "dependency-files",
            "image": container["image"],
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", f"mkdir -p {FILES_DIR}/userData && cp -- {sources} {FILES_DIR}/userData/"],
            "volumeMounts": copy_mounts,
            "securityContext": container_sc,
        }]
    pod: dict[str, Any] = {"metadata": {"labels": labels(spec, owner, role), "annotations": _annotations(spec)},
                           "spec": spec_}
    return pod, container


def _read_only_root(spec: FlinkJarJobSpec, pod: dict[str, Any], container: dict[str, Any],
                    custom: PodCustomization | None) -> None:
    """readOnlyRootFilesystem, with the operator's images only. Not with a custom image (it may write
    anywhere), nor when the pod's env sets ENABLE_BUILT_IN_PLUGINS: the official image's entrypoint
    then links those plugins into $FLINK_HOME/plugins at start (how the S3 file systems that
    checkpoints need are usually enabled), and an emptyDir there would hide the image's own plugins."""
    if spec.image or any(e.name == PLUGINS_ENV for e in (custom.env if custom else None) or []):
        return
    common.read_only_root(pod, [container, *pod["spec"].get("initContainers", [])], WRITABLE_DIRS)


def _finish(spec: FlinkJarJobSpec, pod: dict[str, Any], container: dict[str, Any], custom: PodCustomization | None,
            settings: Settings) -> None:
    """What every JobManager and TaskManager pod gets after the user's customisation: the operator's
    workload placement, the read-only root, and the `fetch` init container, first, so the job's
    files are in place before the dependency files are copied and before Flink starts."""
    common.customize(pod, container, custom)
    common.place(pod, settings)
    _read_only_root(spec, pod, container, custom)
    # Its emptyDir is mounted in the Flink container (and the copier) by _pod already, inside usrlib.
    packages.add_to_pod(pod, [], packages.fetcher(files_of(spec, settings).fetches, settings, settings.flink_uid,
                                                  common.security_context(settings.flink_uid)[1]))


def jobmanager_args(spec: FlinkJarJobSpec, owner: Owner, attempt: int, savepoint: str | None) -> list[str]:
    """`standalone-job` and its options; "--" ends them, so job arguments such as "-s" stay the job's."""
    args = ["standalone-job", "--job-id", job_id(owner.uid, attempt)]
    if spec.main_class:
        args += ["--job-classname", spec.main_class]
    if savepoint:
        args += ["--fromSavepoint", savepoint]
    user = spec.args()
    return args + (["--", *user] if user else [])


def jobmanager_pod(spec: FlinkJarJobSpec, owner: Owner, sz: sizing.FlinkSizing, attempt: int,
                   savepoint: str | None, settings: Settings) -> dict[str, Any]:
    names = Names.of(owner.name)
    pod, container = _pod(spec, owner, "jobmanager", jobmanager_args(spec, owner, attempt, savepoint),
                          sz.jobmanager_millicpu, sz.jobmanager_memory_mib, settings)
    container["ports"] = [{"name": "rpc", "containerPort": RPC_PORT}, {"name": "blob", "containerPort": BLOB_PORT},
                          {"name": "rest", "containerPort": REST_PORT}]
    pod["metadata"].update(name=names.jobmanager(attempt), namespace=owner.namespace,
                           ownerReferences=[owner.reference()])
    pod["metadata"]["labels"]["lakejob.io/attempt"] = str(attempt)
    pod["metadata"]["annotations"]["lakejob.io/attempt"] = str(attempt)
    pod["spec"]["restartPolicy"] = "Never"  # the operator decides about restarts (resume_max_num)
    _finish(spec, pod, container, spec.jobManager, settings)
    return {"apiVersion": "v1", "kind": "Pod", **pod}


def taskmanager_replicaset(spec: FlinkJarJobSpec, owner: Owner, sz: sizing.FlinkSizing,
                           settings: Settings) -> dict[str, Any]:
    names = Names.of(owner.name)
    # taskmanager.host: the pod's IP, so the JobManager reaches each TaskManager directly.
    template, container = _pod(spec, owner, "taskmanager", ["taskmanager", "-Dtaskmanager.host=$(POD_IP)"],
                               sz.taskmanager_millicpu, sz.taskmanager_memory_mib, settings)
    container["ports"] = [{"name": "rpc", "containerPort": TM_RPC_PORT}]
    _finish(spec, template, container, spec.taskManager, settings)
    selector = {k: v for k, v in labels(spec, owner, "taskmanager").items() if k.startswith("lakejob.io/")
                and k != "lakejob.io/queue"}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": common.meta(names.taskmanagers, owner, labels(spec, owner, "taskmanager")),
        "spec": {"replicas": sz.taskmanagers, "selector": {"matchLabels": selector}, "template": template},
    }


def workload_pod_sets(spec: FlinkJarJobSpec, owner: Owner, sz: sizing.FlinkSizing,
                      settings: Settings) -> list[render_workload.PodSet]:
    """A run's Kueue podSets (docs/queues.md): the JobManager ×1 and the TaskManagers × their replicas,
    as the pods will be (the JobManager's attempt and savepoint change its name and arguments only)."""
    return [render_workload.PodSet("jobmanager", 1, jobmanager_pod(spec, owner, sz, 1, None, settings)),
            render_workload.PodSet("taskmanager", sz.taskmanagers,
                                   taskmanager_replicaset(spec, owner, sz, settings)["spec"]["template"])]


def service(spec: FlinkJarJobSpec, owner: Owner) -> dict[str, Any]:
    """The JobManager's Service: headless, as Flink's native Kubernetes mode makes its JobManager's,
    without a selector; the operator writes its Endpoints, the JobManager pods (render.endpoints
    says why). A Service an earlier operator made as a ClusterIP keeps it (the field is immutable;
    both work)."""
    names = Names.of(owner.name)
    return build_service(common.meta(names.service, owner, labels(spec, owner, "jobmanager-service")),
                         [("rpc", RPC_PORT), ("blob", BLOB_PORT), ("rest", REST_PORT)])


def rest_url(owner: Owner, settings: Settings) -> str:
    """Where the JobManager's REST API answers (LAKEJOB_FLINK_REST_URL_TEMPLATE), without a trailing /."""
    return settings.flink_rest_url_template.format(
        name=owner.name, namespace=owner.namespace, service=Names.of(owner.name).service).rstrip("/")
