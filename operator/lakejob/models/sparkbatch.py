"""SparkBatch: the DLI "create a batch processing job" request (and Livy's POST /batches) as a spec.

Field names are the vendors' own, so a DLI or Livy request body pasted under `spec:` is accepted.
What we add for Kubernetes is small and typed: `driver`/`executor` pod customisation, `suspend`
(the stop button), `schedulingTimeout`. The status mirrors DLI's response (Table 6/7).

Used by lakejob.crds (schema), lakejob.controllers.sparkbatch (parse + decide) and render.spark.
"""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from lakejob.models.common import Duration, StrList
from lakejob.models.rules import Rule
from lakejob.models.spark import ExecutorCounts as ExecutorCounts  # re-exported: parts of this kind's status
from lakejob.models.spark import ResolvedResources as ResolvedResources
from lakejob.models.spark import SparkAppSpec, SparkAppStatus

STATES = ("starting", "running", "recovering", "success", "dead", "killed")
TERMINAL_STATES = ("success", "dead", "killed")


def _is_python(file: str) -> bool:
    return file.lower().endswith(".py")


class SparkBatchSpec(SparkAppSpec):
    """A Spark batch job, as DLI's and Livy's batch APIs define it."""

    __rules__: ClassVar[tuple[Rule, ...]] = (
        Rule("has(self.className) || self.file.lowerAscii().endsWith('.py')",
             "className is required unless file is a Python file (.py)",
             lambda s: s.className is not None or _is_python(s.file), field="className"),
        *SparkAppSpec.__rules__,
    )
    # Every field but these is immutable once the job exists (enforced at admission by lakejob.crds).
    __mutable__: ClassVar[frozenset[str]] = frozenset({"suspend"})

    file: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="The application: a JAR or Python file (local:///path in the image, s3a://, obs://, https://).")
    className: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        None, description="Java/Scala main class. Required unless file is a Python file.")
    args: StrList | None = Field(None, description="Arguments of the main class.")
    suspend: bool | None = Field(
        None, description="Stop the job: true kills the running attempt and ends in state killed. It cannot be set back.",
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "self || !oldSelf", "message": "a stopped job stays stopped: suspend cannot go back to false"}]})
    schedulingTimeout: Duration | None = Field(
        None, description="How long a driver may wait to be scheduled and started (e.g. 3h, 10m, 90s) "
                          "before the job is dead. Default: the operator's (3h, as DLI).")

    @property
    def is_python(self) -> bool:
        return _is_python(self.file)


class SparkBatchStatus(SparkAppStatus):
    """What DLI's GET /batches/{id} returns, plus Kubernetes' conditions and the resolved resources."""

    state: Literal[STATES] | None = Field(  # type: ignore[valid-type]
        None, description="starting, running, recovering, success, dead, killed.")
    duration: int | None = Field(None, description="Running time of the job in ms (set when it ends).")
