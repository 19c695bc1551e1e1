"""Pure rules of lakejob-oss: oss:// and s3:// paths, which object key a local file is uploaded to, where
a downloaded object lands, BatchCompute's names for uploaded logs, and which archive members or
object keys would write outside their directory. No I/O: lakejob.oss.fetch and lakejob.oss.upload
walk the file system and call the S3 API, and ask these functions what to do.

BatchCompute's rules, as its API reference states them:
- an oss:// path is a folder iff it ends with `/`, otherwise a file;
- a LogMapping upload is named `{local log file name}.{JobId}.{TaskId}.{InstanceId}` in the OSS
  folder (`output_log.job-0000000056A6E991000001780000000D.Echo.0`); stdout and stderr go to
  StdoutRedirectPath / StderrRedirectPath as `stdout.{JobId}.{TaskId}.{InstanceId}` and
  `stderr.{…}`;
- OutputMapping: a local directory (or file) → an OSS folder (or file); InputMapping: an OSS
  folder (or file) → a local directory (or file).
"""
from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

SCHEME = "oss://"
# The stores a fetch reads from: Alibaba OSS (oss://, BatchCompute's) and any other store that
# speaks the S3 API (s3://: Huawei OBS, AWS S3, MinIO…; render.packages maps obs:// and s3a:// to it),
# and Azure Blob (blob://CONTAINER@ACCOUNT/KEY: render.packages's form of wasb:// and abfs://).
# Uploads (BatchCompute's OutputMapping and logs) go to OSS only.
FETCH_SCHEMES = ("oss", "s3", "blob")
STREAMS = ("stdout", "stderr")
Stream = Literal["stdout", "stderr"]


