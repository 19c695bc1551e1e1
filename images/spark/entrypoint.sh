#!/bin/bash
# /opt/entrypoint.sh of lakejob.local/spark. It mirrors the interface of the official apache/spark
# image's entrypoint, which Spark on Kubernetes (and the pods lakejob renders) rely on; the code is
# this project's own:
#   driver ARGS...  spark-submit in client mode, bound to $SPARK_DRIVER_BIND_ADDRESS, under tini
#   executor        the KubernetesExecutorBackend JVM, configured from the SPARK_* variables that
#                   Spark's Kubernetes scheduler sets on executor pods, under tini
#   anything else   run as given (e.g. /opt/spark/bin/spark-submit ... or bash)
# The image runs as uid 185 (user spark) but a pod may pick any uid: without a passwd entry a
# temporary one is made with nss_wrapper, and HOME falls back to /tmp when it is not writable.
set -e

# --- the current uid may have no passwd entry (runAsUser with an arbitrary uid) ---------------
uid="$(id -u)"
gid="$(id -g)"
if ! getent passwd "$uid" >/dev/null 2>&1; then
  home=/tmp
  for lib in /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so; do
    [ -s "$lib" ] || continue
    if NSS_WRAPPER_PASSWD="$(mktemp)" && NSS_WRAPPER_GROUP="$(mktemp)"; then
      printf '%s:x:%s:%s:%s:%s:/bin/false\n' "${SPARK_USER_NAME:-spark}" "$uid" "$gid" \
        "${SPARK_USER_NAME:-anonymous uid}" "$home" >"$NSS_WRAPPER_PASSWD"
      printf '%s:x:%s:\n' "${SPARK_USER_NAME:-spark}" "$gid" >"$NSS_WRAPPER_GROUP"
      export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
    else
      echo "entrypoint: no passwd entry for uid $uid and /tmp is not writable; continuing without one" >&2
    fi
    break
  done
  # Hadoop's login and Spark's user name read these before asking the passwd database.
  export SPARK_USER="${SPARK_USER:-${SPARK_USER_NAME:-spark}}"
  export HADOOP_USER_NAME="${HADOOP_USER_NAME:-$SPARK_USER}"
fi
if [ -z "$HOME" ] || [ "$HOME" = / ] || ! [ -w "$HOME" ]; then
  export HOME=/tmp
fi

# --- Java, classpath, Python ------------------------------------------------------------------
if [ -z "$JAVA_HOME" ]; then
  JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  export JAVA_HOME
fi

classpath="${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}$SPARK_HOME/jars/*"
if [ -n "$SPARK_EXTRA_CLASSPATH" ]; then
  classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
fi
if [ -n "$HADOOP_HOME" ] && [ -z "$SPARK_DIST_CLASSPATH" ]; then
  SPARK_DIST_CLASSPATH="$("$HADOOP_HOME/bin/hadoop" classpath)"
  export SPARK_DIST_CLASSPATH
fi
if [ -n "${HADOOP_CONF_DIR+set}" ]; then
  classpath="$HADOOP_CONF_DIR:$classpath"
fi
if [ -n "${SPARK_CONF_DIR+set}" ]; then
  classpath="$SPARK_CONF_DIR:$classpath"
elif [ -n "${SPARK_HOME+set}" ]; then
  classpath="$SPARK_HOME/conf:$classpath"
fi
classpath="$classpath:$PWD"  # as SPARK-43540: files shipped to the working directory

# Passed on only when the pod sets them (Spark sets them from spark.pyspark.*).
if [ -n "${PYSPARK_PYTHON+set}" ]; then export PYSPARK_PYTHON; fi
if [ -n "${PYSPARK_DRIVER_PYTHON+set}" ]; then export PYSPARK_DRIVER_PYTHON; fi

# SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... (the executor's JVM options) in numeric order.
java_opts=()
for n in $(compgen -v SPARK_JAVA_OPT_ | sed -n 's/^SPARK_JAVA_OPT_\([0-9][0-9]*\)$/\1/p' | sort -n); do
  var="SPARK_JAVA_OPT_$n"
  java_opts+=("${!var}")
done

# The official image starts the driver and executors as user spark when it is run as root.
as_spark=()
if [ "$uid" = 0 ] && getent passwd spark >/dev/null 2>&1; then
  as_spark=(setpriv --reuid=spark --regid=spark --init-groups --)
fi

case "$1" in
  driver)
    shift
    exec "${as_spark[@]}" tini -s -- "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=$SPARK_DRIVER_BIND_ADDRESS" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=$SPARK_DRIVER_BIND_ADDRESS" \
      --deploy-mode client "$@"
    ;;
  executor)
    shift
    exec "${as_spark[@]}" tini -s -- "$JAVA_HOME/bin/java" "${java_opts[@]}" \
      -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
      -cp "$classpath${SPARK_DIST_CLASSPATH:+:$SPARK_DIST_CLASSPATH}" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" \
      --executor-id "$SPARK_EXECUTOR_ID" \
      --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" \
      --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "$SPARK_RESOURCE_PROFILE_ID" \
      --podName "$SPARK_EXECUTOR_POD_NAME"
    ;;
  *)
    exec "$@"
    ;;
esac
