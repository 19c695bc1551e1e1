"""lakejob.credentials: which loader serves which credentials, and that the common cases never need
kubernetes_asyncio (whose import the operator avoids: ~50 MiB)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from lakejob import credentials


def kubeconfig(path: Path, user: dict[str, Any], name: str = "me") -> Path:
    path.write_text(yaml.safe_dump({
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": name}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": name, "user": user}]}))
    return path


@pytest.fixture(autouse=True)
def outside_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", tmp_path / "no-service-account")


def test_a_token_kubeconfig_is_read_by_kopfs_plain_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", {"token": "t0k"})))
    assert not credentials.needs_client_library()
    info = asyncio_run(credentials.connection_info())
    assert (info.server, info.token, info.insecure) == ("https://10.0.0.1:6443", "t0k", True)


def test_exec_and_auth_provider_users_need_the_client_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "a", {"exec": {"command": "aws"}})))
    assert credentials.needs_client_library()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "b", {"auth-provider": {"name": "gcp"}})))
    assert credentials.needs_client_library()


def test_the_first_kubeconfig_naming_a_user_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "first", {"token": "a"})
    second = kubeconfig(tmp_path / "second", {"exec": {"command": "x"}})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)]))
    assert credentials.kubeconfig_user() == {"token": "a"}


def test_in_a_pod_the_service_account_at_the_service_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("sa-token")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    # an exec kubeconfig lying around in the pod does not matter
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", {"exec": {"command": "aws"}})))
    monkeypatch.setattr(kopf, "login_with_service_account",
                        lambda **_: kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="sa-token"))
    assert not credentials.needs_client_library()
    info = asyncio_run(credentials.connection_info())
    assert (info.server, info.token) == ("https://10.96.0.1:443", "sa-token")


def test_no_credentials_at_all_is_a_login_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(kopf.LoginError, match="no Kubernetes credentials"):
        asyncio_run(credentials.connection_info())


def test_the_operator_command_never_imports_the_client_library(tmp_path: Path) -> None:
    """What `lakejob run` does before kopf: with token credentials, importing the operator loads
    no kubernetes_asyncio module (kopf would import it, ~50 MiB)."""
    config = kubeconfig(tmp_path / "config", {"token": "t"})
    code = ("import sys; from lakejob import cli; cli._without_client_library(); import lakejob.operator; "
            "print(sorted(m for m in sys.modules if m.startswith('kubernetes_asyncio') and sys.modules[m]))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "KUBECONFIG": str(config)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def asyncio_run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)
