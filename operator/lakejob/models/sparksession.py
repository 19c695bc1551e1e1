"""SparkSession: the DLI "create a session" request (and Livy's POST /sessions) as a spec.

A session is a long-lived Spark Connect server (gRPC, `sc://…:15002`) that clients attach to with
`SparkSession.builder.remote(status.connectUrl)`. The fields are the vendors' own (the DLI example
request pasted under `spec:` is accepted); sizing, image and pod customisation are SparkBatch's,
inherited from models.spark.SparkAppSpec. Kubernetes additions: `suspend` (stop the session) and
`schedulingTimeout`. The status mirrors DLI's session response (Table 3/4) plus `connectUrl`,
`lastActivityTime` and `idleSince`.

Used by lakejob.crds (schema), controllers.sparksession (parse), controllers.sparksession_decide
and render.sparksession.
"""
from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from lakejob.models.common import Duration
from lakejob.models.rules import Rule
from lakejob.models.spark import SparkAppSpec, SparkAppStatus, cel_regex

# DLI Table 4. `recovering` is a new driver after a failure (auto_recovery).
STATES = ("not_started", "starting", "idle", "busy", "shutting_down", "error", "dead", "success", "recovering")
TERMINAL_STATES = ("error", "dead", "success")

# Spark Connect exists from Spark 3.4 on (an RE2 regex, for CEL and Python alike).
SPARK_3_4_OR_LATER = r"^(3\.([4-9]|[1-9][0-9]+)|([4-9]|[1-9][0-9]+)\.[0-9]+)(\..*)?$"
HEARTBEAT_ANNOTATION = "lakejob.io/heartbeat"


class SparkSessionSpec(SparkAppSpec):
    """An interactive Spark session, as DLI's and Livy's session APIs define it."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("has(self.cluster_name) || has(self.queue)",
             "cluster_name is required (DLI requires it; queue is accepted as its synonym)",
             lambda s: s.cluster_name is not None or s.queue is not None, field="cluster_name"),
        Rule(f"!has(self.spark_version) || self.spark_version.matches('{cel_regex(SPARK_3_4_OR_LATER)}')",
             "a session is a Spark Connect server, which needs spark_version 3.4 or later",
             lambda s: s.spark_version is None or spark_at_least_3_4(s.spark_version), field="spark_version"),
        *SparkAppSpec.__rules__,
    )
    # Every field but these is immutable once the session exists (enforced at admission by lakejob.crds).
    __mutable__: ClassVar[frozenset[str]] = frozenset({"suspend", "heartbeatTimeoutInSecond"})

    kind: Literal["spark", "pyspark", "sql"] = Field(
        description="Session type (DLI: spark; Livy also pyspark and sql). Clients of every language attach to "
                    "the same Spark Connect server; pyspark sizes memory for Python (overhead factor 0.4).")
    heartbeatTimeoutInSecond: Annotated[int, Field(ge=0, le=31536000)] | None = Field(
        None, description="Idle timeout: a session idle for longer is shut down (state dead, reason IdleTimeout). "
                          "0 disables it. Default: the operator's. Activity (a running Spark job) and a changed "
                          f"{HEARTBEAT_ANNOTATION} annotation reset the clock. May be changed at any time.")
    suspend: bool | None = Field(
        None, description="Stop the session: true shuts it down (shutting_down, then success). It cannot be set back.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self || !oldSelf",
            "message": "a stopped session stays stopped: suspend cannot go back to false"}]})
    schedulingTimeout: Duration | None = Field(
        None, description="How long the driver may take to be scheduled and to answer on its REST API (e.g. 10m, "
                          "90s) before the session is in error. Default: the operator's (3h, as DLI).")

    @property
    def is_python(self) -> bool:
        return self.kind == "pyspark"


def spark_at_least_3_4(version: str) -> bool:
    return re.match(SPARK_3_4_OR_LATER, version) is not None


class SparkSessionStatus(SparkAppStatus):
    """What DLI's session API returns, plus Kubernetes' conditions, the resolved resources and the
    Spark Connect URL."""

    state: Literal[STATES] | None = Field(  # type: ignore[valid-type]
        None, description="not_started, starting, idle, busy, shutting_down, error, dead, success, recovering.")
    kind: str | None = Field(None, description="The session type asked for.")
    connectUrl: str | None = Field(
        None, description="sc://<service>.<namespace>.svc:15002, for SparkSession.builder.remote(url).")
    lastActivityTime: str | None = Field(
        None, description="Last activity seen: a Spark job submitted or finished, or a heartbeat (RFC 3339).")
    idleSince: str | None = Field(None, description="When the session last became idle (RFC 3339); unset when busy.")
    heartbeat: str | None = Field(None, description=f"The last {HEARTBEAT_ANNOTATION} annotation value seen.")
    runningJobs: int | None = Field(None, description="Spark jobs running at the last poll of the driver's REST API.")