class PathError(ValueError):
    """A path or mapping that cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class OSSPath:
    bucket: str
    key: str  # "" is the bucket's root
    scheme: str = "oss"  # which store: one of FETCH_SCHEMES

    @property
    def is_folder(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"


def parse(uri: str, schemes: tuple[str, ...] = ("oss",)) -> OSSPath:
    """`oss://bucket/key` (or another of `schemes`) → OSSPath. The bucket must be followed by `/`
    (BatchCompute's form)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in schemes:
        raise PathError(f"{uri}: not an {' or '.join(s + '://' for s in schemes)} path")
    bucket, slash, key = rest.partition("/")
    if not bucket or not slash:
        raise PathError(f"{uri}: expected {scheme}://BUCKET/KEY")
    if scheme == "blob" and not all(bucket.partition("@")[::2]):
        raise PathError(f"{uri}: expected blob://CONTAINER@ACCOUNT/KEY")
    return OSSPath(bucket, key, scheme)


def fetch_mapping(text: str) -> tuple[OSSPath, str]:
    """`--map oss://…=/local` (or s3://…) → (source, local path). Split at the first `=/`: object keys often
    hold `=` (Hive partitions: `dt=2024-01-01/`) but hardly ever a segment ending in `=`, and the
    local side is absolute (admission requires it)."""
    src, sep, dst = text.partition("=/")
    if not sep:
        raise PathError(f"{text}: expected REMOTE=LOCAL with an absolute local path")
    return parse(src, FETCH_SCHEMES), "/" + dst


def upload_mapping(text: str) -> tuple[str, OSSPath]:
    """`--output /local=oss://…` (and `--log`) → (local path, destination)."""
    src, sep, dst = text.partition("=" + SCHEME)
    if not sep or not src:
        raise PathError(f"{text}: expected LOCAL=oss://BUCKET/KEY")
    return src, parse(SCHEME + dst)


# ----------------------------------------------------------------------------- uploads


def instance_suffix(job_id: str, task: str, instance: str) -> str:
    """What BatchCompute appends to an instance's uploaded log names."""
    return f".{job_id}.{task}.{instance}"


def stream_key(stream: Stream, dest: OSSPath, job_id: str, task: str, instance: str) -> str:
    """The object key of an instance's stdout or stderr: `{stream}.{JobId}.{TaskId}.{InstanceId}`
    in the StdoutRedirectPath / StderrRedirectPath folder."""
    name = stream + instance_suffix(job_id, task, instance)
    return dest.key + name if dest.is_folder else dest.key


def upload_plan(local: str, dest: OSSPath, files: Iterable[str] | None, suffix: str = "") -> list[tuple[str, str]]:
    """(local file, object key) pairs for uploading `local` to `dest`.

    `files` is None when `local` is a file, else the files found under the directory `local`
    (paths relative to it). A file goes into a folder under its base name, or becomes a file
    destination's key; a directory's files keep their paths relative to it under the folder (a
    file destination is taken as a folder of that name: a directory cannot be one object).
    `suffix` is added to every name made inside a folder (LogMapping: instance_suffix).
    """
    if files is None:
        key = dest.key + posixpath.basename(local) + suffix if dest.is_folder else dest.key
        return [(local, key)]
    prefix = dest.key if dest.is_folder else dest.key + "/"
    return [(posixpath.join(local, rel), prefix + rel + suffix) for rel in sorted(files)]


# ----------------------------------------------------------------------------- downloads


def safe_join(root: str, relative: str) -> str:
    """`root/relative`, refused (PathError) when `relative` is absolute or climbs out of root with
    `..`: object keys and archive members are chosen by whoever wrote the bucket."""
    if relative.startswith("/"):
        raise PathError(f"{relative}: absolute path, refused under {root}")
    joined = posixpath.normpath(posixpath.join(root, relative))
    base = posixpath.normpath(root)
    if joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise PathError(f"{relative}: escapes {root}")
    return joined


def file_target(src: OSSPath, local: str, local_is_dir: bool) -> str:
    """Where an OSS file lands: `local` itself, or inside it under the object's base name when
    `local` is an existing directory or ends with `/`."""
    if local.endswith("/") or local_is_dir:
        return safe_join(local, posixpath.basename(src.key))
    return local


def folder_plan(src: OSSPath, local: str, keys: Iterable[str]) -> list[tuple[str, str]]:
    """(object key, local file) for every object listed under the folder `src`, keeping its path
    relative to the folder under `local`. Keys ending in `/` are folder markers (consoles create
    them) and make no file."""
    plan = []
    for key in sorted(keys):
        relative = key[len(src.key):]
        if not key.startswith(src.key) or not relative or relative.endswith("/"):
            continue
        plan.append((key, safe_join(local, relative)))
    return plan


# ----------------------------------------------------------------------------- archives

MemberKind = Literal["file", "dir", "symlink", "hardlink", "special"]


@dataclass(frozen=True)
class Member:
    name: str
    kind: MemberKind
    target: str = ""  # of a link


def member(info: tarfile.TarInfo) -> Member:
    if info.issym():
        return Member(info.name, "symlink", info.linkname)
    if info.islnk():
        return Member(info.name, "hardlink", info.linkname)
    if info.isdir():
        return Member(info.name, "dir")
    if info.isfile():
        return Member(info.name, "file")
    return Member(info.name, "special")


def _walk(start: list[str], path: str, links: frozenset[str]) -> tuple[list[str] | None, str | None]:
    """Follow `path` component by component from the directory `start` (parts under the root):
    (the resulting parts, None); (None, None) when it climbs above the root; (None, the link)
    when it goes through one of `links` before its last component. Textual only, hence the last
    rule: a link's target would change what a `..` after it means."""
    parts = list(start)
    components = [c for c in path.split("/") if c not in ("", ".")]
    for i, c in enumerate(components):
        if c == "..":
            if not parts:
                return None, None
            parts.pop()
            continue
        parts.append(c)
        if i < len(components) - 1 and "/".join(parts) in links:
            return None, "/".join(parts)
    return parts, None


def archive_problem(members: Iterable[Member]) -> str | None:
    """Why unpacking these members could write outside the directory (one line naming the
    member), or None. Refused: absolute names, names climbing out with `..`, members inside a
    symbolic link of the archive, links to absolute paths or out of the directory (or through
    another link), and device files and FIFOs."""
    members = list(members)
    links = frozenset(posixpath.normpath(m.name) for m in members if m.kind == "symlink")
    for m in members:
        if m.name.startswith("/"):
            return f"{m.name}: absolute path"
        parts, via = _walk([], m.name, links)
        if via:
            return f"{m.name}: inside the link {via}"
        if parts is None:
            return f"{m.name}: escapes the directory (..)"
        if m.kind == "special":
            return f"{m.name}: device or FIFO"
        if m.kind in ("symlink", "hardlink"):
            if m.target.startswith("/"):
                return f"{m.name}: link to the absolute path {m.target}"
            # A symbolic link is relative to its own directory, a hard link to the archive's root.
            start = parts[:-1] if m.kind == "symlink" else []
            resolved, via = _walk(start, m.target, links)
            if via:
                return f"{m.name}: link through the link {via}"
            if resolved is None:
                return f"{m.name}: link pointing outside the directory ({m.target})"
    return None
