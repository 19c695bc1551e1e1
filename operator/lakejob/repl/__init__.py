"""The statement server of a SparkSession: Livy's statements (`sql`, `pyspark`) run inside the
session's own pod. `server.py` is shipped to that pod as a file (the session's ConfigMap) and runs
in the Spark image's Python beside the Connect server; it imports nothing of lakejob's.
render.sparksession reads it (SOURCE) to put it in the ConfigMap.
"""
from __future__ import annotations

from importlib import resources

SOURCE = resources.files(__package__).joinpath("server.py").read_text(encoding="utf-8")
