"""Pure builders for a SparkSession: its driver is a Spark Connect server. No I/O.

Everything but the program is SparkBatch's (render.spark): the same properties, executor pod
template, conf files (annotations of the driver pod), RBAC and headless Service, with the driver running
`--class org.apache.spark.sql.connect.service.SparkConnectServer` (what start-connect-server.sh
runs; Spark's launcher supplies the `spark-internal` primary resource for this class) and the
gRPC port 15002 added to the pod and the Service. Spark 3.4/3.5 images do not ship the Connect
server in jars/, so for them the server's package is added to spark.jars.packages (as
start-connect-server.sh's `--packages` advice does); Spark 4 images have it.

The Connect server listens only after the SparkContext is up, which on Kubernetes includes waiting
for executors to register (up to spark.scheduler.maxRegisteredResourcesWaitingTime, 30 s): on a
real node its REST API answered 30-60 s before port 15002 did. So the driver container has a TCP
readiness probe on 15002 (the session is `idle` only once the driver is Ready), and the Service
publishes the driver while it is not Ready yet (the operator's REST poller reaches it by that name
during start-up). The Service has no selector: the operator writes its Endpoints
(render.endpoints).

Beside the driver runs the session's statement server (lakejob.repl: Livy's `sql` and `pyspark`
statements, attached to the Connect server in the pod): a native sidecar (an init container that
keeps running, so the pod still ends when the driver does) in the session's image, from the copy
of its source among the driver's conf files, on REPL_PORT of the pod and the Service. Its readiness
is part of the pod's: `idle` means both listen.

Called by controllers.sparksession (children, driver, URLs), controllers.sparksession_decide
(the connect URL it records in status) and gateway.livy_sessions (the statement server's Service).
"""
from __future__ import annotations

from typing import Any

from lakejob import repl, sizing
from lakejob.models.sparksession import SparkSessionSpec
from lakejob.render import common, spark
from lakejob.render.common import Owner
from lakejob.settings import Settings

KIND = "SparkSession"

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_PORT = 15002
REPL_PORT = 8999
REPL_PORT_NAME = "repl"
REPL_CONTAINER = "repl"
REPL_FILE = "lakejob-repl.py"  # the statement server's source, one of the driver's conf files
DRIVER_PORTS = (("spark-connect", CONNECT_PORT),)
SERVICE_PORTS = (*DRIVER_PORTS, (REPL_PORT_NAME, REPL_PORT))
READY_PERIOD_S = 3  # how soon after the Connect server listens the session turns idle (at most)
# The statement server holds a Python interpreter, the Connect client (pandas, pyarrow, gRPC) and
# results of at most SQL_MAX_ROWS rows or 1 MiB of text per statement.
REPL_RESOURCES = {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def spark_version(spec: SparkSessionSpec, settings: Settings) -> str:
    return spec.spark_version or settings.default_spark_version


def connect_package(version: str) -> str | None:
    """The Maven coordinates of the Connect server for a Spark 3.x version (Scala 2.12, as the
    apache/spark 3.x images), or None when the image ships it (Spark 4 and later)."""
    parts = version.split(".")
    if int(parts[0]) >= 4:
        return None
    full = version if len(parts) == 3 else f"{version}.0"
    return f"org.apache.spark:spark-connect_2.12:{full}"


def owned_properties(spec: SparkSessionSpec, settings: Settings) -> dict[str, str]:
    """The keys the Connect server needs on top of render.spark's: its port, its package on 3.x
    (kept in front of any packages the user lists in conf), and the UI on the Service's port: the
    operator reads idle/busy from its REST API, so a session's conf may not turn it off or move it."""
    out = {"spark.connect.grpc.binding.port": str(CONNECT_PORT),
           "spark.ui.enabled": "true", "spark.ui.port": str(spark.UI_PORT)}
    package = connect_package(spark_version(spec, settings))
    if package:
        user = (spec.conf or {}).get("spark.jars.packages", "").strip()
        out["spark.jars.packages"] = ",".join(p for p in (package, user) if p)
    return out


def properties(spec: SparkSessionSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings) -> dict[str, str]:
    return spark.properties(spec, owner, sizing_, attempt, settings, owned_properties(spec, settings))


def repl_container(spec: SparkSessionSpec, image: str, uid: int) -> dict[str, Any]:
    """The statement server: the session's image's Python runs the driver pod's copy of
    lakejob.repl.server, its statements' default kind the session's. Read-only root always (it
    writes nothing but Python's temporary files)."""
    _, container_sc = common.security_context(uid)
    return {
        "name": REPL_CONTAINER, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{spark.CONF_DIR}/{REPL_FILE}", "--port", str(REPL_PORT), "--kind", spec.kind,
                    "--remote", f"sc://localhost:{CONNECT_PORT}"],
        # Native sidecar: started before the driver, stopped after it, never holding the pod up.
        "restartPolicy": "Always",
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}, {"name": "HOME", "value": "/tmp"}],
        "ports": [{"name": REPL_PORT_NAME, "containerPort": REPL_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": REPL_PORT}, "periodSeconds": READY_PERIOD_S},
        "resources": REPL_RESOURCES,
        "volumeMounts": [{"name": "spark-conf", "mountPath": spark.CONF_DIR, "readOnly": True},
                         {"name": "lakejob-repl-tmp", "mountPath": "/tmp"}],
        "securityContext": {**container_sc, "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def driver_pod(spec: SparkSessionSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings, service_account: str) -> dict[str, Any]:
    files = {**spark.conf_files(spec, owner, sizing_, attempt, settings, owned_properties(spec, settings)),
             REPL_FILE: repl.SOURCE}
    pod = spark.spark_driver_pod(spec, owner, sizing_, attempt, settings, service_account,
                                 ["--class", CONNECT_SERVER_CLASS], files, DRIVER_PORTS)
    pod["metadata"]["annotations"]["lakejob.io/session-kind"] = spec.kind
    # Ready = the Connect server accepts connections (the kubelet connects; gRPC shrugs it off).
    (driver,) = [c for c in pod["spec"]["containers"] if c["name"] == spark.DRIVER_CONTAINER]
    driver["readinessProbe"] = {
        "tcpSocket": {"port": CONNECT_PORT}, "periodSeconds": READY_PERIOD_S, "failureThreshold": 3}
    pod["spec"].setdefault("initContainers", []).append(repl_container(spec, driver["image"], settings.spark_uid))
    pod["spec"]["volumes"].append({"name": "lakejob-repl-tmp", "emptyDir": {}})
    return pod


def service(spec: SparkSessionSpec, owner: Owner) -> dict[str, Any]:
    """The driver's headless Service for the session's clients: Spark's ports (UI/REST 4040), Spark
    Connect's and the statement server's, resolving to the driver before it is Ready."""
    return spark.driver_service(spec, owner, SERVICE_PORTS)


def service_name(name: str) -> str:
    """The name of the Service of the SparkSession `name`."""
    return spark.Names.of(name, KIND).service


def connect_url(name: str, namespace: str) -> str:
    """What a client passes to SparkSession.builder.remote(): the Service's DNS name and gRPC port."""
    return f"sc://{service_name(name)}.{namespace}.svc:{CONNECT_PORT}"


def rest_url(template: str, name: str, namespace: str, app: str) -> str:
    """The driver's Spark REST jobs URL from the operator's template (LAKEJOB_SPARK_REST_URL_TEMPLATE)."""
    return template.format(service=service_name(name), namespace=namespace, name=name, appId=app)
