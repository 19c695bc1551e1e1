"""The vendors' packages, made here: what the DLI example bodies name, as real files for a package
store (docs/packages.md). SparkPi compiled from images/spark/examples (the class DLI's example
runs from `batchTest/spark-examples_2.11-2.1.0.luxor.jar`), tiny real jars and files for the
example's other names; the Livy example's Job1 and its helper jar.

Called by hack/demo.py (which serves them from moto's S3 server on the real node's bridge) and the
real-tier tests (tests/e2e/test_packages_real_node.py, through tests/e2e/objectstore.py).
"""
from __future__ import annotations

import io
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "Manifest-Version: 1.0\r\nCreated-By: lakejob hack/store.py\r\n\r\n"


def compile_jar(sources: list[Path], classpath: list[str], what: str) -> bytes:
    """A jar of `sources` compiled by javac 17 against `classpath` (directories, jars, `dir/*`)."""
    with tempfile.TemporaryDirectory() as tmp:
        classes = Path(tmp)
        r = subprocess.run(["javac", "--release", "17", "-cp", ":".join(classpath), "-d", str(classes),
                            *map(str, sources)], capture_output=True, text=True, timeout=300)
        if r.returncode:
            raise RuntimeError(f"javac could not compile {what}: {r.stderr.strip()[-2000:]}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", MANIFEST)
            for f in sorted(classes.rglob("*.class")):
                z.write(f, f.relative_to(classes).as_posix())
        return buf.getvalue()


def spark_jars() -> str:
    """The installed pyspark's jars, as a javac class path entry."""
    import pyspark

    return f"{Path(pyspark.__file__).parent / 'jars'}/*"


def flink_jar(sources: list[Path], what: str) -> bytes:
    """Java sources compiled against the installed Flink distribution's jars (apache-flink-libraries)."""
    import pyflink

    return compile_jar(sources, [f"{Path(pyflink.__file__).parent / 'lib'}/*"], what)


def spark_examples_jar() -> bytes:
    """images/spark/examples compiled against the installed pyspark's jars, as images/build.py
    compiles them into the Spark image's spark-examples.jar."""
    return compile_jar(sorted((ROOT / "images" / "spark" / "examples").rglob("*.java")), [spark_jars()],
                       "images/spark/examples")


def livy_example_jars() -> tuple[bytes, bytes]:
    """(sample.jar, helper.jar) of HDInsight's Livy example body: com.sample.Job1 and, apart, the
    Helper it calls (tests/e2e/data/livy)."""
    src = ROOT / "tests" / "e2e" / "data" / "livy" / "com" / "sample"
    with tempfile.TemporaryDirectory() as tmp:
        helper = Path(tmp) / "helper.jar"
        helper.write_bytes(compile_jar([src / "Helper.java"], [spark_jars()], "Helper"))
        sample = compile_jar([src / "Job1.java"], [spark_jars(), str(helper)], "Job1")
        return sample, helper.read_bytes()


def small_jar(name: str) -> bytes:
    """A real (if tiny) jar: a manifest and one resource naming it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", MANIFEST)
        z.writestr(f"lakejob/{name}.txt", name)
    return buf.getvalue()


def dli_batch_packages(spec: dict[str, Any], main_jar: bytes) -> Iterator[tuple[str, bytes]]:
    """(package name, content) for every package a DLI Spark batch body names: its `file` is
    `main_jar`, its jars, resources and groups' resources tiny jars, its files one line each."""
    yield spec["file"], main_jar
    for name in [*(spec.get("jars") or []), *(r["name"] for r in spec.get("resources") or []),
                 *(f"{g['name']}/{r['name']}" for g in spec.get("groups") or [] for r in g.get("resources") or [])]:
        yield name, small_jar(name)
    for name in spec.get("files") or []:
        yield name, b"42\n"
