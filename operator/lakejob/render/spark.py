"""Pure builders: a Spark spec → the manifests the operator creates. No I/O.

Called by lakejob.controllers.sparkbatch and controllers.spark_driver, and by render.sparksession,
which builds a SparkSession's objects from the same pieces (the functions take any
models.spark.SparkAppSpec; what the driver runs and which extra ports it serves are parameters).
Spark-native: the driver pod runs the image's entrypoint as Spark's own Kubernetes submission would
(`driver --properties-file … --class … <file> <args>`), with `spark.kubernetes.submitInDriver`
so the driver creates its executors from our pod template through the API, as the ServiceAccount
we give it. Names are deterministic (≤ 63 characters, hash suffix for long names), so every create
is idempotent, and every object carries `lakejob.io/*` labels and an ownerReference to the CR.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any

from lakejob import sizing
from lakejob.models.spark import SparkAppSpec
from lakejob.models.sparkbatch import SparkBatchSpec
from lakejob.render import common, packages
from lakejob.render.common import Owner
from lakejob.render.endpoints import build_service
from lakejob.settings import Settings

DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
UI_PORT = 4040
CONF_DIR = "/opt/spark/conf"
PROPERTIES_FILE = f"{CONF_DIR}/spark.properties"
EXECUTOR_TEMPLATE_FILE = f"{CONF_DIR}/executor-pod-template.yaml"
# The driver's files in CONF_DIR (spark.properties, the executor pod template, a kind's own) are
# annotations of its pod under this prefix, which a downwardAPI volume projects: no ConfigMap to
# write per job (one apiserver write fewer), and each attempt's pod carries its own.
CONF_ANNOTATION_PREFIX = "conf.lakejob.io/"
LOCAL_DIR = "/var/data/spark-local"
WORK_DIR = "/opt/spark/work-dir"  # the apache/spark images' working directory (and the spark user's HOME in ours)
# With a read-only root file system, the emptyDirs where Spark writes besides its local dir:
# java.io.tmpdir (JVM perf data, spark-submit's and Hadoop's temporary files, s3a buffers, the older
# official entrypoint's /tmp/java_opts.txt) and the working directory (executors fetch spark.jars and
# spark.files into it and put it on their classpath; the SQL warehouse and Ivy's cache go there).
WRITABLE_DIRS = {"lakejob-tmp": "/tmp", "lakejob-work-dir": WORK_DIR}
DRIVER_CONTAINER = "spark-kubernetes-driver"
EXECUTOR_CONTAINER = "spark-kubernetes-executor"

# Keys the user's conf cannot move: they wire the driver to its pod, Service and template, or they
# size the pods (the typed fields driverMemory/executorCores/… and sc_type decide those, so the JVM
# never gets a heap larger than its container). `properties()` sets exactly these last.
OWNED_CONF_KEYS = frozenset({
    "spark.master", "spark.submit.deployMode", "spark.kubernetes.namespace", "spark.kubernetes.driver.pod.name",
    "spark.driver.host", "spark.driver.port", "spark.driver.blockManager.port", "spark.app.id",
    "spark.kubernetes.submitInDriver", "spark.kubernetes.executor.podTemplateFile",
    "spark.kubernetes.executor.podTemplateContainerName", "spark.kubernetes.executor.podNamePrefix",
    "spark.driver.cores", "spark.driver.memory", "spark.driver.memoryOverhead", "spark.executor.instances",
    "spark.executor.cores", "spark.executor.memory", "spark.executor.memoryOverhead",
})
# Not owned: spark.kubernetes.{driver,executor}.request.cores (a CPU request below the whole cores
# Spark plans with; validated at admission, docs/sparkbatch.md).


@dataclass(frozen=True)
class Words:
    """The words a Spark kind puts in its children's names. SparkBatch and SparkSession differ in
    the token before each name's last one, so a batch and a session of the same name (or of names
    that are each other's prefix) never share a child (tests/unit/test_names.py)."""

    driver: str  # <base>-<driver>-<attempt> (pod), <base>-<driver>-svc (Service)
    rbac: str  # <base>-<rbac> (ServiceAccount, Role, RoleBinding)
    executor: str  # executors: <base>-<executor><attempt>-exec-<id>


