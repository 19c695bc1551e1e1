"""Starts a SparkContext (so the Kubernetes backend requests executors) and idles until killed."""
import time

from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
print(f"app id {spark.sparkContext.applicationId}", flush=True)
time.sleep(600)
