"""The real `lakejob-oss` console script, run as a subprocess against a real S3 API server on
loopback (moto's, in a thread of this process): fetch a .tar.gz package and folder/file
mappings, fail with one line naming a missing object, refuse archives that would write outside
their directory, and the upload sidecar: echo while running, upload under BatchCompute's names
on SIGTERM, try every upload before failing. The keys never appear in any output."""
from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

pytestmark = pytest.mark.timeout(120)

TOOL = Path(sys.executable).parent / "lakejob-oss"
KEY_ID, KEY_SECRET, TOKEN = "AKID-DO-NOT-PRINT", "SECRET-DO-NOT-PRINT", "TOKEN-DO-NOT-PRINT"
JOB = "job-0000000056A6E991000001780000000D"
_buckets = itertools.count()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=KEY_SECRET)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"lakejob-test-{next(_buckets)}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    """Only what the pod's containers get: no AWS_* variables, no ~/.aws."""
    assert TOOL.exists(), f"{TOOL} is missing: pip install -e '.[dev]'"
    return {"PATH": f"{TOOL.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "OSS_ENDPOINT": endpoint,
            "OSS_ADDRESSING_STYLE": "path", "OSS_ACCESS_KEY_ID": KEY_ID, "OSS_ACCESS_KEY_SECRET": KEY_SECRET,
            "OSS_SESSION_TOKEN": TOKEN}


def lakejob_oss(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(TOOL), *args], env=env, capture_output=True, text=True, timeout=60)
    assert_no_secrets(r.stdout + r.stderr)
    return r


def assert_no_secrets(text: str) -> None:
    for secret in (KEY_ID, KEY_SECRET, TOKEN):
        assert secret not in text