WORDS = {"SparkBatch": Words("driver", "spark", "a"),
         "SparkSession": Words("session", "session-sa", "s")}


@dataclass(frozen=True)
class Names(common.ChildNames):
    """Every child's name, from the CR's name and kind only."""

    words: Words = WORDS["SparkBatch"]

    @classmethod
    def of(cls, cr_name: str, kind: str = "SparkBatch") -> Names:
        return cls(common.short_name(cr_name), WORDS[kind])

    @classmethod
    def of_owner(cls, owner: Owner) -> Names:
        return cls.of(owner.name, owner.kind)

    def driver_pod(self, attempt: int) -> str:
        return f"{self.base}-{self.words.driver}-{attempt}"

    @property
    def service(self) -> str:
        return f"{self.base}-{self.words.driver}-svc"

    @property
    def rbac(self) -> str:
        return f"{self.base}-{self.words.rbac}"

    def executor_prefix(self, attempt: int) -> str:
        return f"{self.base}-{self.words.executor}{attempt}"


def app_id(uid: str, attempt: int) -> str:
    """A Spark application ID per attempt (`spark-` + 32 hex, Spark's own shape), stable across restarts."""
    return "spark-" + common.attempt_hash(uid, attempt)


def labels(owner: Owner, names: Names, role: str, queue: str | None) -> dict[str, str]:
    return common.labels(owner, names.base, role, queue)


class NoImage(common.Unrenderable):
    """No image for the spec's spark_version in the operator's settings; the message says which."""


def image_for(spec: SparkAppSpec, settings: Settings) -> str:
    if spec.feature == "custom" and spec.image:
        return spec.image
    version = spec.spark_version or settings.default_spark_version
    image = settings.spark_image(version)
    if image is None:
        known = ", ".join(sorted(settings.spark_images)) or "none"
        raise NoImage(f"spark_version: {version} has no image: the operator's LAKEJOB_SPARK_IMAGES (chart "
                      f"spark.images) names {known}, and LAKEJOB_SPARK_IMAGE_TEMPLATE (spark.imageTemplate) is empty")
    return image


@dataclass(frozen=True)
class Files:
    """A Spark spec's files as the driver is given them (local paths where they are fetched), and
    the fetches (render.packages). DLI's `resources` and `groups` join the lists of their type."""

    jars: list[str]
    files: list[str]
    py_files: list[str]
    archives: list[str]
    fetches: list[packages.Fetch]


# A DLI resource's type → the Spark list it joins (DLI: jar, pyFile, file, modelFile).
RESOURCE_LISTS = {"jar": "jars", "pyFile": "pyFiles", "pyfile": "pyFiles", "file": "files", "modelFile": "files"}


def files_of(spec: SparkAppSpec, settings: Settings) -> Files:
    """packages.PackageError naming the field when a reference cannot be resolved."""
    lists: dict[str, list[tuple[str, str]]] = {"jars": [], "files": [], "pyFiles": [], "archives": []}
    for name in lists:
        lists[name] = [(f"{name}[{i}]", ref) for i, ref in enumerate(getattr(spec, name) or [])]
    named = [(f"resources[{i}]", r.name or "", r.type) for i, r in enumerate(spec.resources or [])]
    named += [(f"groups[{g}].resources[{i}]", f"{group.name}/{r.name}" if group.name else r.name or "", r.type)
              for g, group in enumerate(spec.groups or []) for i, r in enumerate(group.resources or [])]
    for where, ref, type_ in named:
        target = RESOURCE_LISTS.get(type_ or "jar")
        if target is None:
            raise packages.PackageError(f"{where}.type: {type_!r} is not a DLI resource type "
                                        f"({', '.join(sorted(set(RESOURCE_LISTS)))})")
        lists[target].append((where, ref))
    given: dict[str, list[str]] = {}
    fetches: list[packages.Fetch] = []
    for name, refs in lists.items():
        given[name] = []
        for where, ref in refs:
            # spark.archives takes `file.zip#alias`: the alias names the unpacked directory.
            ref, hash_, alias = ref.partition("#") if name == "archives" else (ref, "", "")
            path, fetch = packages.locate(ref, where, settings)
            given[name].append(path + hash_ + alias)
            fetches += [fetch] if fetch is not None else []
    return Files(given["jars"], given["files"], given["pyFiles"], given["archives"], fetches)


