"""A Spark Connect client that keeps a session busy: `python sparksession_busy_client.py URL SECONDS`.

Run by tests/e2e/test_sparksession_real.py as a subprocess (pyspark's connect client warns about
versions of pandas, which pytest would turn into errors in-process). Two tasks each sleep SECONDS
inside the server's JVM, so one Spark job runs for about SECONDS on a local[2] server.
"""
import sys
import time

from pyspark.sql import SparkSession

url, seconds = sys.argv[1], int(sys.argv[2])
spark = SparkSession.builder.remote(url).getOrCreate()
started = time.time()
rows = spark.range(0, 2, 1, 2).selectExpr(
    f"reflect('java.lang.Thread', 'sleep', cast({seconds * 1000} as bigint)) as slept").collect()
print(f"ran {len(rows)} tasks in {time.time() - started:.1f}s", flush=True)
spark.stop()
