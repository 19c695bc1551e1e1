"""images/build.py without building anything: what goes into an image's input hash (and so what
rebuilds it), the references `names` prints, and its one-line errors."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "images" / "build.py"
NAMES = ["pause", "python-base", "jre-base", "spark", "operator"]


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


def test_a_base_image_rebuilds_the_images_on_it(tree: Path) -> None:
    assert changed(tree, append(tree / "images" / "jre-base" / "packages", "less\n")) == {"jre-base", "spark"}
    assert changed(tree, append(tree / "images" / "python-base" / "Dockerfile", "\n")) == {"python-base", "operator"}


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


def test_names_lists_the_five_references() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "names"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = dict(line.split("\t") for line in r.stdout.splitlines())
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    spark = (ROOT / "images" / "spark" / "VERSION").read_text().strip()
    assert rows == {
        "pause": "lakejob.local/pause:3.10",
        "python-base": "lakejob.local/python-base:bookworm",
        "jre-base": "lakejob.local/jre-base:bookworm",
        "spark": f"lakejob.local/spark:{spark}",
        "operator": f"lakejob.local/operator:{version}",
    }


def test_tars_are_named_by_the_hash_under_lakejob_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEJOB_CACHE", str(tmp_path))
    assert images.tar_path("spark", "0123456789abcdef" * 4) == tmp_path / "images" / "spark-0123456789ab.tar"


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