def problem(spec: SparkAppSpec, settings: Settings, main_file: str | None = None) -> tuple[str, str] | None:
    """(reason, message) when the operator cannot run `spec` with these settings: no image for its
    spark_version (NoImage), a file it names that cannot be resolved (InvalidPackage). Else None."""
    try:
        image_for(spec, settings)
    except NoImage as e:
        return "NoImage", str(e)
    try:
        if main_file is not None:
            packages.locate(main_file, "file", settings)
        files_of(spec, settings)
    except packages.PackageError as e:
        return "InvalidPackage", str(e)
    return None


def read_only_root(spec: SparkAppSpec) -> bool:
    """Whether the driver and executors run with a read-only root file system: with the operator's
    images (the apache/spark layout, whose entrypoint and Spark write only to WRITABLE_DIRS and the
    local dir), not with a custom image, which may keep its application in the working directory
    (an emptyDir there would hide it) or write anywhere else."""
    return not (spec.feature == "custom" and spec.image)


def queue_of(spec: SparkAppSpec) -> str | None:
    return (spec.queue or spec.cluster_name or "").strip() or None


# ------------------------------------------------------------------------------------ properties


# spark.driver.host, as the driver's argument: its own pod IP, from the env var the entrypoint also
# binds to ($(VAR) in args is expanded by the kubelet).
DRIVER_HOST = "$(SPARK_DRIVER_BIND_ADDRESS)"


