"""The gateway's callers (lakejob.gateway.identity): the keys file (errors name the field, never a
secret; re-read when it changes), Livy's basic auth, bearer tokens, and the headers that make every
Kubernetes call the caller's."""
from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest
import yaml

from lakejob.gateway import identity

SECRET = "pw-do-not-print"
KEYS = {"livy": [{"user": "etl", "password": SECRET, "as": {"user": "livy:etl", "groups": ["a", "b"],
                                                             "namespace": "team-a"}}]}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_livy_key_is_its_identity_impersonated_with_every_group() -> None:
    keys = identity.parse_keys(yaml.safe_dump(KEYS))
    caller = identity.basic_caller(basic("etl", SECRET), keys)
    assert caller.namespace == "team-a" and str(caller) == "user livy:etl"
    assert list(caller.headers()) == [("Impersonate-User", "livy:etl"), ("Impersonate-Group", "a"),
                                      ("Impersonate-Group", "b")]


@pytest.mark.parametrize("header", [basic("etl", "wrong"), basic("nobody", SECRET), basic("etl", ""),
                                    "Basic !!!", "Basic", basic("etl" + SECRET, "")])
def test_anything_but_the_right_user_and_password_is_refused(header: str) -> None:
    keys = identity.parse_keys(yaml.safe_dump(KEYS))
    with pytest.raises(identity.Unauthenticated) as e:
        identity.basic_caller(header, keys)
    assert SECRET not in str(e.value)


def test_a_bearer_token_is_passed_through_as_it_is() -> None:
    caller = identity.bearer_caller("Bearer abc.def")
    assert list(caller.headers()) == [("Authorization", "Bearer abc.def")] and caller.namespace is None
    with pytest.raises(identity.Unauthenticated):
        identity.bearer_caller("Bearer ")


@pytest.mark.parametrize(("text", "words"), [
    ("livy: [{user: etl, password: x}]", "livy.0.as: Field required"),
    ("dli: [{accessKey: k, secretKey: " + SECRET + ", as: {user: ''}}]", "dli.0.as.user"),
    ("livy: [{user: etl, password: " + SECRET + ", as: {user: u}, role: admin}]", "livy.0.role"),
    ("kerberos: []", "kerberos"),
    ("livy: [", "not YAML"),
])
def test_a_broken_keys_file_is_refused_naming_the_field_and_never_a_secret(text: str, words: str) -> None:
    with pytest.raises(ValueError) as e:
        identity.parse_keys(text, "keys.yaml")
    assert words in str(e.value) and str(e.value).startswith("keys.yaml: ") and SECRET not in str(e.value)


def test_the_keys_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(KEYS))
    keys = identity.KeysFile(str(path))
    assert identity.basic_caller(basic("etl", SECRET), keys.keys())
    path.write_text(yaml.safe_dump({"livy": []}))  # the key revoked
    later = time.time() + 5
    os.utime(path, (later, later))
    with pytest.raises(identity.Unauthenticated):
        identity.basic_caller(basic("etl", SECRET), keys.keys())
