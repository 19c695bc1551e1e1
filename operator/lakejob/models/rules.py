"""Cross-field admission rules, written once and enforced twice.

Each Rule carries a CEL expression (lakejob.crds puts it into the CRD's
`x-kubernetes-validations`, so `kubectl apply` rejects a bad object) and the same check
in Python (the models run it, so the operator rejects an object that bypassed admission
with the identical message). Models list their rules in `__rules__`; `checked()` is the
pydantic model validator that runs them.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    check: Callable[[Any], bool]
    field: str | None = None  # reported as the CEL fieldPath, so errors name the field
    # Optional message built from the object (CEL messageExpression + the same text in Python), for
    # rules whose failure is best explained with the object's own numbers (FlinkJarJob's CU arithmetic).
    message_expression: str | None = None
    explain: Callable[[Any], str] | None = None

    def schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        if self.field:
            out["fieldPath"] = f".{self.field}"
            out["reason"] = "FieldValueInvalid"
        return out

    def text(self, model: Any) -> str:
        return self.explain(model) if self.explain else self.message


def run_rules(model: BaseModel) -> None:
    """Raise ValueError with every broken rule's message (the operator reports them all at once)."""
    broken = [r.text(model) for r in getattr(type(model), "__rules__", ()) if not r.check(model)]
    if broken:
        raise ValueError("; ".join(broken))


# A Spark version at or above 3.3, as an RE2 regex for CEL and Python alike.
SPARK_3_3_OR_LATER = r"^(3\.([3-9]|[1-9][0-9]+)|([4-9]|[1-9][0-9]+)\.[0-9]+)(\..*)?$"


def spark_at_least_3_3(version: str | None) -> bool:
    return version is not None and re.match(SPARK_3_3_OR_LATER, version) is not None
