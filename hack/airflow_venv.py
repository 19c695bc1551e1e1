"""Apache Airflow with its Livy provider, the client an Airflow user points at Livy: installed once
from PyPI into a virtualenv of its own in the cache (`~/.cache/lakejob/airflow-<version>`, reused
until the pins change), apart from the project's venv (Airflow pins much of what the project also
uses). Nothing of Airflow runs but its LivyHook, in a script: no database, no scheduler (a hook
reads its connection from an AIRFLOW_CONN_* variable).

Called by tests/e2e/test_gateway_airflow_real_node.py. `python3 hack/airflow_venv.py install` prepares
the cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# The pins, and the name of their virtualenv: a changed pin is a new virtualenv.
AIRFLOW = "3.3.2"
LIVY_PROVIDER = "4.6.4"
CACHE = Path(os.environ.get("LAKEJOB_CACHE", Path.home() / ".cache" / "lakejob"))
HOME = CACHE / f"airflow-{AIRFLOW}-livy-{LIVY_PROVIDER}"
PYTHON = HOME / "bin" / "python"


def install() -> Path:
    """The virtualenv's Python (made first when missing: about two minutes from PyPI)."""
    if PYTHON.exists():
        return PYTHON
    partial = HOME.with_name(HOME.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"airflow: pip install apache-airflow=={AIRFLOW} apache-airflow-providers-apache-livy=={LIVY_PROVIDER} "
          f"into {HOME} (once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True)
    r = subprocess.run([str(partial / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        f"apache-airflow=={AIRFLOW}", f"apache-airflow-providers-apache-livy=={LIVY_PROVIDER}"],
                       capture_output=True, text=True, timeout=1200)
    if r.returncode:
        raise RuntimeError(f"pip install of Airflow failed: {(r.stderr or r.stdout).strip()[-2000:]}")
    # A virtualenv's scripts name its own path: it is made in place under the final name's parent and
    # renamed whole, so a half-made one is never taken for done (the interpreter path is a symlink).
    partial.rename(HOME)
    return PYTHON


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: hack/airflow_venv.py install")
    print(install())
