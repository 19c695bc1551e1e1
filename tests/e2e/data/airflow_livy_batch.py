"""Run by Airflow's Python (hack/airflow_venv.py), not pytest: what an Airflow task does with the Livy
provider's LivyHook (as LivyOperator does: submit, poll the state, dump the log), against the
connection in AIRFLOW_CONN_LIVY_DEFAULT. Prints one JSON object of what it saw, for
test_gateway_airflow_real_node.py to compare with the SparkBatch.

usage: python airflow_livy_batch.py TIMEOUT_SECONDS
"""
import json
import sys
import time

from airflow.providers.apache.livy.hooks.livy import BatchState, LivyHook

hook = LivyHook(livy_conn_id="livy_default")
batch_id = hook.post_batch(file="local:///opt/spark/examples/jars/spark-examples.jar",
                           class_name="org.apache.spark.examples.SparkPi", args=["4"], driver_memory="512M",
                           driver_cores=1, executor_memory="512M", executor_cores=1, num_executors=1,
                           name="from-airflow")
states = []
deadline = time.monotonic() + float(sys.argv[1])
while True:
    state = hook.get_batch_state(batch_id)
    if not states or states[-1] != state.value:
        states.append(state.value)
    if state in hook.TERMINAL_STATES or time.monotonic() > deadline:
        break
    time.sleep(2)
hook.dump_batch_logs(batch_id)  # LivyOperator's paging of the whole log, 100 lines a call
first = hook.get_batch_logs(batch_id, 0, 100)
lines, start = [], 0
while start < first["total"]:
    lines += hook.get_batch_logs(batch_id, start, 100)["log"]
    start += 100
print(json.dumps({"id": batch_id, "states": states, "terminal": state in hook.TERMINAL_STATES,
                  "success": state == BatchState.SUCCESS, "batch": hook.get_batch(batch_id), "total": first["total"],
                  "log": lines}))
