"""lakejob.oss.paths and the pure parts of lakejob.oss.client: oss:// paths, mappings,
BatchCompute's upload names, where downloads land, which archives are refused, the
configuration from the environment and the one-line reasons of failed calls."""
from __future__ import annotations

import io
import tarfile

import pytest
from botocore.exceptions import ClientError

from lakejob.oss import client, paths
from lakejob.oss.paths import Member, OSSPath

JOB = "job-0000000056A6E991000001780000000D"


@pytest.mark.parametrize(("uri", "bucket", "key", "folder"), [
    ("oss://bucket/tmp/", "bucket", "tmp/", True),
    ("oss://bucket/tests/worker.tar.gz", "bucket", "tests/worker.tar.gz", False),
    ("oss://bucket/", "bucket", "", True),
    ("oss://bucket/t/dt=2024-01-01/part-0", "bucket", "t/dt=2024-01-01/part-0", False),
])
def test_parse(uri: str, bucket: str, key: str, folder: bool) -> None:
    p = paths.parse(uri)
    assert (p.bucket, p.key, p.is_folder) == (bucket, key, folder)
    assert str(p) == uri


@pytest.mark.parametrize(("uri", "message"), [
    ("s3://bucket/x", "s3://bucket/x: not an oss:// path"),
    ("/local/x", "/local/x: not an oss:// path"),
    ("oss://bucket", "oss://bucket: expected oss://BUCKET/KEY"),
    ("oss:///key", "oss:///key: expected oss://BUCKET/KEY"),
])
def test_parse_rejects_naming_the_path(uri: str, message: str) -> None:
    with pytest.raises(paths.PathError) as e:
        paths.parse(uri)
    assert str(e.value) == message


def test_mappings_split_where_the_other_side_starts() -> None:
    assert paths.fetch_mapping("oss://b/in/=/data/in/") == (OSSPath("b", "in/"), "/data/in/")
    # Hive partitions keep their `=`; the local side is the absolute path after the first `=/`.
    assert paths.fetch_mapping("oss://b/t/dt=2024-01-01/=/data/t/") == (OSSPath("b", "t/dt=2024-01-01/"), "/data/t/")
    assert paths.upload_mapping("/data/k=v/out=oss://b/out/") == ("/data/k=v/out", OSSPath("b", "out/"))
    for bad, call in (("oss://b/in/", paths.fetch_mapping), ("oss://b/in/=data", paths.fetch_mapping),
                      ("/data/out", paths.upload_mapping), ("=oss://b/x", paths.upload_mapping)):
        with pytest.raises(paths.PathError, match="expected"):
            call(bad)


def test_batchcompute_names_of_logs_stdout_and_stderr() -> None:
    # The seed's example: output_log.job-0000000056A6E991000001780000000D.Echo.0
    suffix = paths.instance_suffix(JOB, "Echo", "0")
    assert paths.upload_plan("/home/admin/output_log", OSSPath("b", "logs/"), None, suffix) == [
        ("/home/admin/output_log", f"logs/output_log.{JOB}.Echo.0")]
    assert paths.stream_key("stdout", OSSPath("b", "tests/logs/"), JOB, "Echo", "0") == f"tests/logs/stdout.{JOB}.Echo.0"
    assert paths.stream_key("stderr", OSSPath("b", ""), JOB, "taskA", "12") == f"stderr.{JOB}.taskA.12"
    # A file destination (not admitted for these, but not lost either) is the key itself.
    assert paths.stream_key("stdout", OSSPath("b", "one/file"), JOB, "Echo", "0") == "one/file"


def test_upload_plan_file_and_directory() -> None:
    assert paths.upload_plan("/data/a.csv", OSSPath("b", "out/"), None) == [("/data/a.csv", "out/a.csv")]
    assert paths.upload_plan("/data/a.csv", OSSPath("b", "out/renamed.csv"), None) == [
        ("/data/a.csv", "out/renamed.csv")]
    # A directory: recursively, keys relative to it (sorted, so the order is stable).
    assert paths.upload_plan("/home/mount1", OSSPath("b", "tmp/"), ["z.txt", "sub/a.txt"]) == [
        ("/home/mount1/sub/a.txt", "tmp/sub/a.txt"), ("/home/mount1/z.txt", "tmp/z.txt")]
    # ... into a file destination: a folder of that name (a directory cannot be one object).
    assert paths.upload_plan("/d", OSSPath("b", "out"), ["x"]) == [("/d/x", "out/x")]
    # A log directory: every file named as a log.
    assert paths.upload_plan("/logs", OSSPath("b", "l/"), ["a.log"], ".J.T.1") == [("/logs/a.log", "l/a.log.J.T.1")]
    assert paths.upload_plan("/empty", OSSPath("b", "l/"), []) == []


def test_where_a_downloaded_file_lands() -> None:
    src = OSSPath("b", "in/one.csv")
    assert paths.file_target(src, "/data/x.csv", local_is_dir=False) == "/data/x.csv"
    assert paths.file_target(src, "/data/", local_is_dir=False) == "/data/one.csv"
    assert paths.file_target(src, "/data", local_is_dir=True) == "/data/one.csv"


def test_a_folder_downloads_recursively_without_folder_markers() -> None:
    keys = ["in/", "in/a.txt", "in/sub/", "in/sub/b.txt", "inx/not-under"]
    assert paths.folder_plan(OSSPath("b", "in/"), "/home/mount1/", keys) == [
        ("in/a.txt", "/home/mount1/a.txt"), ("in/sub/b.txt", "/home/mount1/sub/b.txt")]
    assert paths.folder_plan(OSSPath("b", ""), "/d", ["x", "y/z"]) == [("x", "/d/x"), ("y/z", "/d/y/z")]