def tarball(members: list[tuple[str, bytes | str | None]]) -> bytes:
    """A .tar.gz: (name, bytes) a file, (name, "->target") a symbolic link, (name, None) a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- fetch


def test_fetch_unpacks_the_package_and_copies_folder_and_file_mappings(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path) -> None:
    package = tarball([("worker.py", b"print('hi')\n"), ("lib", None), ("lib/util.py", b"X = 1\n"),
                       ("./run.py", "->worker.py")])
    s3.put_object(Bucket=bucket, Key="tests/worker.tar.gz", Body=package)
    for key, body in (("in/", b""), ("in/a.txt", b"a"), ("in/sub/b.txt", b"b"), ("in-other/c.txt", b"c"),
                      ("t/dt=2024-01-01/part-0", b"p"), ("one.csv", b"1,2\n")):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    work, inputs = tmp_path / "work", tmp_path / "mnt"
    (inputs / "dir").mkdir(parents=True)
    r = lakejob_oss(env, "fetch", "--package", f"oss://{bucket}/tests/worker.tar.gz", "--into", str(work),
                    "--map", f"oss://{bucket}/in/={inputs}/in/",
                    "--map", f"oss://{bucket}/t/dt=2024-01-01/={inputs}/part/",
                    "--map", f"oss://{bucket}/one.csv={inputs}/renamed.csv",
                    "--map", f"oss://{bucket}/one.csv={inputs}/dir",
                    "--map", f"oss://{bucket}/one.csv={inputs}/new/")
    assert r.returncode == 0, r.stderr
    assert files(work) == {"worker.py": "print('hi')\n", "lib/util.py": "X = 1\n", "run.py": "print('hi')\n"}
    assert (work / "run.py").is_symlink()
    assert files(inputs) == {"in/a.txt": "a", "in/sub/b.txt": "b", "part/part-0": "p", "renamed.csv": "1,2\n",
                             "dir/one.csv": "1,2\n", "new/one.csv": "1,2\n"}
    assert f"oss://{bucket}/in/: 2 object(s) copied" in r.stderr


def test_fetch_of_a_missing_object_fails_with_one_line_naming_it(
        bucket: str, env: dict[str, str], tmp_path: Path) -> None:
    r = lakejob_oss(env, "fetch", "--package", f"oss://{bucket}/tests/missing.tar.gz", "--into", str(tmp_path / "w"))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"lakejob-oss: fetch failed: oss://{bucket}/tests/missing.tar.gz: NoSuchKey (The specified key does not exist.)"]
    assert os.listdir(tmp_path / "w") == []  # no partial download left behind
    for src in ("oss://no-such-bucket-x/a", "oss://no-such-bucket-x/folder/"):
        r = lakejob_oss(env, "fetch", "--into", str(tmp_path / "w"), "--map", f"{src}={tmp_path}/a")
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert r.stderr.startswith(f"lakejob-oss: fetch failed: {src}: NoSuchBucket")


def test_fetch_refuses_object_keys_and_packages_it_cannot_place(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="in/../../evil", Body=b"x")
    s3.put_object(Bucket=bucket, Key="plain.py", Body=b"print(1)")
    r = lakejob_oss(env, "fetch", "--into", str(tmp_path / "w"), "--map", f"oss://{bucket}/in/={tmp_path}/a/in/")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"lakejob-oss: fetch failed: oss://{bucket}/in/: refused: ../../evil: escapes {tmp_path}/a/in/"]
    assert not (tmp_path / "evil").exists()
    r = lakejob_oss(env, "fetch", "--package", f"oss://{bucket}/plain.py", "--into", str(tmp_path / "w"))
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"lakejob-oss: fetch failed: oss://{bucket}/plain.py: not a tar archive (BatchCompute packages are .tar.gz)"]
    assert os.listdir(tmp_path / "w") == []


@pytest.mark.parametrize(("member", "why"), [
    (("../evil", b"x"), "../evil: escapes the directory (..)"),
    (("/tmp/lakejob-evil-absolute", b"x"), "/tmp/lakejob-evil-absolute: absolute path"),
    (("up", "->../.."), "up: link pointing outside the directory (../..)"),
])
def test_fetch_refuses_a_package_that_would_write_outside(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path, member: tuple[str, bytes | str], why: str) -> None:
    s3.put_object(Bucket=bucket, Key="bad.tar.gz", Body=tarball([("ok.py", b"fine"), member]))
    work = tmp_path / "a" / "work"
    r = lakejob_oss(env, "fetch", "--package", f"oss://{bucket}/bad.tar.gz", "--into", str(work))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"lakejob-oss: fetch failed: oss://{bucket}/bad.tar.gz: refused, a member "
                                     f"would be written outside {work}: {why}"]
    # Nothing at all was unpacked: the check runs before the first member is written.
    assert os.listdir(work) == [] and not (tmp_path / "a" / "evil").exists()
    assert not Path("/tmp/lakejob-evil-absolute").exists()


def test_fetch_without_an_endpoint_says_which_variable(env: dict[str, str], tmp_path: Path) -> None:
    del env["OSS_ENDPOINT"]
    r = lakejob_oss(env, "fetch", "--package", "oss://b/p.tar.gz", "--into", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith("lakejob-oss: OSS_ENDPOINT is not set")


def test_fetch_reads_s3_paths_from_the_s3_store_with_its_own_variables(
        env: dict[str, str], s3: Any, bucket: str, tmp_path: Path) -> None:
    """s3:// mappings (what render.packages makes of DLI package names, obs:// and s3a:// paths) use
    the S3_* variables; no --into is needed without a package, and no OSS variable either."""
    s3.put_object(Bucket=bucket, Key="pkgs/batchTest/app.jar", Body=b"jar")
    s3_env = {k.replace("OSS_", "S3_"): v for k, v in env.items()}
    r = lakejob_oss(s3_env, "fetch", "--map", f"s3://{bucket}/pkgs/batchTest/app.jar={tmp_path}/p/app.jar")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "app.jar").read_bytes() == b"jar"
    r = lakejob_oss(s3_env, "fetch", "--map", f"s3://{bucket}/pkgs/missing.jar={tmp_path}/p/missing.jar")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"lakejob-oss: fetch failed: s3://{bucket}/pkgs/missing.jar: NoSuchKey (The specified key does not exist.)"]
    r = lakejob_oss(env, "fetch", "--map", f"s3://{bucket}/pkgs/batchTest/app.jar={tmp_path}/q")
    assert r.returncode == 2 and r.stderr.startswith("lakejob-oss: S3_ENDPOINT is not set")


# ----------------------------------------------------------------------------- upload


class Sidecar:
    """`lakejob-oss upload` running, its stdout and stderr collected as they come."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.proc = subprocess.Popen([str(TOOL), "upload", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out, self.err = bytearray(), bytearray()
        self._readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(stream: Any, into: bytearray) -> None:
        while chunk := stream.read1(4096):
            into.extend(chunk)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc.poll() is None, f"the sidecar exited: {self.err.decode()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; stderr: {self.err.decode()}"
            time.sleep(0.05)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        for t in self._readers:
            t.join(timeout=10)
        assert_no_secrets(self.out.decode() + self.err.decode())
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def sidecars() -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for s in started:
        s.kill()


