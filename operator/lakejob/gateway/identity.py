"""Who a gateway caller is, and how the gateway acts as them on the Kubernetes API.

Two kinds of callers:
- a Kubernetes bearer token (`Authorization: Bearer …`): passed through to the apiserver, which
  authenticates it and applies the token's RBAC; the gateway never looks inside it;
- a vendor credential (Livy's basic auth, DLI's AK/SK signature, BatchCompute's AccessKey
  signature), checked against the keys file (KEYS_FILE, a Secret mounted into the gateway's pod),
  where every key names the Kubernetes identity it stands for; the gateway then impersonates that
  identity (Impersonate-User / Impersonate-Group), so the apiserver applies that identity's RBAC.

No credential grants anything by itself: a request with none, or with one the file does not hold,
is refused before any Kubernetes call, and every call is made as the caller (never as the
gateway's own ServiceAccount), so a caller can do exactly what its identity may do with `kubectl`.

The keys file (YAML), one list per API:

    livy:          # HTTP basic auth
      - {user: etl, password: "…", as: {user: "etl@team-a", groups: [team-a], namespace: team-a}}
    dli:           # huaweicloudsdkcore's AK/SK; projects: project_id → namespace (else the same name)
      - {accessKey: "…", secretKey: "…", as: {user: "dli-bot", projects: {48cc2c48765f481480c7db940d6409d1: team-a}}}
    batchcompute:  # Alibaba's AccessKey
      - {accessKeyId: "…", accessKeySecret: "…", as: {user: "bc-bot", groups: [team-b]}}

`as.namespace` is the caller's default namespace (Livy's paths name none); `as.projects` maps DLI
project ids to namespaces (a project id not listed is the namespace of that name). Called by
lakejob.gateway.server (its authentication middleware); pure apart from reading the file.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lakejob.gateway import signing

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"


class Unauthenticated(Exception):
    """No usable credential; the message says what was wrong, never a secret."""


class AsIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, description="The Kubernetes user name impersonated for this key.")
    groups: list[str] = Field(default_factory=list)
    namespace: str | None = Field(None, description="Default namespace (Livy's paths name none).")
    projects: dict[str, str] = Field(default_factory=dict, description=(
        "DLI project_id → namespace, for this key; a project_id not listed is the namespace of that name."))


class LivyKey(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    user: str
    password: str = Field(repr=False)
    as_: AsIdentity = Field(alias="as")


class DliKey(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    accessKey: str
    secretKey: str = Field(repr=False)
    as_: AsIdentity = Field(alias="as")


class BatchComputeKey(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    accessKeyId: str
    accessKeySecret: str = Field(repr=False)
    as_: AsIdentity = Field(alias="as")


class Keys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    livy: list[LivyKey] = Field(default_factory=list)
    dli: list[DliKey] = Field(default_factory=list)
    batchcompute: list[BatchComputeKey] = Field(default_factory=list)

    def dli_secret(self, access_key: str) -> str | None:
        return next((k.secretKey for k in self.dli if k.accessKey == access_key), None)

    def dli_identity(self, access_key: str) -> AsIdentity:
        return next(k.as_ for k in self.dli if k.accessKey == access_key)

    def batchcompute_secret(self, key_id: str) -> str | None:
        return next((k.accessKeySecret for k in self.batchcompute if k.accessKeyId == key_id), None)

    def batchcompute_identity(self, key_id: str) -> AsIdentity:
        return next(k.as_ for k in self.batchcompute if k.accessKeyId == key_id)


@dataclass(frozen=True)
class Caller:
    """Whom the gateway acts as: a bearer token passed through, or an impersonated identity."""

    token: str | None = None
    identity: AsIdentity | None = None

    @property
    def namespace(self) -> str | None:
        return self.identity.namespace if self.identity else None

    def project_namespace(self, project_id: str) -> str:
        """The namespace of a DLI project: the key's map, else the namespace named as the project."""
        return self.identity.projects.get(project_id, project_id) if self.identity else project_id

    def headers(self) -> Sequence[tuple[str, str]]:
        """What goes over the gateway's own credentials on every Kubernetes request it makes for
        this caller (lakejob.kube.Kube.request's `headers`)."""
        if self.token is not None:
            return [("Authorization", f"Bearer {self.token}")]
        assert self.identity is not None
        return [(IMPERSONATE_USER, self.identity.user), *((IMPERSONATE_GROUP, g) for g in self.identity.groups)]

    def __str__(self) -> str:
        return f"user {self.identity.user}" if self.identity else "a bearer token"


class KeysFile:
    """The keys file, read again whenever it changes on disk (the kubelet updates a mounted Secret
    in place), so a key is added or revoked without a restart."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._keys = Keys()

    def keys(self) -> Keys:
        if self.path is None:
            return self._keys
        st = os.stat(self.path)
        if (st.st_mtime, st.st_size) != self._stamp:
            self._keys = parse_keys(open(self.path, encoding="utf-8").read(), self.path)
            self._stamp = (st.st_mtime, st.st_size)
        return self._keys


def parse_keys(text: str, where: str = "the keys file") -> Keys:
    """The keys file's content; ValueError naming the field that is wrong (never a secret)."""
    try:
        data: Any = yaml.safe_load(text) or {}
        return Keys.model_validate(data)
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not YAML: {str(e).splitlines()[0]}") from None
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{where}: {loc}: {first['msg']}") from None


def basic_caller(header: str, keys: Keys) -> Caller:
    """`Authorization: Basic …` checked against the Livy keys."""
    try:
        user, sep, password = base64.b64decode(header.split(None, 1)[1], validate=True).decode().partition(":")
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed basic credentials") from None
    for key in keys.livy:
        # Both compared in constant time, so timing tells neither which users exist nor the password.
        if hmac.compare_digest(key.user.encode(), user.encode()) & hmac.compare_digest(
                key.password.encode(), password.encode()) and sep:
            return Caller(identity=key.as_)
    raise Unauthenticated("unknown user or wrong password")


def signed_caller(req: signing.SignedRequest, keys: Keys, now: datetime) -> Caller:
    """A request signed the DLI way (huaweicloudsdkcore's AK/SK) or the BatchCompute way (Alibaba's
    AccessKey), checked against that API's keys (lakejob.gateway.signing)."""
    header = next((v for k, v in req.headers.items() if k.lower() == "authorization"), "")
    try:
        if header.startswith(signing.BATCHCOMPUTE_PREFIX):
            key = signing.verify_batchcompute(req, keys.batchcompute_secret, now)
            return Caller(identity=keys.batchcompute_identity(key))
        key = signing.verify_dli(req, keys.dli_secret, now)
        return Caller(identity=keys.dli_identity(key))
    except signing.SignatureError as e:
        raise Unauthenticated(str(e)) from None


def bearer_caller(header: str) -> Caller:
    token = header.split(None, 1)[1].strip() if len(header.split(None, 1)) == 2 else ""
    if not token:
        raise Unauthenticated("empty bearer token")
    return Caller(token=token)
