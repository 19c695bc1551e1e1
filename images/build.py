#!/usr/bin/env python3
"""Build lakejob's container images on this machine, without a Docker engine or a registry, and
load them into a containerd; every image is cached as a tar named by the hash of its inputs.

Who calls it: developers and the Makefile (`make images`: `python3 images/build.py build`), the e2e
tests (`names`, for the references), and hack/cluster/cluster.py, which imports this file
(`sys.path.insert(0, images_dir); import build`) and calls load() to put the images into the real
node's containerd. Standard library only: it runs before the project's virtualenv exists.

    python3 images/build.py build [NAME...]          build (default: all), skip what is up to date
    python3 images/build.py build --out DIR [NAME...]
                                                     and copy each tar to DIR/lakejob-NAME-TAG.tar, for
                                                     kind load image-archive, k3d image import, docker load
    python3 images/build.py load --address SOCK [--state DIR] [NAME...]
                                                     import into containerd namespace k8s.io
    python3 images/build.py names                    name<TAB>reference, one image a line

The images (their recipes are the folders beside this file; references are fixed, tags carry no hash):
    pause        lakejob.local/pause:3.10            pause/pause.c compiled with gcc -static, FROM scratch
    python-base  lakejob.local/python-base:bookworm  (internal) Debian's Python 3.11, made by mmdebstrap
    jre-base     lakejob.local/jre-base:bookworm     (internal) Java 17, Python, tini, made by mmdebstrap
    spark        lakejob.local/spark:<spark/VERSION> pyspark's Spark on jre-base, the official image's interface
    flink        lakejob.local/flink:<flink/VERSION> the apache-flink wheels' Flink on jre-base, the official image's interface
    operator     lakejob.local/operator:<version>    the repository's Dockerfile on python-base
    task         lakejob.local/task:bookworm         DagJob command tasks' image: python-base's Python and /bin/sh

How: root file systems with mmdebstrap (from the machine's Debian sources), images with buildah
(`--isolation chroot`, its own storage), exported with `buildah push IMAGE docker-archive:TAR:REF`,
which containerd's `ctr images import` names exactly REF. Internal images are only bases: they are
never loaded into containerd (their layers travel inside the images built on them).

The input hash of an image: sha256 over its recipe files (path, exec bit, content), its build
arguments and host-tool options, and its base image's input hash, so changing a base rebuilds the
images on it. The operator's recipe is the root Dockerfile, .dockerignore and everything that
Dockerfile COPYs (pyproject.toml, README.md, operator/** without __pycache__ or *.egg-info). What the
Debian archive or PyPI serve at build time is not hashed: delete a tar to rebuild it.

Cache ($LAKEJOB_CACHE, default ~/.cache/lakejob):
    images/<name>-<hash12>.tar     the images (docker-archive); older hashes are removed
    images/downloads/              the pyspark wheel (built from PyPI's sdist), py4j's wheel, the
                                   apache-flink and apache-flink-libraries wheels and, in connect/,
                                   the Spark Connect client's (kept)
    images/logs/<name>.log         the last build's output
    buildah/ (runroot buildah/runroot)   buildah's storage
A build works in a temporary folder (images/.build-*) removed on success and on failure, and writes
a tar under a temporary name first, so a killed build never leaves a half-written image.
Every failure is one line that says what to do.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "hack"))
import progress  # noqa: E402  (hack/progress.py: the step lines and heartbeat, shared with the other scripts)

FORMAT = "lakejob-images/1"  # part of every hash: bump it when this file changes how images are made
SUITE = "bookworm"
IMAGE_PYTHON = "3.11"  # bookworm's: the images' wheels are chosen for it
WHEEL_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64")
LABEL = "org.lakejob.input-hash"
NAMESPACE = "k8s.io"
# Left out of every input hash: caches and packaging leftovers (.dockerignore keeps them out of the
# operator's build context too).
IGNORED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
# Where Debian images keep the CA bundle; RUN steps that reach PyPI see the host's bundle there.
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class ImageError(Exception):
    """A failure the caller can act on; its message is one line that says what to do."""


@dataclass(frozen=True)
class Image:
    """One image: where its recipe is and how it is made."""

    name: str
    reference: str
    kind: str  # "pause" | "rootfs" | "spark" | "flink" | "operator" | "task": which steps make it
    recipe: tuple[str, ...]  # files and folders (relative to the repository) whose content is hashed
    dockerfile: str  # relative to the repository
    base: str | None = None  # the name of the image it is built FROM
    build_args: tuple[tuple[str, str], ...] = ()  # buildah build --build-arg
    tool_args: tuple[str, ...] = ()  # options of the host tool that shape the image (gcc, mmdebstrap)
    internal: bool = False  # only a base of other images: never loaded into containerd


# --- the catalogue and the input hash ------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError:
        raise ImageError(f"images: {path} is missing: restore it from git") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def spark_version(root: Path = ROOT) -> str:
    """The pyspark version the Spark image is built from (images/spark/VERSION)."""
    lines = _read_lines(root / "images" / "spark" / "VERSION")
    if len(lines) != 1 or not re.fullmatch(r"\d+\.\d+\.\d+", lines[0]):
        raise ImageError("images: images/spark/VERSION must hold one pyspark version such as 4.0.1: fix that file")
    return lines[0]


def flink_version(root: Path = ROOT) -> str:
    """The Flink version the Flink image is built from (images/flink/VERSION: apache-flink's)."""
    lines = _read_lines(root / "images" / "flink" / "VERSION")
    if len(lines) != 1 or not re.fullmatch(r"\d+\.\d+\.\d+", lines[0]):
        raise ImageError("images: images/flink/VERSION must hold one apache-flink version such as 2.3.0: fix that file")
    return lines[0]


def operator_version(root: Path = ROOT) -> str:
    """The project's version (pyproject.toml), the operator image's tag."""
    try:
        with open(root / "pyproject.toml", "rb") as f:
            version = tomllib.load(f)["project"]["version"]
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        raise ImageError("images: cannot read project.version from pyproject.toml: fix that file") from None
    if not isinstance(version, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", version):
        raise ImageError(f"images: project.version {version!r} in pyproject.toml is not a usable tag: fix it")
    return version.replace("+", "_")


def mmdebstrap_options(packages: Sequence[str]) -> tuple[str, ...]:
    """mmdebstrap's arguments (all but the output tar) for a root file system with these packages."""
    return (
        "--variant=apt",
        "--include=" + ",".join(packages),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        # ...but update-alternatives (openjdk's postinst) needs this folder to exist.
        '--essential-hook=mkdir -p "$1"/usr/share/man/man1',
        # As the official python:*-slim images: pip installs into the system Python without complaint.
        '--customize-hook=rm -f "$1"/usr/lib/python3.*/EXTERNALLY-MANAGED',
        SUITE,
    )


def catalog(root: Path = ROOT) -> dict[str, Image]:
    """Every image, bases before the images built on them."""
    def rootfs(name: str) -> Image:
        return Image(name, f"lakejob.local/{name}:{SUITE}", "rootfs", (f"images/{name}",), f"images/{name}/Dockerfile",
                     tool_args=mmdebstrap_options(_read_lines(root / "images" / name / "packages")), internal=True)

    spark = spark_version(root)
    flink = flink_version(root)
    return {
        "pause": Image("pause", "lakejob.local/pause:3.10", "pause", ("images/pause",), "images/pause/Dockerfile",
                       tool_args=("-static", "-Os", "-s", "-Wall", "-Wextra")),
        "python-base": rootfs("python-base"),
        "jre-base": rootfs("jre-base"),
        "spark": Image("spark", f"lakejob.local/spark:{spark}", "spark", ("images/spark",), "images/spark/Dockerfile",
                       base="jre-base", build_args=(("BASE", f"lakejob.local/jre-base:{SUITE}"), ("SPARK_VERSION", spark)),
                       tool_args=("javac", "--release", "17")),
        "flink": Image("flink", f"lakejob.local/flink:{flink}", "flink", ("images/flink",), "images/flink/Dockerfile",
                       base="jre-base", build_args=(("BASE", f"lakejob.local/jre-base:{SUITE}"), ("FLINK_VERSION", flink))),
        "operator": Image("operator", f"lakejob.local/operator:{operator_version(root)}", "operator",
                          ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator"), "Dockerfile",
                          base="python-base", build_args=(("BASE", f"lakejob.local/python-base:{SUITE}"),)),
        "task": Image("task", f"lakejob.local/task:{SUITE}", "task", ("images/task",), "images/task/Dockerfile",
                      base="python-base", build_args=(("BASE", f"lakejob.local/python-base:{SUITE}"),)),
    }


def _ignored(name: str) -> bool:
    return name in IGNORED_DIRS or name.endswith(IGNORED_SUFFIXES)


def recipe_files(image: Image, root: Path = ROOT) -> dict[str, Path]:
    """relative path → file, for every file of the image's recipe (caches such as __pycache__ left out)."""
    files: dict[str, Path] = {}
    for entry in image.recipe:
        path = root / entry
        if path.is_file():
            files[entry] = path
        elif path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not _ignored(d))
                for name in names:
                    if not _ignored(name):
                        file = Path(folder) / name
                        files[file.relative_to(root).as_posix()] = file
        else:
            raise ImageError(f"images: {entry}, part of the {image.name} image's recipe, is missing: restore it")
    return files


def input_hash(files: Mapping[str, Path], build_args: Iterable[tuple[str, str]] = (),
               tool_args: Iterable[str] = (), base_hash: str | None = None) -> str:
    """sha256 over the recipe files (path, exec bit, content), the build arguments, the host tool's
    options and the base image's input hash."""
    h = hashlib.sha256(f"{FORMAT}\n".encode())
    for rel in sorted(files):
        path = files[rel]
        data = path.read_bytes()
        h.update(f"file {rel} {'x' if os.access(path, os.X_OK) else '-'} {len(data)}\n".encode())
        h.update(data)
    for key, value in sorted(build_args):
        h.update(f"arg {key}={value}\n".encode())
    for arg in tool_args:
        h.update(f"tool {arg}\n".encode())
    h.update(f"base {base_hash or '-'}\n".encode())
    return h.hexdigest()


def image_hashes(images: Mapping[str, Image], root: Path = ROOT) -> dict[str, str]:
    """name → input hash of every image (a base's hash is part of its children's)."""
    hashes: dict[str, str] = {}

    def of(name: str) -> str:
        if name not in hashes:
            image = images[name]
            base = of(image.base) if image.base else None
            hashes[name] = input_hash(recipe_files(image, root), image.build_args, image.tool_args, base)
        return hashes[name]

    for name in images:
        of(name)
    return hashes


def names() -> dict[str, str]:
    """name → reference of every image."""
    return {name: image.reference for name, image in catalog().items()}


# --- the cache, processes, progress ------------------------------------------------------------------------

def cache_root() -> Path:
    return Path(os.environ.get("LAKEJOB_CACHE") or Path.home() / ".cache" / "lakejob")


def tar_path(name: str, digest: str) -> Path:
    return cache_root() / "images" / f"{name}-{digest[:12]}.tar"


def _shown(path: Path) -> str:
    home = str(Path.home())
    text = str(path)
    return "~" + text[len(home):] if home != "/" and (text == home or text.startswith(home + "/")) else text


def _buildah() -> list[str]:
    storage = cache_root() / "buildah"
    return ["buildah", "--root", str(storage), "--runroot", str(storage / "runroot"), "--storage-driver", "overlay"]


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise ImageError(f"images: {tool} is not installed: apt-get install {package}")


@contextlib.contextmanager
def _locked(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on path (two builds, or two loads, never run at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"images: waiting for another {what} to finish ({path} is locked)", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _die_with_parent() -> None:
    """In a child, before exec: be sent SIGTERM when this process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _run(cmd: Sequence[str | Path], log: Path, fails: str, *,
         cwd: Path | None = None, stdout: Path | None = None, timeout: float | None = None) -> None:
    """Run cmd with its output appended to log (stdout to its own file when given); a failure raises
    ImageError(fails + its last line). Whatever happens to this process, the child does not outlive
    it. (The step that runs it says progress: _build_one.)"""
    argv = [str(c) for c in cmd]
    with open(log, "a") as out, contextlib.ExitStack() as stack:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        sink: IO[str] = stack.enter_context(open(stdout, "w")) if stdout else out
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=out, cwd=cwd,
                                    preexec_fn=_die_with_parent)
        except OSError as e:
            raise ImageError(f"{fails}: cannot run {argv[0]} ({e.strerror})") from None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ImageError(f"{fails}: no result after {timeout:.0f}s; see {_shown(log)}") from None
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    if rc != 0:
        raise ImageError(f"{fails} (exit {rc}: {_last_line(log)}); full output in {_shown(log)}")


# --- the steps --------------------------------------------------------------------------------------------

@dataclass
class Build:
    """What the steps of one image's build share."""

    image: Image
    digest: str
    hashes: Mapping[str, str]
    images: Mapping[str, Image]
    tmp: Path  # removed afterwards
    log: Path

    @property
    def context(self) -> Path:
        return self.tmp / "context"

    def fails(self, what: str) -> str:
        return f"images: {self.image.name}: {what}"

    def run(self, cmd: Sequence[str | Path], what: str, **kw: Any) -> None:
        _run(cmd, self.log, self.fails(what), **kw)


def _compile_pause(b: Build) -> None:
    _need("gcc", "gcc libc6-dev")
    b.run(["gcc", *b.image.tool_args, "-o", b.context / "pause", ROOT / "images" / "pause" / "pause.c"],
          "gcc could not build a static pause (static glibc is in libc6-dev: apt-get install libc6-dev)")


def _check_pause(b: Build) -> None:
    """pause exits 0 on SIGTERM (the kubelet's StopPodSandbox) and does not exit before."""
    proc = subprocess.Popen([b.context / "pause"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        if proc.poll() is not None:
            raise ImageError(b.fails(f"the compiled pause exited by itself (exit {proc.returncode}): fix pause.c"))
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if rc != 0:
        raise ImageError(b.fails(f"the compiled pause exited {rc} on SIGTERM, not 0: fix pause.c"))


def _debootstrap(b: Build) -> None:
    _need("mmdebstrap", "mmdebstrap")
    b.run(["mmdebstrap", *b.image.tool_args, b.context / "rootfs.tar"],
          "mmdebstrap could not make the root file system (are Debian's package servers reachable? "
          f"is every name in images/{b.image.name}/packages a {SUITE} package?)")


def _pyspark_wheel(b: Build) -> Path:
    """The pyspark wheel in images/downloads: pip download (PyPI has pyspark as an sdist only), then
    pip wheel; the wheel is kept, so this runs once per version."""
    version = dict(b.image.build_args)["SPARK_VERSION"]
    downloads = cache_root() / "images" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)

    def wheel() -> Path | None:
        found = sorted(downloads.glob(f"pyspark-{version}-*.whl"))
        return found[0] if found else None

    if (found := wheel()) is not None:
        return found
    if importlib.util.find_spec("pip") is None:
        raise ImageError(f"images: {b.image.name}: pip is not available to {sys.executable}: apt-get install python3-pip")
    sdist = downloads / f"pyspark-{version}.tar.gz"
    if not sdist.exists():
        b.run([sys.executable, "-m", "pip", "download", "--no-deps", f"pyspark=={version}", "-d", downloads],
              f"pip could not download pyspark=={version} (is PyPI reachable? does it serve that version? "
              "images/spark/VERSION names it)")
        if (found := wheel()) is not None:
            return found
    if not sdist.exists():
        raise ImageError(b.fails(f"pip download left no pyspark-{version}.tar.gz in {_shown(downloads)}: "
                                 "check images/spark/VERSION"))
    out = b.tmp / "wheel"
    b.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", out, sdist],
          f"pip could not build a wheel from {sdist.name} (delete it to download it again)")
    built = sorted(out.glob(f"pyspark-{version}-*.whl"))
    if not built:
        raise ImageError(b.fails(f"pip wheel made no pyspark-{version} wheel: see {_shown(b.log)}"))
    os.replace(built[0], downloads / built[0].name)  # same file system: atomic
    sdist.unlink()  # 400 MB that the wheel holds too
    found = wheel()
    assert found is not None
    return found


def _py4j_wheel(b: Build, pyspark: Path) -> Path:
    """The py4j wheel that the pyspark wheel pins (its only requirement without an extra: every
    PySpark job imports it), downloaded once into images/downloads."""
    with zipfile.ZipFile(pyspark) as z:
        metadata = next((z.read(n).decode() for n in z.namelist() if n.endswith(".dist-info/METADATA")), "")
    pins = re.findall(r"^Requires-Dist: py4j\s*==\s*([\w.]+)\s*$", metadata, re.MULTILINE)
    if len(pins) != 1:
        raise ImageError(b.fails(f"{pyspark.name} does not pin one py4j version: images/build.py needs an update"))
    downloads = pyspark.parent
    found = sorted(downloads.glob(f"py4j-{pins[0]}-*.whl"))
    if not found:
        b.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"py4j=={pins[0]}",
               "-d", downloads], f"pip could not download py4j=={pins[0]} (is PyPI reachable?)")
        found = sorted(downloads.glob(f"py4j-{pins[0]}-*.whl"))
    if not found:
        raise ImageError(b.fails(f"pip download left no py4j-{pins[0]} wheel in {_shown(downloads)}: see {_shown(b.log)}"))
    return found[0]


def _connect_wheels(b: Build) -> list[Path]:
    """The wheels images/spark/connect-requirements.txt pins (pyspark's Spark Connect client's
    requirements, for the image's Python), downloaded once into images/downloads/connect."""
    requirements = ROOT / "images" / "spark" / "connect-requirements.txt"
    pins = [line.split("==") for line in _read_lines(requirements)]
    downloads = cache_root() / "images" / "downloads" / "connect"

    def found() -> list[Path]:
        # Wheel names normalise the project's name: '-' and '.' become '_'.
        return [w for name, version in pins
                for w in sorted(downloads.glob(f"{re.sub(r'[-.]', '_', name)}-{version}-*.whl"))[:1]]

    if len(found()) != len(pins):
        downloads.mkdir(parents=True, exist_ok=True)
        b.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", IMAGE_PYTHON, "--abi", f"cp{IMAGE_PYTHON.replace('.', '')}",
               *(f"--platform={p}" for p in WHEEL_PLATFORMS), "-r", requirements, "-d", downloads],
              f"pip could not download the wheels {_shown(requirements)} names (is PyPI reachable?)")
    wheels = found()
    if len(wheels) != len(pins):
        raise ImageError(b.fails(f"pip download left {len(wheels)} of the {len(pins)} wheels of "
                                 f"{_shown(requirements)} in {_shown(downloads)}: see {_shown(b.log)}"))
    return wheels