def test_object_keys_cannot_climb_out_of_the_local_directory() -> None:
    with pytest.raises(paths.PathError, match=r"\.\./\.\./etc/passwd: escapes /data/in"):
        paths.folder_plan(OSSPath("b", "in/"), "/data/in", ["in/../../etc/passwd"])
    with pytest.raises(paths.PathError, match="absolute path"):
        paths.safe_join("/data", "/etc/passwd")
    assert paths.safe_join("/data", "a/../b") == "/data/b"
    assert paths.safe_join("/", "x") == "/x"
    with pytest.raises(paths.PathError):
        paths.safe_join("/data/in", "../inside-sibling")  # a sibling sharing the prefix is still outside


@pytest.mark.parametrize(("members", "problem"), [
    ([Member("worker.py", "file"), Member("lib", "dir"), Member("lib/m.py", "file")], None),
    ([Member("./a/./b.py", "file")], None),
    ([Member("/etc/cron.d/x", "file")], "/etc/cron.d/x: absolute path"),
    ([Member("../evil", "file")], "../evil: escapes the directory (..)"),
    ([Member("a/../../evil", "file")], "a/../../evil: escapes the directory (..)"),
    ([Member("ok", "symlink", "lib/m.py"), Member("lib/up", "symlink", "../x")], None),
    ([Member("l", "symlink", "/etc/passwd")], "l: link to the absolute path /etc/passwd"),
    ([Member("lib/l", "symlink", "../../x")], "lib/l: link pointing outside the directory (../../x)"),
    ([Member("h", "hardlink", "../x")], "h: link pointing outside the directory (../x)"),
    ([Member("h", "hardlink", "/etc/shadow")], "h: link to the absolute path /etc/shadow"),
    # A file written through a link of the archive could land anywhere the link points later.
    ([Member("d", "symlink", "."), Member("d/x", "file")], "d/x: inside the link d"),
    # `d/..` is not `.` when d is a link: refused rather than guessed.
    ([Member("d", "symlink", "sub"), Member("e", "symlink", "d/../..")], "e: link through the link d"),
    ([Member("e", "symlink", "d/.."), Member("d", "symlink", ".")], "e: link through the link d"),
    ([Member("dev", "special")], "dev: device or FIFO"),
])
def test_archive_members_that_would_escape_are_refused(members: list[Member], problem: str | None) -> None:
    assert paths.archive_problem(members) == problem


def test_tar_members_are_classified() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, target in (("f", tarfile.REGTYPE, ""), ("d", tarfile.DIRTYPE, ""),
                                   ("s", tarfile.SYMTYPE, "f"), ("h", tarfile.LNKTYPE, "f"),
                                   ("p", tarfile.FIFOTYPE, "")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        assert [paths.member(m) for m in tar.getmembers()] == [
            Member("f", "file"), Member("d", "dir"), Member("s", "symlink", "f"), Member("h", "hardlink", "f"),
            Member("p", "special")]


# ----------------------------------------------------------------------------- client: configuration, reasons


def test_configuration_from_the_environment() -> None:
    c = client.config_from_env({"OSS_ENDPOINT": "oss-cn-hangzhou.aliyuncs.com", "OSS_ACCESS_KEY_ID": "AKID",
                                "OSS_ACCESS_KEY_SECRET": "SEKRIT", "OSS_SESSION_TOKEN": "TOKEN"})
    assert c.endpoint == "https://oss-cn-hangzhou.aliyuncs.com" and c.addressing_style == "virtual"
    assert (c.access_key_id, c.access_key_secret, c.session_token, c.region) == ("AKID", "SEKRIT", "TOKEN", None)
    assert not any(secret in repr(c) for secret in ("AKID", "SEKRIT", "TOKEN"))
    c = client.config_from_env({"OSS_ENDPOINT": "http://127.0.0.1:9000/", "OSS_ADDRESSING_STYLE": "path",
                                "OSS_REGION": "oss-cn-hangzhou"})
    assert (c.endpoint, c.addressing_style, c.region, c.access_key_id) == (
        "http://127.0.0.1:9000", "path", "oss-cn-hangzhou", None)


@pytest.mark.parametrize(("env", "message"), [
    ({}, "OSS_ENDPOINT is not set"),
    ({"OSS_ENDPOINT": "  "}, "OSS_ENDPOINT is not set"),
    ({"OSS_ENDPOINT": "x", "OSS_ADDRESSING_STYLE": "vhost"}, "OSS_ADDRESSING_STYLE='vhost': must be one of virtual"),
    ({"OSS_ENDPOINT": "x", "OSS_ACCESS_KEY_ID": "AKID"}, "give both or neither"),
])
def test_unusable_configuration_is_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(client.ConfigError) as e:
        client.config_from_env(env)
    assert message in str(e.value) and "\n" not in str(e.value) and "AKID" not in str(e.value)


def _client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


def test_reasons_name_the_service_code() -> None:
    assert client.reason(_client_error("NoSuchKey", "The specified key does not exist.")) == \
        "NoSuchKey (The specified key does not exist.)"
    assert client.reason(_client_error("AccessDenied", "AccessDenied")) == "AccessDenied"
    assert client.reason(_client_error("404")) == "NoSuchKey" and client.reason(_client_error("403")) == "AccessDenied"
    # boto3's transfer layer raises its own error while handling the service's: found inside.
    try:
        try:
            raise _client_error("NoSuchBucket", "The specified bucket does not exist")
        except ClientError:
            raise RuntimeError("Failed to upload x to b/k: An error occurred ...\nmore")
    except RuntimeError as wrapped:
        assert client.reason(wrapped) == "NoSuchBucket (The specified bucket does not exist)"
    assert client.reason(OSError("disk full\nsecond line")) == "OSError: disk full"
    assert client.reason(KeyError()) == "KeyError"
