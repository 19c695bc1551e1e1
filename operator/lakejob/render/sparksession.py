"""Pure builders for a SparkSession: its driver is a Spark Connect server. No I/O.

Everything but the program is SparkBatch's (render.spark): the same properties, executor pod
template, ConfigMap, RBAC and headless Service, with the driver running
`--class org.apache.spark.sql.connect.service.SparkConnectServer` (what start-connect-server.sh
runs; Spark's launcher supplies the `spark-internal` primary resource for this class) and the
gRPC port 15002 added to the pod and the Service. Spark 3.4/3.5 images do not ship the Connect
server in jars/, so for them the server's package is added to spark.jars.packages (as
start-connect-server.sh's `--packages` advice does); Spark 4 images have it.

The Connect server listens only after the SparkContext is up, which on Kubernetes includes waiting
for executors to register (up to spark.scheduler.maxRegisteredResourcesWaitingTime, 30 s): on a
real node its REST API answered 30-60 s before port 15002 did. So the driver container has a TCP
readiness probe on 15002 (the session is `idle` only once the driver is Ready), and the Service
publishes the driver while it is not Ready yet (executors reach it by that name during start-up).

Called by controllers.sparksession (children, driver, URLs) and controllers.sparksession_decide
(the connect URL it records in status).
"""
from __future__ import annotations

from typing import Any

from lakejob import sizing
from lakejob.models.sparksession import SparkSessionSpec
from lakejob.render import spark
from lakejob.render.common import Owner
from lakejob.settings import Settings

KIND = "SparkSession"

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
CONNECT_PORT = 15002
PORTS = (("spark-connect", CONNECT_PORT),)
READY_PERIOD_S = 3  # how soon after the Connect server listens the session turns idle (at most)


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


def configmap(spec: SparkSessionSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
              settings: Settings) -> dict[str, Any]:
    return spark.configmap(spec, owner, sizing_, attempt, settings, owned_properties(spec, settings))


def driver_pod(spec: SparkSessionSpec, owner: Owner, sizing_: sizing.SparkSizing, attempt: int,
               settings: Settings, service_account: str) -> dict[str, Any]:
    pod = spark.spark_driver_pod(spec, owner, sizing_, attempt, settings, service_account,
                                 ["--class", CONNECT_SERVER_CLASS], PORTS)
    pod["metadata"]["annotations"]["lakejob.io/session-kind"] = spec.kind
    # Ready = the Connect server accepts connections (the kubelet connects; gRPC shrugs it off).
    (driver,) = [c for c in pod["spec"]["containers"] if c["name"] == spark.DRIVER_CONTAINER]
    driver["readinessProbe"] = {
        "tcpSocket": {"port": CONNECT_PORT}, "periodSeconds": READY_PERIOD_S, "failureThreshold": 3}
    return pod


def service(spec: SparkSessionSpec, owner: Owner) -> dict[str, Any]:
    """The driver's headless Service: Spark's ports (executors, UI/REST 4040) and Spark Connect's,
    resolving to the driver before it is Ready (its executors register before it listens on 15002)."""
    svc = spark.driver_service(spec, owner, PORTS)
    svc["spec"]["publishNotReadyAddresses"] = True
    return svc


def connect_url(name: str, namespace: str) -> str:
    """What a client passes to SparkSession.builder.remote(): the Service's DNS name and gRPC port."""
    return f"sc://{spark.Names.of(name, KIND).service}.{namespace}.svc:{CONNECT_PORT}"


def rest_url(template: str, name: str, namespace: str, app: str) -> str:
    """The driver's Spark REST jobs URL from the operator's template (LAKEJOB_SPARK_REST_URL_TEMPLATE)."""
    return template.format(service=spark.Names.of(name, KIND).service, namespace=namespace, name=name, appId=app)