def body(s3: Any, bucket: str, key: str) -> str:
    return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


def keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_upload_sidecar_echoes_then_uploads_under_batchcompute_names_on_sigterm(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path, sidecars: list[Sidecar]) -> None:
    out, outputs, logs = tmp_path / "out", tmp_path / "home" / "mount1", tmp_path / "var" / "log"
    out.mkdir()
    (outputs / "sub").mkdir(parents=True)
    logs.mkdir(parents=True)
    env["BATCH_COMPUTE_DAG_INSTANCE_ID"] = "3"  # as Kubernetes sets it: no --instance below
    sidecar = Sidecar(env, ["--job-id", JOB, "--task", "Echo",
                            "--stdout-to", f"oss://{bucket}/tests/logs/", "--stderr-to", f"oss://{bucket}/errs/",
                            "--output", f"{outputs}=oss://{bucket}/tmp/",
                            "--output", f"{tmp_path}/result.csv=oss://{bucket}/results/final.csv",
                            "--log", f"{logs}/output_log=oss://{bucket}/applogs/",
                            "--out-dir", str(out)])
    sidecars.append(sidecar)
    # The command starts once the sidecar's startupProbe sees this file (SIGTERM is handled by
    # then); its files appear later and are picked up then.
    sidecar.wait_for(lambda: (out / ".upload-ready").exists(), "the sidecar to be ready")
    with open(out / "stdout", "a") as stdout, open(out / "stderr", "a") as stderr:
        stdout.write("line 1\n")
        stdout.flush()
        stderr.write("warning 1\n")
        stderr.flush()
        sidecar.wait_for(lambda: b"line 1\n" in sidecar.out and b"warning 1\n" in sidecar.err, "the echo")
        # Written just before the command exits: still echoed and uploaded.
        stdout.write("line 2\n")
    (outputs / "a.txt").write_text("a")
    (outputs / "sub" / "b.txt").write_text("b")
    (tmp_path / "result.csv").write_text("1,2\n")
    (logs / "output_log").write_text("log line\n")
    assert keys(s3, bucket) == set()  # nothing is uploaded before SIGTERM

    assert sidecar.terminate() == 0, sidecar.err.decode()
    assert sidecar.out.decode() == "line 1\nline 2\n"
    assert keys(s3, bucket) == {f"tests/logs/stdout.{JOB}.Echo.3", f"errs/stderr.{JOB}.Echo.3",
                                "tmp/a.txt", "tmp/sub/b.txt", "results/final.csv",
                                f"applogs/output_log.{JOB}.Echo.3"}
    assert body(s3, bucket, f"tests/logs/stdout.{JOB}.Echo.3") == "line 1\nline 2\n"
    assert body(s3, bucket, f"errs/stderr.{JOB}.Echo.3") == "warning 1\n"
    assert body(s3, bucket, "tmp/sub/b.txt") == "b" and body(s3, bucket, "results/final.csv") == "1,2\n"
    assert body(s3, bucket, f"applogs/output_log.{JOB}.Echo.3") == "log line\n"
    assert f"lakejob-oss: uploaded {out}/stdout -> oss://{bucket}/tests/logs/stdout.{JOB}.Echo.3" in sidecar.err.decode()