def properties(spec: SparkAppSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings, owned_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The driver's spark.properties: ours, then the user's conf, then the keys we must own
    (plus `owned_extra`, the keys a kind's driver program needs, e.g. the Connect server's port)."""
    names = Names.of_owner(owner)
    ours: dict[str, str] = {
        "spark.app.name": spec.name or owner.name,
        "spark.kubernetes.container.image": image_for(spec, settings),
        "spark.dynamicAllocation.enabled": "false",
        # Polling with a resourceVersion keeps the driver's executor LISTs off etcd (the Kubeflow
        # benchmark's 600 ms API latency came from these LISTs).
        "spark.kubernetes.executor.enablePollingWithResourceVersion": "true",
        # Spark's 10 s for the driver's Kubernetes client to connect and answer: a busy node or
        # apiserver (several JVMs starting at once) exceeded it and the driver died at start.
        "spark.kubernetes.driver.connectionTimeout": "30000",
        "spark.kubernetes.driver.requestTimeout": "30000",
        "spark.ui.port": str(UI_PORT),
        "spark.local.dir": LOCAL_DIR,
        "spark.kubernetes.executor.request.cores": settings.spark_request_cores or str(sizing_.executor_cores),
    }
    files = files_of(spec, settings)
    for key, values in (("spark.jars", files.jars), ("spark.files", files.files),
                        ("spark.submit.pyFiles", files.py_files), ("spark.archives", files.archives)):
        if values:
            ours[key] = ",".join(values)
    if spec.obs_bucket:
        ours["spark.eventLog.enabled"] = "true"
        ours["spark.eventLog.dir"] = f"s3a://{spec.obs_bucket}/spark-events"
    if spec.proxyUser:
        ours["spark.kubernetes.driverEnv.HADOOP_USER_NAME"] = spec.proxyUser
        ours["spark.executorEnv.HADOOP_USER_NAME"] = spec.proxyUser
    if spec.catalog_name:
        ours["lakejob.catalog"] = spec.catalog_name
    owned = {
        "spark.master": "k8s://https://kubernetes.default.svc:443",
        "spark.submit.deployMode": "cluster",
        "spark.kubernetes.namespace": owner.namespace,
        "spark.kubernetes.submitInDriver": "true",
        "spark.kubernetes.driver.pod.name": names.driver_pod(attempt),
        "spark.app.id": app_id(owner.uid, attempt),
        "spark.driver.port": str(DRIVER_PORT),
        "spark.driver.blockManager.port": str(BLOCK_MANAGER_PORT),
        "spark.kubernetes.executor.podTemplateFile": EXECUTOR_TEMPLATE_FILE,
        "spark.kubernetes.executor.podTemplateContainerName": EXECUTOR_CONTAINER,
        "spark.kubernetes.executor.podNamePrefix": names.executor_prefix(attempt),
        "spark.driver.cores": str(sizing_.driver_cores),
        "spark.driver.memory": sizing.spark_memory(sizing_.driver_memory_mib),
        "spark.driver.memoryOverhead": sizing.spark_memory(sizing_.driver_overhead_mib),
        "spark.executor.instances": str(sizing_.num_executors),
        "spark.executor.cores": str(sizing_.executor_cores),
        "spark.executor.memory": sizing.spark_memory(sizing_.executor_memory_mib),
        "spark.executor.memoryOverhead": sizing.spark_memory(sizing_.executor_overhead_mib),
    }
    merged = {**ours, **(spec.conf or {}), **owned, **(owned_extra or {})}
    merged.pop("spark.driver.host", None)  # DRIVER_HOST, the driver's argument: no other value anywhere
    return dict(sorted(merged.items()))


def batch_conf(spec: SparkBatchSpec, settings: Settings) -> dict[str, str]:
    """The keys Spark's own submission adds for a SparkBatch, which the operator stands in for: a
    JVM application's primary jar joins spark.jars, so that the executors load its classes (the
    driver's spark-submit, told by spark.kubernetes.submitInDriver that the submission already
    happened, leaves spark.jars as it finds it)."""
    if spec.is_python:
        return {}
    jars = [j.strip() for j in (spec.conf or {}).get("spark.jars", "").split(",") if j.strip()]
    jars += [*files_of(spec, settings).jars, packages.locate(spec.file, "file", settings)[0]]
    return {"spark.jars": ",".join(dict.fromkeys(jars))}


def _escape(text: str, key: bool) -> str:
    """Escape for java.util.Properties, which Spark's --properties-file reader uses."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
        if out[:1] in ("#", "!"):  # else the whole line is a comment to java.util.Properties
            out = "\\" + out
    elif out.startswith(" "):
        out = "\\" + out
    return out


def properties_text(props: Mapping[str, str]) -> str:
    return "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in props.items())


# ------------------------------------------------------------------------------------ pods


def executor_template(spec: SparkAppSpec, owner: Owner, settings: Settings) -> dict[str, Any]:
    """The pod template Spark's driver starts every executor from."""
    pod_sc, container_sc = common.security_context(settings.spark_uid)
    container: dict[str, Any] = {"name": EXECUTOR_CONTAINER, "securityContext": container_sc}
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"labels": labels(owner, Names.of_owner(owner), "executor", queue_of(spec))},
        "spec": {"enableServiceLinks": False, "securityContext": pod_sc, "containers": [container]},
    }
    common.customize(pod, container, spec.executor)
    common.place(pod, settings)
    if read_only_root(spec):
        common.read_only_root(pod, [container], WRITABLE_DIRS)
        container["workingDir"] = WORK_DIR
    return pod


def executor_pod(spec: SparkAppSpec, owner: Owner, sizing_: sizing.SparkSizing, settings: Settings) -> dict[str, Any]:
    """An executor as the pod the driver will make of the template: its image and the requests Spark
    adds (the conf's request.cores, else whole cores; heap plus overhead). What a Kueue Workload counts."""
    pod = executor_template(spec, owner, settings)
    memory = sizing.k8s_quantity_mib(sizing_.executor_pod_memory_mib)
    container = next(c for c in pod["spec"]["containers"] if c["name"] == EXECUTOR_CONTAINER)
    container["image"] = image_for(spec, settings)
    container["resources"] = {"requests": {"cpu": sizing.request_cpu(spec.conf or {}, "executor", sizing_.executor_cores,
                                                                     settings.spark_request_cores),
                                           "memory": memory},
                              "limits": {"memory": memory}}
    return pod


