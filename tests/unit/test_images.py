"""images/build.py without building anything: what goes into an image's input hash (and so what
rebuilds it), the references `names` prints, and its one-line errors."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "images" / "build.py"
NAMES = ["pause", "python-base", "jre-base", "spark", "flink", "operator", "task"]


def _load() -> ModuleType:
    # Under its own name: "build" is also PyPA's build package.
    spec = importlib.util.spec_from_file_location("lakejob_images_build", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


images = _load()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the images' recipes read: images/, the root Dockerfile and what it COPYs."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "images", root / "images", ignore=ignore)
    shutil.copytree(ROOT / "operator", root / "operator", ignore=ignore)
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    return root


def hashes(root: Path) -> dict[str, str]:
    result: dict[str, str] = images.image_hashes(images.catalog(root), root)
    return result


def changed(root: Path, edit: Callable[[], object]) -> set[str]:
    """The images whose input hash the edit changes."""
    before = hashes(root)
    edit()
    after = hashes(root)
    assert list(after) == NAMES
    return {name for name in NAMES if before[name] != after[name]}


def append(path: Path, text: str) -> Callable[[], object]:
    return lambda: path.write_text(path.read_text() + text)


def test_a_recipe_file_rebuilds_its_image_only(tree: Path) -> None:
    assert changed(tree, append(tree / "images" / "pause" / "pause.c", "\n")) == {"pause"}
    assert changed(tree, append(tree / "images" / "spark" / "entrypoint.sh", "# changed\n")) == {"spark"}
    assert changed(tree, append(tree / "images" / "spark" / "examples" / "SparkPi.java", "\n")) == {"spark"}
    assert changed(tree, append(tree / "images" / "flink" / "docker-entrypoint.sh", "# changed\n")) == {"flink"}
    assert changed(tree, append(tree / "images" / "flink" / "Dockerfile", "\n")) == {"flink"}
    assert changed(tree, append(tree / "images" / "task" / "Dockerfile", "\n")) == {"task"}


def test_a_base_image_rebuilds_the_images_on_it(tree: Path) -> None:
    assert changed(tree, append(tree / "images" / "jre-base" / "packages", "less\n")) == {"jre-base", "spark", "flink"}
    assert changed(tree, append(tree / "images" / "python-base" / "Dockerfile", "\n")) == {"python-base", "operator",
                                                                                          "task"}


def test_the_operator_hashes_what_its_dockerfile_copies(tree: Path) -> None:
    assert changed(tree, append(tree / "operator" / "lakejob" / "cli.py", "\n")) == {"operator"}
    assert changed(tree, append(tree / "README.md", "\n")) == {"operator"}
    assert changed(tree, append(tree / "Dockerfile", "\n")) == {"operator"}
    new_module = tree / "operator" / "lakejob" / "new_module.py"
    assert changed(tree, lambda: new_module.write_text("X = 1\n")) == {"operator"}


def test_unrelated_files_and_caches_change_nothing(tree: Path) -> None:
    def junk() -> None:
        (tree / "docs").mkdir()
        (tree / "docs" / "new.md").write_text("notes\n")
        (tree / "images" / "notes.md").write_text("not part of any recipe\n")
        for folder in (tree / "operator" / "lakejob" / "__pycache__", tree / "images" / "spark" / "__pycache__"):
            folder.mkdir(exist_ok=True)
            (folder / "cli.cpython-311.pyc").write_bytes(b"\x00compiled")
        (tree / "operator" / "lakejob.egg-info").mkdir()
        (tree / "operator" / "lakejob.egg-info" / "PKG-INFO").write_text("Name: lakejob\n")

    assert changed(tree, junk) == set()


def test_the_exec_bit_counts(tree: Path) -> None:
    assert changed(tree, lambda: (tree / "images" / "spark" / "entrypoint.sh").chmod(0o644)) == {"spark"}


def test_build_args_tool_options_and_the_base_hash_count(tree: Path) -> None:
    files = images.recipe_files(images.catalog(tree)["spark"], tree)
    plain = images.input_hash(files, [("BASE", "a")], ["-Os"], "base1")
    assert images.input_hash(files, [("BASE", "a")], ["-Os"], "base1") == plain
    assert images.input_hash(files, [("BASE", "b")], ["-Os"], "base1") != plain
    assert images.input_hash(files, [("BASE", "a"), ("X", "1")], ["-Os"], "base1") != plain
    assert images.input_hash(files, [("BASE", "a")], ["-O2"], "base1") != plain
    assert images.input_hash(files, [("BASE", "a")], ["-Os"], "base2") != plain
    assert images.input_hash(files, [("BASE", "a")], ["-Os"], None) != plain


def test_the_spark_version_is_the_tag_and_an_input(tree: Path) -> None:
    version = tree / "images" / "spark" / "VERSION"
    assert images.catalog(tree)["spark"].reference == f"lakejob.local/spark:{version.read_text().strip()}"
    assert changed(tree, lambda: version.write_text("4.0.0\n")) == {"spark"}
    assert images.catalog(tree)["spark"].reference == "lakejob.local/spark:4.0.0"
    version.write_text("four\n")
    with pytest.raises(images.ImageError, match="images/spark/VERSION"):
        images.catalog(tree)


def test_the_flink_version_is_the_tag_and_an_input(tree: Path) -> None:
    version = tree / "images" / "flink" / "VERSION"
    assert images.catalog(tree)["flink"].reference == f"lakejob.local/flink:{version.read_text().strip()}"
    assert changed(tree, lambda: version.write_text("2.2.0\n")) == {"flink"}
    assert dict(images.catalog(tree)["flink"].build_args)["FLINK_VERSION"] == "2.2.0"
    version.write_text("2.x\n")
    with pytest.raises(images.ImageError, match="images/flink/VERSION"):
        images.catalog(tree)


def test_names_lists_the_seven_references() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "names"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = dict(line.split("\t") for line in r.stdout.splitlines())
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    spark = (ROOT / "images" / "spark" / "VERSION").read_text().strip()
    flink = (ROOT / "images" / "flink" / "VERSION").read_text().strip()
    assert rows == {
        "pause": "lakejob.local/pause:3.10",
        "python-base": "lakejob.local/python-base:bookworm",
        "jre-base": "lakejob.local/jre-base:bookworm",
        "spark": f"lakejob.local/spark:{spark}",
        "flink": f"lakejob.local/flink:{flink}",
        "operator": f"lakejob.local/operator:{version}",
        "task": "lakejob.local/task:bookworm",
    }


def test_tars_are_named_by_the_hash_under_lakejob_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_CACHE", str(tmp_path))
    assert images.tar_path("spark", "0123456789abcdef" * 4) == tmp_path / "images" / "spark-0123456789ab.tar"


def test_build_out_exports_an_up_to_date_tar_under_its_reference(tmp_path: Path) -> None:
    """`make image`: nothing is rebuilt when the tar for the inputs' hash exists; it is copied to
    OUT under a name that says what it is."""
    cache = tmp_path / "cache"
    digest = images.image_hashes(images.catalog())["operator"]
    cached = cache / "images" / f"operator-{digest[:12]}.tar"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"docker-archive bytes")
    r = subprocess.run([sys.executable, str(SCRIPT), "build", "--out", str(tmp_path / "dist"), "operator"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "LAKEJOB_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    reference = images.names()["operator"]
    exported = tmp_path / "dist" / f"lakejob-operator-{reference.rpartition(':')[2]}.tar"
    assert exported.read_bytes() == b"docker-archive bytes"
    assert r.stdout.splitlines() == ["images: operator up to date",
                                     f"images: operator exported to {exported} ({reference})"]
    assert [p.name for p in (tmp_path / "dist").iterdir()] == [exported.name]  # no partial file left


@pytest.mark.parametrize(("args", "message"), [
    (["build", "nope"], "images: no image named 'nope': `python3 images/build.py names` lists them"),
    (["load", "--address", "/nonexistent/containerd.sock"],
     "images: no containerd socket at /nonexistent/containerd.sock: start containerd (make cluster) "
     "or pass its --address"),
])
def test_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    if args[0] == "load" and shutil.which("ctr") is None:
        message = "images: ctr is not installed: apt-get install containerd"
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LAKEJOB_CACHE": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.splitlines() == [message]


# --- images/spark/entrypoint.sh, run on the host with stand-ins for tini, java and spark-submit ---------

ENTRYPOINT = ROOT / "images" / "spark" / "entrypoint.sh"
PRINT_ARGS = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0")" "$@"\n'


@pytest.fixture
def fake_spark(tmp_path: Path) -> dict[str, str]:
    """SPARK_HOME, JAVA_HOME and a tini whose programs print their arguments, one a line."""
    spark, java, bin_ = tmp_path / "spark", tmp_path / "java", tmp_path / "bin"
    for folder in (spark / "bin", spark / "jars", java / "bin", bin_):
        folder.mkdir(parents=True)
    for program in (spark / "bin" / "spark-submit", java / "bin" / "java", bin_ / "echo-args"):
        program.write_text(PRINT_ARGS)
        program.chmod(0o755)
    (bin_ / "tini").write_text('#!/bin/sh\n[ "$1" = -s ] && [ "$2" = -- ] || exit 99\nshift 2\nexec "$@"\n')
    (bin_ / "tini").chmod(0o755)
    return {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path), "SPARK_HOME": str(spark), "JAVA_HOME": str(java)}


def entrypoint(env: dict[str, str], *args: str, cwd: Path) -> list[str]:
    r = subprocess.run(["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_entrypoint_driver_runs_spark_submit_in_client_mode(fake_spark: dict[str, str], tmp_path: Path) -> None:
    env = {**fake_spark, "SPARK_DRIVER_BIND_ADDRESS": "10.1.2.3"}
    assert entrypoint(env, "driver", "--class", "a.B", "local:///app.jar", "7", cwd=tmp_path) == [
        "spark-submit", "--conf", "spark.driver.bindAddress=10.1.2.3",
        "--conf", "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3", "--deploy-mode", "client",
        "--class", "a.B", "local:///app.jar", "7"]


def test_entrypoint_executor_runs_the_backend_with_numbered_java_options(fake_spark: dict[str, str],
                                                                         tmp_path: Path) -> None:
    spark = fake_spark["SPARK_HOME"]
    env = {**fake_spark, "SPARK_EXECUTOR_MEMORY": "1024m", "SPARK_JAVA_OPT_0": "-Da=0", "SPARK_JAVA_OPT_10": "-Dc=10",
           "SPARK_JAVA_OPT_2": "-Db=two words", "SPARK_EXTRA_CLASSPATH": "/extra/*", "SPARK_DRIVER_URL": "spark://d:7078",
           "SPARK_EXECUTOR_ID": "3", "SPARK_EXECUTOR_CORES": "2", "SPARK_APPLICATION_ID": "spark-app-1",
           "SPARK_EXECUTOR_POD_IP": "10.1.2.4", "SPARK_RESOURCE_PROFILE_ID": "0", "SPARK_EXECUTOR_POD_NAME": "app-exec-3"}
    assert entrypoint(env, "executor", cwd=tmp_path) == [
        "java", "-Da=0", "-Db=two words", "-Dc=10", "-Xms1024m", "-Xmx1024m",
        "-cp", f"{spark}/conf:{spark}/jars/*:/extra/*:{tmp_path}",
        "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
        "--driver-url", "spark://d:7078", "--executor-id", "3", "--cores", "2", "--app-id", "spark-app-1",
        "--hostname", "10.1.2.4", "--resourceProfileId", "0", "--podName", "app-exec-3"]


def test_entrypoint_runs_anything_else_as_given(fake_spark: dict[str, str], tmp_path: Path) -> None:
    assert entrypoint(fake_spark, "echo-args", "a b", "--c", cwd=tmp_path) == ["echo-args", "a b", "--c"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_entrypoint_copes_with_a_uid_without_a_passwd_entry(fake_spark: dict[str, str], tmp_path: Path) -> None:
    uid = next(u for u in range(54321, 60000) if subprocess.run(["getent", "passwd", str(u)]).returncode)
    tmp_path.chmod(0o755)
    script = "printf '%s\\n' \"HOME=$HOME\" \"SPARK_USER=$SPARK_USER\" \"HADOOP_USER_NAME=$HADOOP_USER_NAME\""
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "bash", str(ENTRYPOINT),
                        "sh", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30,
                       env={**fake_spark, "HOME": "/root"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["HOME=/tmp", "SPARK_USER=spark", "HADOOP_USER_NAME=spark"]


# --- the Flink image: the distribution from the wheels, and images/flink/docker-entrypoint.sh ----------

def _wheel(path: Path, files: dict[str, tuple[str, int]]) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, (text, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            z.writestr(info, text)


def test_the_flink_distribution_comes_from_both_wheels_with_its_modes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_CACHE", str(tmp_path / "cache"))
    downloads = tmp_path / "cache" / "images" / "downloads"
    downloads.mkdir(parents=True)
    _wheel(downloads / "apache_flink-2.3.0-cp311-cp311-manylinux2014_x86_64.whl", {
        "pyflink/bin/standalone-job.sh": ("#!/bin/bash\n", 0o755), "pyflink/conf/config.yaml": ("a: 1\n", 0o644),
        "pyflink/datastream/__init__.py": ("", 0o644), "apache_flink-2.3.0.dist-info/RECORD": ("", 0o644)})
    _wheel(downloads / "apache_flink_libraries-2.3.0-py2.py3-none-any.whl", {
        "pyflink/bin/bash-java-utils.jar": ("jar", 0o664), "pyflink/lib/flink-dist-2.3.0.jar": ("jar", 0o644),
        "pyflink/plugins/metrics-jmx/flink-metrics-jmx-2.3.0.jar": ("jar", 0o644), "pyflink/version.py": ("", 0o644)})
    catalog = images.catalog()
    build = images.Build(catalog["flink"], "0" * 64, {}, catalog, tmp_path / "build", tmp_path / "log")
    build.context.mkdir(parents=True)
    images._flink_inputs(build)
    dist = build.context / "flink"
    found = sorted(p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file())
    assert found == ["bin/bash-java-utils.jar", "bin/standalone-job.sh", "conf/config.yaml",
                     "lib/flink-dist-2.3.0.jar", "plugins/metrics-jmx/flink-metrics-jmx-2.3.0.jar"]
    assert os.access(dist / "bin" / "standalone-job.sh", os.X_OK) and not os.access(dist / "conf" / "config.yaml", os.X_OK)
    assert (build.context / "docker-entrypoint.sh").read_bytes() == FLINK_ENTRYPOINT.read_bytes()


FLINK_ENTRYPOINT = ROOT / "images" / "flink" / "docker-entrypoint.sh"
# A stand-in for Flink's BashJavaUtils: it prints, as its result lines, the file it was given and the
# -D options, one a line.
FAKE_JAVA = """#!/bin/bash
while [ "$1" != --configDir ]; do shift; done
conf="$2"; shift 2
echo "INFO some log line"
sed 's/^/BASH_JAVA_UTILS_EXEC_RESULT:/' "$conf/config.yaml"
for option in "$@"; do echo "BASH_JAVA_UTILS_EXEC_RESULT:$option"; done
"""


# The entrypoint runs as a user who cannot write to a read-only folder, as in a pod (root can).
AS_USER = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
as_user = pytest.mark.skipif(bool(AS_USER) and shutil.which("setpriv") is None, reason="as root, needs setpriv")


@pytest.fixture
def fake_flink() -> Iterator[dict[str, str]]:
    """FLINK_HOME with a read-only conf/, JAVA_HOME with FAKE_JAVA, tini and scripts that print their
    arguments; in a folder of its own under /tmp that the entrypoint's user can reach (pytest's are root's)."""
    base = Path(tempfile.mkdtemp(prefix="lakejob-test-flink-"))
    base.chmod(0o755)
    try:
        yield _fake_flink(base)
    finally:
        shutil.rmtree(base)