def _spark_inputs(b: Build) -> None:
    pyspark = _pyspark_wheel(b)
    (b.context / "wheels").mkdir(parents=True)
    shutil.copy2(ROOT / "images" / "spark" / "connect-requirements.txt", b.context / "wheels")
    for wheel in (pyspark, _py4j_wheel(b, pyspark), *_connect_wheels(b)):
        try:
            os.link(wheel, b.context / "wheels" / wheel.name)
        except OSError:
            shutil.copy2(wheel, b.context / "wheels" / wheel.name)
    shutil.copy2(ROOT / "images" / "spark" / "entrypoint.sh", b.context / "entrypoint.sh")


def _spark_examples(b: Build) -> None:
    """examples/SparkPi.java compiled against the wheel's jars into spark-examples.jar (the pyspark
    package ships no examples jar)."""
    _need("javac", "openjdk-17-jdk-headless")
    wheel = next((b.context / "wheels").glob("pyspark-*.whl"))
    jars, classes = b.tmp / "pyspark-jars", b.tmp / "classes"
    jars.mkdir()
    classes.mkdir()
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith("pyspark/jars/") and member.endswith(".jar") and "/" not in member[13:]:
                with z.open(member) as src, open(jars / Path(member).name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    if not any(jars.iterdir()):
        raise ImageError(b.fails(f"{wheel.name} has no pyspark/jars/: delete it from the downloads folder"))
    sources = sorted((ROOT / "images" / "spark" / "examples").rglob("*.java"))
    b.run([*b.image.tool_args, "-cp", f"{jars}/*", "-d", classes, *sources],
          "javac could not compile images/spark/examples (javac 17 or newer is needed)")
    jar = b.context / "spark-examples.jar"
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("META-INF/MANIFEST.MF", (1980, 1, 1, 0, 0, 0)),
                   "Manifest-Version: 1.0\r\nCreated-By: lakejob images/build.py\r\n\r\n")
        for file in sorted(p for p in classes.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(classes).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, file.read_bytes())