def driver_pod(spec: SparkBatchSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings, service_account: str) -> dict[str, Any]:
    """A SparkBatch's driver: its main class (JVM files only) and its file with its arguments."""
    main = ["--class", spec.className] if spec.className and not spec.is_python else []
    file, fetch = packages.locate(spec.file, "file", settings)
    files = conf_files(spec, owner, sizing_, attempt, settings, batch_conf(spec, settings))
    return spark_driver_pod(spec, owner, sizing_, attempt, settings, service_account,
                            [*main, file, *(spec.args or [])], files, fetches=[fetch] if fetch else [])


def spark_driver_pod(spec: SparkAppSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
                     settings: Settings, service_account: str, main: Sequence[str], files: Mapping[str, str],
                     ports: Sequence[tuple[str, int]] = (), fetches: Sequence[packages.Fetch] = ()) -> dict[str, Any]:
    """The driver pod of any Spark kind: `driver --properties-file … <main>`, serving `ports` besides
    Spark's own (RPC, block manager, UI), with `files` (name → text; conf_files' and a kind's own) in
    CONF_DIR. A `fetch` init container first puts the files the spec names (and `fetches`, e.g. a
    batch's main file) into the pod (render.packages). Raises common.ObjectTooLarge when the files
    exceed what a pod's annotations may hold."""
    names = Names.of_owner(owner)
    app = app_id(owner.uid, attempt)
    pod_sc, container_sc = common.security_context(settings.spark_uid)
    # Executors reach the driver at its pod IP (the kubelet puts SPARK_DRIVER_BIND_ADDRESS, the pod's
    # status.podIP, into the argument): no Service per job, so no Service and EndpointSlice writes.
    args = ["driver", "--properties-file", PROPERTIES_FILE, "--conf", f"spark.driver.host={DRIVER_HOST}", *main]
    memory = sizing.k8s_quantity_mib(sizing_.driver_pod_memory_mib)
    env = [
        {"name": "SPARK_USER", "value": spec.proxyUser or "spark"},
        {"name": "SPARK_APPLICATION_ID", "value": app},
        {"name": "SPARK_DRIVER_BIND_ADDRESS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SPARK_LOCAL_DIRS", "value": LOCAL_DIR},
        {"name": "SPARK_CONF_DIR", "value": CONF_DIR},
    ]
    container: dict[str, Any] = {
        "name": DRIVER_CONTAINER,
        "image": image_for(spec, settings),
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": env,
        "ports": [{"name": "driver-rpc-port", "containerPort": DRIVER_PORT, "protocol": "TCP"},
                  {"name": "blockmanager", "containerPort": BLOCK_MANAGER_PORT, "protocol": "TCP"},
                  {"name": "spark-ui", "containerPort": UI_PORT, "protocol": "TCP"},
                  *({"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports)],
        # Spark itself sets the memory limit equal to the request: the JVM heap plus overhead.
        "resources": {"requests": {"cpu": sizing.request_cpu(spec.conf or {}, "driver", sizing_.driver_cores,
                                                             settings.spark_request_cores),
                                   "memory": memory},
                      "limits": {"memory": memory}},
        "volumeMounts": [{"name": "spark-conf", "mountPath": CONF_DIR},
                         {"name": "spark-local-dir", "mountPath": LOCAL_DIR}],
        "securityContext": container_sc,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    driver_labels = {**labels(owner, names, "driver", queue_of(spec)),
                     "lakejob.io/attempt": str(attempt), "spark-app-selector": app, "spark-role": "driver"}
    annotations = {"lakejob.io/attempt": str(attempt),
                   **{CONF_ANNOTATION_PREFIX + name: text for name, text in files.items()}}
    if spec.modules:
        annotations["lakejob.io/modules"] = ",".join(spec.modules)
    if spec.execution_agency_urn:
        annotations["lakejob.io/execution-agency-urn"] = spec.execution_agency_urn
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": names.driver_pod(attempt), "namespace": owner.namespace, "labels": driver_labels,
                     "annotations": annotations, "ownerReferences": [owner.reference()]},
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "serviceAccountName": service_account,
            "securityContext": pod_sc,
            "containers": [container],
            "volumes": [{"name": "spark-conf", "downwardAPI": {"items": [
                            {"path": name, "fieldRef": {"fieldPath": f"metadata.annotations['{CONF_ANNOTATION_PREFIX}{name}']"}}
                            for name in files]}},
                        {"name": "spark-local-dir", "emptyDir": {}}],
        },
    }
    common.customize(pod, container, spec.driver)
    common.place(pod, settings)
    if read_only_root(spec):
        common.read_only_root(pod, [container], WRITABLE_DIRS)
        container["workingDir"] = WORK_DIR
    packages.add_to_pod(pod, [container], packages.fetcher(
        [*files_of(spec, settings).fetches, *fetches], settings, settings.spark_uid, container_sc))
    return common.check_annotations_size(pod, FILLED_BY)


# ------------------------------------------------------------------------------------ the rest


# What fills a driver's conf files, for the refusal when they are too large.
FILLED_BY = ("the Spark properties (spec.conf, jars, files, pyFiles, archives) and the executor pod template "
             "(spec.executor)")


def conf_files(spec: SparkAppSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings, owned_extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The driver's spark.properties and executor pod template (their names are the attempt's: driver
    pod, executor prefix)."""
    return {
        "spark.properties": properties_text(properties(spec, owner, sizing_, attempt, settings, owned_extra)),
        # JSON is YAML (Spark's client reads it as such) and is ten times cheaper to write.
        "executor-pod-template.yaml": json.dumps(executor_template(spec, owner, settings), sort_keys=True),
    }


def driver_service(spec: SparkAppSpec, owner: Owner, ports: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:
    """A headless Service to a driver's ports (Spark's, plus `ports`), for the clients of a kind that
    has them (SparkSession's); executors use the driver's pod IP (DRIVER_HOST). No selector: the
    operator writes its Endpoints, the driver pods of any attempt (render.endpoints says why)."""
    names = Names.of_owner(owner)
    return build_service(common.meta(names.service, owner, labels(owner, names, "driver-service", queue_of(spec))),
                         [("driver-rpc-port", DRIVER_PORT), ("blockmanager", BLOCK_MANAGER_PORT),
                          ("spark-ui", UI_PORT), *ports])


# What Spark's driver does through the API: executor pods, their ConfigMap, on-demand PVCs, Services.
DRIVER_RULES = [
    {"apiGroups": [""], "resources": ["pods"],
     "verbs": ["create", "get", "list", "watch", "delete", "deletecollection", "patch"]},
    {"apiGroups": [""], "resources": ["configmaps", "persistentvolumeclaims", "services"],
     "verbs": ["create", "get", "list", "watch", "delete", "deletecollection"]},
]


SHARED_DRIVER_ACCOUNT = "lakejob-spark-driver"


def _rbac(name: str, namespace: str, meta_extra: dict[str, Any]) -> list[dict[str, Any]]:
    meta = {"name": name, "namespace": namespace, **meta_extra}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": DRIVER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
    ]


def driver_rbac(spec: SparkAppSpec, owner: Owner) -> list[dict[str, Any]]:
    """ServiceAccount + Role + RoleBinding for one job's driver, owned by the CR (the GC removes them)."""
    names = Names.of_owner(owner)
    meta = common.meta(names.rbac, owner, labels(owner, names, "rbac", queue_of(spec)))
    return _rbac(names.rbac, owner.namespace, {k: v for k, v in meta.items() if k not in ("name", "namespace")})


def shared_driver_rbac(namespace: str) -> list[dict[str, Any]]:
    """The namespace-wide alternative (LAKEJOB_DRIVER_RBAC=per-namespace): one account for every
    driver in the namespace, owned by nobody, so bursts cost three fewer writes per job."""
    return _rbac(SHARED_DRIVER_ACCOUNT, namespace,
                 {"labels": {"app.kubernetes.io/managed-by": "lakejob", "lakejob.io/role": "rbac"}})
