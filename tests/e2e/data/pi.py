"""Monte Carlo pi, the classic Spark example, written for lakejob's real-Spark tests."""
import random
import sys

from pyspark.sql import SparkSession

partitions = int(sys.argv[1]) if len(sys.argv) > 1 else 2
n = 20000 * partitions
spark = SparkSession.builder.getOrCreate()


def inside(_: int) -> int:
    x, y = random.random() * 2 - 1, random.random() * 2 - 1
    return 1 if x * x + y * y <= 1 else 0


count = spark.sparkContext.parallelize(range(n), partitions).map(inside).reduce(lambda a, b: a + b)
print(f"Pi is roughly {4.0 * count / n}")
print(f"app id {spark.sparkContext.applicationId}")
spark.stop()