def _fake_flink(base: Path) -> dict[str, str]:
    flink, java, bin_, tmp = base / "flink", base / "java", base / "bin", base / "tmp"
    for folder in (flink / "bin", flink / "lib", flink / "conf", java / "bin", bin_, tmp):
        folder.mkdir(parents=True)
    (flink / "lib" / "flink-dist-2.3.0.jar").write_text("")
    (flink / "conf" / "config.yaml").write_text("rest.port: 8081\n")
    (flink / "conf" / "log4j-console.properties").write_text("x\n")
    for script in ("standalone-job.sh", "taskmanager.sh", "jobmanager.sh"):
        (flink / "bin" / script).write_text(PRINT_ARGS + 'echo "FLINK_CONF_DIR=$FLINK_CONF_DIR"\n')
        (flink / "bin" / script).chmod(0o755)
    (java / "bin" / "java").write_text(FAKE_JAVA)
    (java / "bin" / "java").chmod(0o755)
    (bin_ / "tini").write_text('#!/bin/sh\n[ "$1" = -s ] && [ "$2" = -- ] || exit 99\nshift 2\nexec "$@"\n')
    (bin_ / "tini").chmod(0o755)
    tmp.chmod(0o1777)
    (flink / "conf").chmod(0o555)  # as a ConfigMap mount
    return {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp), "FLINK_HOME": str(flink),
            "JAVA_HOME": str(java), "TMPDIR": str(tmp)}