def test_upload_tries_everything_and_then_fails_naming_each_path(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path, sidecars: list[Sidecar]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stdout").write_text("done\n")
    (tmp_path / "r.csv").write_text("r")
    sidecar = Sidecar(env, ["--job-id", JOB, "--task", "T", "--instance", "0",
                            "--output", f"{tmp_path}/r.csv=oss://no-such-bucket-y/r.csv",
                            "--log", f"{tmp_path}/never-written.log=oss://{bucket}/logs/",
                            "--stdout-to", f"oss://{bucket}/logs/", "--stderr-to", f"oss://{bucket}/logs/",
                            "--out-dir", str(out)])
    sidecars.append(sidecar)
    sidecar.wait_for(lambda: b"done\n" in sidecar.out, "the echo")
    assert sidecar.terminate() == 1
    failures = [line for line in sidecar.err.decode().splitlines() if "upload failed" in line]
    assert failures == [
        f"lakejob-oss: upload failed: {tmp_path}/r.csv -> oss://no-such-bucket-y/r.csv: NoSuchBucket "
        "(The specified bucket does not exist)",
        f"lakejob-oss: upload failed: {tmp_path}/never-written.log -> oss://{bucket}/logs/: no such file or directory"]
    # stdout was uploaded all the same; stderr was never written (the command wrote none): skipped.
    assert keys(s3, bucket) == {f"logs/stdout.{JOB}.T.0"}
    assert f"no {out}/stderr" in sidecar.err.decode()


def test_upload_needs_the_instance(env: dict[str, str], tmp_path: Path) -> None:
    r = lakejob_oss(env, "upload", "--job-id", JOB, "--task", "T", "--out-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["lakejob-oss: upload: give --instance N or set BATCH_COMPUTE_DAG_INSTANCE_ID"]


def test_the_image_installs_lakejob_oss_with_its_extra() -> None:
    """render.dag runs `lakejob-oss` from the operator's image: its wheel goes in with [oss] (boto3)
    and the venv's bin is on PATH (the pods give a bare command name)."""
    import dockerfile  # type: ignore[import-untyped]

    commands = dockerfile.parse_file(str(Path(__file__).resolve().parents[2] / "Dockerfile"))
    runs = [" ".join(c.value) for c in commands if c.cmd.upper() == "RUN"]
    assert any("pip install" in r and "[oss]" in r and ".whl" in r for r in runs), runs
    env = [" ".join(c.value) for c in commands if c.cmd.upper() == "ENV"]
    assert any("PATH /opt/lakejob/bin:" in e for e in env), env
    assert any("/opt/lakejob" in r and "venv" in r for r in runs)


def test_a_command_that_ends_at_once_still_has_its_output_uploaded(
        s3: Any, bucket: str, env: dict[str, str], tmp_path: Path, sidecars: list[Sidecar]) -> None:
    """SIGTERM as soon as the startupProbe passes (the command took no time): the handler is in
    place by then, so the sidecar uploads instead of dying."""
    out = tmp_path / "out"
    sidecar = Sidecar({**env, "BATCH_COMPUTE_DAG_INSTANCE_ID": "0"},
                      ["--job-id", JOB, "--task", "T", "--stdout-to", f"oss://{bucket}/logs/", "--out-dir", str(out)])
    sidecars.append(sidecar)
    sidecar.wait_for(lambda: (out / ".upload-ready").exists(), "the sidecar to be ready")
    (out / "stdout").write_text("done\n")
    assert sidecar.terminate() == 0, sidecar.err.decode()
    assert body(s3, bucket, f"logs/stdout.{JOB}.T.0") == "done\n"