# The folders of a Flink distribution (flink-*-bin.tgz) that the PyPI wheels carry under pyflink/:
# the scripts and default configuration are apache-flink's, the jars apache-flink-libraries'.
FLINK_DIST_DIRS = ("bin", "conf", "lib", "opt", "plugins", "licenses")


def _flink_wheel(b: Build, project: str) -> Path:
    """A wheel of `project` at the image's Flink version in images/downloads, downloaded once.
    apache-flink's wheels are per Python version and platform; only their scripts are used, so the
    one pip picks for this Python does."""
    version = dict(b.image.build_args)["FLINK_VERSION"]
    downloads = cache_root() / "images" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    found = sorted(downloads.glob(pattern))
    if not found:
        if importlib.util.find_spec("pip") is None:
            raise ImageError(f"images: {b.image.name}: pip is not available to {sys.executable}: apt-get install python3-pip")
        b.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{project}=={version}",
               "-d", downloads], f"pip could not download a {project}=={version} wheel (is PyPI reachable? does it "
                                 "serve that version for this Python? images/flink/VERSION names it)")
        found = sorted(downloads.glob(pattern))
    if not found:
        raise ImageError(b.fails(f"pip download left no {pattern} in {_shown(downloads)}: see {_shown(b.log)}"))
    return found[0]