def flink_entrypoint(env: dict[str, str], *args: str) -> list[str]:
    r = subprocess.run([*AS_USER, "bash", str(FLINK_ENTRYPOINT), *args], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@as_user
def test_flink_entrypoint_writes_the_configuration_beside_a_read_only_one_and_runs_the_role(
        fake_flink: dict[str, str]) -> None:
    env = {**fake_flink, "JOB_MANAGER_RPC_ADDRESS": "wc-jobmanager", "SLOTS": "4",
           "FLINK_PROPERTIES": "state.backend.type: rocksdb\n\n  a.b:  two words ${SLOTS}  \nno key here"}
    out = flink_entrypoint(env, "standalone-job", "--job-id", "42", "--", "-s", "x")
    conf = out[-1].removeprefix("FLINK_CONF_DIR=")
    assert conf.startswith(fake_flink["TMPDIR"] + "/flink-conf.") and out[-2:-1] == ["x"]
    assert out[-8:-1] == ["standalone-job.sh", "start-foreground", "--job-id", "42", "--", "-s", "x"]
    assert Path(conf, "config.yaml").read_text().splitlines() == [
        "rest.port: 8081", "-Djobmanager.rpc.address=wc-jobmanager", "-Dblob.server.port=6124",
        "-Dquery.server.port=6125", "-Dstate.backend.type=rocksdb", "-Da.b=two words 4"]
    assert Path(conf, "log4j-console.properties").exists()
    assert Path(fake_flink["FLINK_HOME"], "conf", "config.yaml").read_text() == "rest.port: 8081\n"


@as_user
def test_flink_entrypoint_edits_a_writable_configuration_in_place(fake_flink: dict[str, str]) -> None:
    conf = Path(fake_flink["FLINK_HOME"]) / "conf"
    conf.chmod(0o777)
    (conf / "config.yaml").chmod(0o666)
    out = flink_entrypoint({**fake_flink, "TASK_MANAGER_NUMBER_OF_TASK_SLOTS": "2"}, "taskmanager", "-Dx=1")
    assert out[-4:] == ["taskmanager.sh", "start-foreground", "-Dx=1", f"FLINK_CONF_DIR={conf}"]
    assert "-Dtaskmanager.numberOfTaskSlots=2" in (conf / "config.yaml").read_text().splitlines()


@as_user
def test_flink_entrypoint_runs_anything_else_and_says_its_usage(fake_flink: dict[str, str]) -> None:
    (Path(fake_flink["FLINK_HOME"]) / "conf").chmod(0o777)
    (Path(fake_flink["FLINK_HOME"]) / "conf" / "config.yaml").chmod(0o666)
    assert flink_entrypoint(fake_flink, "sh", "-c", 'echo "$FLINK_CONF_DIR"') == [f"{fake_flink['FLINK_HOME']}/conf"]
    assert flink_entrypoint(fake_flink, "help")[-1].startswith("Usage: docker-entrypoint.sh (jobmanager|standalone-job|")