def _flink_inputs(b: Build) -> None:
    """The distribution's folders from both wheels into the context as flink/, modes kept (the scripts
    are executable), and the entrypoint beside them."""
    dist = b.context / "flink"
    for project in ("apache-flink", "apache-flink-libraries"):
        with zipfile.ZipFile(_flink_wheel(b, project)) as z:
            for info in z.infolist():
                parts = info.filename.split("/")
                if len(parts) < 3 or parts[0] != "pyflink" or parts[1] not in FLINK_DIST_DIRS or info.is_dir():
                    continue
                target = dist.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                target.chmod(0o755 if (info.external_attr >> 16) & 0o111 else 0o644)
    missing = [d for d in ("bin/standalone-job.sh", "bin/bash-java-utils.jar", "conf/config.yaml", "lib")
               if not (dist / d).exists()]
    if missing:
        raise ImageError(b.fails(f"the apache-flink wheels lack {', '.join(missing)}: delete them from the downloads "
                                 "folder, or images/build.py needs an update for this Flink version"))
    shutil.copy2(ROOT / "images" / "flink" / "docker-entrypoint.sh", b.context / "docker-entrypoint.sh")


def _inspect_label(reference: str) -> str | None:
    """The input-hash label of reference in buildah's storage, None when it is not there."""
    r = subprocess.run([*_buildah(), "inspect", "--type", "image", reference], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        labels = json.loads(r.stdout).get("OCIv1", {}).get("config", {}).get("Labels") or {}
    except json.JSONDecodeError:
        return None
    value = labels.get(LABEL)
    return value if isinstance(value, str) else None


def _ensure_base(b: Build) -> None:
    """The base image in buildah's storage is the one its tar holds (pulled from the tar if not)."""
    assert b.image.base
    base = b.images[b.image.base]
    digest = b.hashes[base.name]
    if _inspect_label(base.reference) == digest:
        return
    tar = tar_path(base.name, digest)
    if not tar.exists():
        raise ImageError(f"images: {base.name} (the base of {b.image.name}) is not built: "
                         f"python3 images/build.py build {base.name}")
    b.run([*_buildah(), "pull", "--quiet", f"docker-archive:{tar}"],
          f"buildah could not take the base image from {_shown(tar)} (delete that tar to rebuild it)")
    if _inspect_label(base.reference) != digest:
        raise ImageError(b.fails(f"{_shown(tar)} did not give {base.reference}: delete that tar to rebuild it"))


def _buildah_build(b: Build) -> None:
    image = b.image
    if image.base:
        _ensure_base(b)
    operator = image.kind == "operator"
    cmd: list[str | Path] = [*_buildah(), "build", "--isolation", "chroot", "--network", "host", "--pull=never",
                             "--format", "docker", "--label", f"{LABEL}={b.digest}", "-t", image.reference,
                             "-f", ROOT / image.dockerfile]
    for key, value in image.build_args:
        cmd += ["--build-arg", f"{key}={value}"]
    if operator:
        # Its RUN steps fetch from PyPI: they trust what the host trusts (a TLS-inspecting proxy's CA
        # too). A bind mount during RUN only: the image keeps Debian's bundle.
        bundle = Path(os.environ.get("SSL_CERT_FILE") or IMAGE_CA_BUNDLE)
        if bundle.is_file():
            cmd += ["--volume", f"{bundle.resolve()}:{IMAGE_CA_BUNDLE}:ro"]
    cmd.append(ROOT if operator else b.context)
    b.run(cmd, "buildah build failed" + (" (its RUN steps need PyPI: is it reachable?)" if operator else ""))


def _smoke(b: Build, argv: Sequence[str], expect: str, timeout: float) -> None:
    """Run argv in a container of the new image (buildah, chroot isolation) and find expect in its stdout."""
    out = b.tmp / "smoke.out"
    b.run([*_buildah(), "from", "--quiet", "--pull=never", b.image.reference], "buildah from failed", stdout=out)
    container = out.read_text().strip().splitlines()[-1]
    try:
        # A hostname that resolves (as the kubelet's /etc/hosts does for a pod's): Spark looks itself up.
        b.run([*_buildah(), "run", "--isolation", "chroot", "--hostname", "localhost", container, "--", *argv],
              f"the smoke test `{' '.join(argv)}` failed", stdout=out, timeout=timeout)
    finally:
        subprocess.run([*_buildah(), "rm", container], capture_output=True)
        text = out.read_text(errors="replace")
        with open(b.log, "a") as log:
            log.write(f"# its standard output:\n{text}")
    if expect not in text:
        raise ImageError(b.fails(f"the smoke test `{' '.join(argv)}` did not print {expect!r}; "
                                 f"see {_shown(b.log)}"))


def _smoke_spark(b: Build) -> None:
    _smoke(b, ["/opt/entrypoint.sh", "/opt/spark/bin/spark-submit", "--master", "local[2]",
               "--class", "org.apache.spark.examples.SparkPi", "/opt/spark/examples/jars/spark-examples.jar", "4"],
           "Pi is roughly", timeout=600)


def _smoke_flink(b: Build) -> None:
    """The entrypoint merges FLINK_PROPERTIES into the configuration, and Flink's client runs."""
    _smoke(b, ["env", "FLINK_PROPERTIES=lakejob.smoke: two words", "/docker-entrypoint.sh", "bash", "-c",
               'flink --version && grep -A1 "^lakejob:" "$FLINK_CONF_DIR/config.yaml"'], "smoke: two words",
           timeout=300)


def _smoke_operator(b: Build) -> None:
    _smoke(b, ["lakejob", "run", "--help"], "--all-namespaces", timeout=120)


def _smoke_task(b: Build) -> None:
    """/bin/sh runs a Python command, as DagJob's wrapper (render/dag.py REDIRECT) does."""
    _smoke(b, ["/bin/sh", "-c", '"$0" "$@" & wait "$!"', "python3", "-c", "print('task ' + 'ok')"], "task ok",
           timeout=60)


def _export(b: Build) -> None:
    """buildah push to a docker-archive under a temporary name, checked, then renamed into place."""
    tmp_tar = b.tmp / "image.tar"
    b.run([*_buildah(), "push", "--quiet", b.image.reference, f"docker-archive:{tmp_tar}:{b.image.reference}"],
          "buildah push to a docker-archive failed")
    with tarfile.open(tmp_tar) as t:
        member = t.extractfile("manifest.json")
        manifest = json.load(member) if member else []
    tags = [tag for entry in manifest for tag in entry.get("RepoTags") or []]
    if tags != [b.image.reference]:
        raise ImageError(b.fails(f"the docker-archive is tagged {tags}, not {b.image.reference}: "
                                 "this buildah cannot export it here"))
    final = tar_path(b.image.name, b.digest)
    os.replace(tmp_tar, final)
    for old in final.parent.glob(f"{b.image.name}-*.tar"):
        if old != final and re.fullmatch(rf"{re.escape(b.image.name)}-[0-9a-f]{{12}}\.tar", old.name):
            old.unlink()


STEPS: dict[str, list[tuple[str, Callable[[Build], None]]]] = {
    "pause": [("gcc -static pause.c", _compile_pause), ("checking pause", _check_pause),
              ("buildah build", _buildah_build), ("export", _export)],
    "rootfs": [("mmdebstrap", _debootstrap), ("buildah build", _buildah_build), ("export", _export)],
    "spark": [("pyspark, py4j and Connect client wheels", _spark_inputs), ("javac SparkPi", _spark_examples), ("buildah build", _buildah_build),
              ("smoke test: SparkPi", _smoke_spark), ("export", _export)],
    "flink": [("apache-flink wheels", _flink_inputs), ("buildah build", _buildah_build),
              ("smoke test: flink --version, FLINK_PROPERTIES", _smoke_flink), ("export", _export)],
    "operator": [("buildah build", _buildah_build), ("smoke test: lakejob run --help", _smoke_operator),
                 ("export", _export)],
    "task": [("buildah build", _buildah_build), ("smoke test: /bin/sh and python3", _smoke_task), ("export", _export)],
}


def _build_one(image: Image, digest: str, hashes: Mapping[str, str], images: Mapping[str, Image],
               counter: tuple[int, int]) -> Path:
    steps = STEPS[image.kind]
    cache = cache_root() / "images"
    log = cache / "logs" / f"{image.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"# images/build.py: {image.reference}, input hash {digest}\n")
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{image.name}-", dir=cache))
    # The image's own step beats not: its inner steps do, each with the log's last line (buildah's
    # "STEP 4/9: RUN pip install …", mmdebstrap's stage), so a long apt or pip stage says which.
    try:
        with progress.step("images", f"building {image.name} (log {_shown(log)})", counter, every=None):
            b = Build(image, digest, hashes, images, tmp, log)
            b.context.mkdir()
            for number, (what, run_step) in enumerate(steps, 1):
                with progress.step("images", f"{image.name}: {what}", (number, len(steps)),
                                   detail=lambda: _last_line(log)[:120]):
                    run_step(b)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    final = tar_path(image.name, digest)
    print(f"images: {image.name} ready (cached: {_shown(final)})", flush=True)
    return final


def _closure(images: Mapping[str, Image], wanted: Iterable[str]) -> list[str]:
    """wanted and their bases, bases first, in catalogue order."""
    need: set[str] = set()
    for name in wanted:
        if name not in images:
            raise ImageError(f"images: no image named {name!r}: `python3 images/build.py names` lists them")
        while name:
            need.add(name)
            name = images[name].base or ""
    return [name for name in images if name in need]


def build(wanted: Iterable[str] | None = None) -> dict[str, Path]:
    """Build the images named (default: all) and the bases they need, skipping every image whose tar
    exists for its input hash; name → tar of each image asked for."""
    images = catalog()
    asked = list(wanted) if wanted else list(images)
    _closure(images, asked)  # unknown names fail here
    hashes = image_hashes(images)

    def missing(name: str) -> set[str]:  # name and the bases it needs, when its tar is missing
        if tar_path(name, hashes[name]).exists():
            return set()
        base = images[name].base
        return {name} | (missing(base) if base else set())

    todo = set().union(*(missing(name) for name in asked))
    if todo:
        if os.geteuid() != 0:
            raise ImageError("images: building needs root (buildah's overlay storage, mmdebstrap): run it as root")
        _need("buildah", "buildah")
        cache = cache_root() / "images"
        with _locked(cache / ".lock", "image build"):
            for stale in cache.glob(".build-*"):  # left by a killed build: we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            subprocess.run([*_buildah(), "rm", "--all"], capture_output=True)
            order = [name for name in images if name in todo]
            for name in images:
                if name in todo and not tar_path(name, hashes[name]).exists():  # (another build may have made it)
                    _build_one(images[name], hashes[name], hashes, images, (order.index(name) + 1, len(order)))
                elif name in asked:
                    print(f"images: {name} up to date", flush=True)
            subprocess.run([*_buildah(), "rmi", "--prune"], capture_output=True)  # old, now untagged images
    else:
        for name in images:
            if name in asked:
                print(f"images: {name} up to date", flush=True)
    return {name: tar_path(name, hashes[name]) for name in asked}


def export(built: Mapping[str, Path], out: Path) -> dict[str, Path]:
    """Copy each built tar to OUT/lakejob-NAME-TAG.tar (`make image`): a stable name to hand to
    `kind load image-archive`, `k3d image import` or `docker load`, which name the image as its
    reference says (lakejob.local/NAME:TAG). Written under a temporary name first."""
    images = catalog()
    out.mkdir(parents=True, exist_ok=True)
    copies = {}
    for name, tar in built.items():
        reference = images[name].reference
        dest = out / f"lakejob-{name}-{reference.rpartition(':')[2]}.tar"
        partial = dest.with_name(dest.name + ".part")
        shutil.copyfile(tar, partial)
        partial.replace(dest)
        print(f"images: {name} exported to {_shown(dest)} ({reference})", flush=True)
        copies[name] = dest
    return copies


# --- loading into containerd ----------------------------------------------------------------------------

def _ctr(address: str, *args: str, timeout: float = 600) -> str:
    r = subprocess.run(["ctr", "-a", address, "-n", NAMESPACE, *args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [""])[-1][:300]
        raise ImageError(f"images: `ctr {' '.join(args[:2])}` failed against {address} ({last}): "
                         "is containerd running there?")
    return r.stdout


def load(address: str | Path, state_dir: Path | None = None, wanted: Iterable[str] | None = None) -> list[str]:
    """Import the built images (default: every one that is not internal) into containerd's k8s.io
    namespace at address, skipping each whose input hash is the one recorded in state_dir (a stamp
    file per image) and which containerd still has; the references imported."""
    _need("ctr", "containerd")
    address = str(address)
    if not Path(address).exists():
        raise ImageError(f"images: no containerd socket at {address}: start containerd (make cluster) "
                         "or pass its --address")
    state = state_dir or cache_root() / "node" / "imported"
    images = catalog()
    names_ = list(wanted) if wanted else [n for n, image in images.items() if not image.internal]
    _closure(images, names_)  # unknown names fail here
    hashes = image_hashes(images)
    missing = [n for n in names_ if not tar_path(n, hashes[n]).exists()]
    if missing:
        raise ImageError(f"images: {', '.join(missing)} not built for {'its' if len(missing) == 1 else 'their'} "
                         f"current inputs: python3 images/build.py build {' '.join(missing)}")
    imported: list[str] = []
    with _locked(state / ".lock", "image load"):
        present = set(_ctr(address, "images", "ls", "-q").split())

        def recorded(name: str) -> str:
            try:
                return (state / name).read_text().split()[0]
            except (OSError, IndexError):
                return ""

        todo = [n for n in names_ if recorded(n) != hashes[n] or images[n].reference not in present]
        for number, name in enumerate(todo, 1):
            image, digest, stamp = images[name], hashes[name], state / name
            with progress.step("images", f"loading {name} ({image.reference}) into containerd", (number, len(todo))):
                _ctr(address, "images", "import", str(tar_path(name, digest)), timeout=1800)
            if image.reference not in set(_ctr(address, "images", "ls", "-q").split()):
                raise ImageError(f"images: containerd did not name the imported {name} {image.reference}: "
                                 "report this (ctr images ls shows what it did)")
            tmp = stamp.with_name(f".{name}.tmp")
            tmp.write_text(f"{digest} {image.reference}\n")
            os.replace(tmp, stamp)
            imported.append(image.reference)
    return imported


# --- the command line -----------------------------------------------------------------------------------

def _interrupted(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="images/build.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p_build = sub.add_parser("build", help="build the images (default: all); up-to-date ones are skipped")
    p_build.add_argument("--out", type=Path, default=None,
                         help="also copy each image's tar to OUT/lakejob-NAME-TAG.tar (docker-archive)")
    p_build.add_argument("names", nargs="*", metavar="NAME")
    p_load = sub.add_parser("load", help="import the built images into containerd's k8s.io namespace")
    p_load.add_argument("--address", required=True, help="containerd's socket")
    p_load.add_argument("--state", type=Path, default=None,
                        help="where a stamp per image records what was imported (default: $LAKEJOB_CACHE/node/imported)")
    p_load.add_argument("names", nargs="*", metavar="NAME")
    sub.add_parser("names", help="name<TAB>reference of every image")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)  # a kill runs the same clean-up as Ctrl-C
    try:
        if args.verb == "build":
            built = build(args.names)
            if args.out is not None:
                export(built, args.out)
        elif args.verb == "load":
            loaded = load(args.address, args.state, args.names)
            print(f"images: {len(loaded)} image(s) imported" if loaded else "images: containerd has them all")
        else:
            for name, reference in names().items():
                print(f"{name}\t{reference}")
    except ImageError as e:
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("images: interrupted; nothing half-built was kept", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"images: {e}: check the path and its permissions", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as e:
        print(f"images: `{' '.join(map(str, e.cmd))}` took longer than {e.timeout:.0f}s: is containerd stuck?",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
