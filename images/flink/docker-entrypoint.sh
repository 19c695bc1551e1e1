#!/bin/bash
# /docker-entrypoint.sh of lakejob.local/flink. It offers the interface of the official `flink`
# image's entrypoint (flink-docker), which Flink's Kubernetes guides and lakejob's FlinkJarJob pods
# rely on; the code is this project's own:
#   jobmanager ARGS...      $FLINK_HOME/bin/jobmanager.sh start-foreground ARGS (a session cluster)
#   standalone-job ARGS...  $FLINK_HOME/bin/standalone-job.sh start-foreground ARGS (application mode)
#   taskmanager ARGS...     $FLINK_HOME/bin/taskmanager.sh start-foreground ARGS
#   history-server ARGS...  $FLINK_HOME/bin/historyserver.sh start-foreground ARGS
#   help                    this usage
#   anything else           run as given (e.g. flink run ..., bash)
# Before any of them, as the official image does, the configuration gets jobmanager.rpc.address
# ($JOB_MANAGER_RPC_ADDRESS, else this container's hostname), blob.server.port 6124,
# query.server.port 6125, taskmanager.numberOfTaskSlots ($TASK_MANAGER_NUMBER_OF_TASK_SLOTS, when
# set) and every `key: value` line of $FLINK_PROPERTIES (${VAR} references expanded from the
# environment); $ENABLE_BUILT_IN_PLUGINS (jar names of $FLINK_HOME/opt, `;`-separated) are linked
# into $FLINK_HOME/plugins.
#
# Where the official image rewrites $FLINK_HOME/conf in place, this one writes the result to a
# fresh directory under $TMPDIR (default /tmp) whenever the configuration directory is not writable
# (a ConfigMap mount, a read-only root file system) and points FLINK_CONF_DIR there; so a pod with
# readOnlyRootFilesystem needs only /tmp (and $FLINK_HOME/log) writable. Values may contain spaces:
# the options go to Flink's own configuration tool (BashJavaUtils) as one argument each.
set -euo pipefail

FLINK_HOME="${FLINK_HOME:-/opt/flink}"
usage="Usage: $(basename "$0") (jobmanager|standalone-job|taskmanager|history-server) [ARGS...] | help | COMMAND [ARGS...]"

die() {
  echo "docker-entrypoint: $*" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then
  echo "docker-entrypoint: WARNING: running as root; the image's user is flink (uid 9999)" >&2
fi
if [ -z "${HOME:-}" ] || [ "$HOME" = / ] || ! [ -w "$HOME" ]; then
  export HOME="${TMPDIR:-/tmp}"
fi

# --- built-in plugins ----------------------------------------------------------------------------
if [ -n "${ENABLE_BUILT_IN_PLUGINS:-}" ]; then
  IFS=';' read -r -a plugins <<<"$ENABLE_BUILT_IN_PLUGINS"
  for jar in "${plugins[@]}"; do
    [ -n "$jar" ] || continue
    [ -e "$FLINK_HOME/opt/$jar" ] || die "plugin $jar is not in $FLINK_HOME/opt (ENABLE_BUILT_IN_PLUGINS)"
    mkdir -p "$FLINK_HOME/plugins/${jar%.jar}" || die "cannot create $FLINK_HOME/plugins/${jar%.jar}: is the root file system read-only?"
    ln -fs "$FLINK_HOME/opt/$jar" "$FLINK_HOME/plugins/${jar%.jar}/"
    echo "docker-entrypoint: enabled plugin $jar"
  done
fi

# --- the configuration ---------------------------------------------------------------------------
# ${VAR} and $VAR from the environment, as envsubst does (an unset variable becomes empty).
expand() {
  python3 -c 'import os, re, sys
print(re.sub(r"\$(\{(\w+)\}|(\w+))", lambda m: os.environ.get(m.group(2) or m.group(3), ""), sys.argv[1]))' "$1"
}

options=("-Djobmanager.rpc.address=${JOB_MANAGER_RPC_ADDRESS:-$(hostname -f)}"
         "-Dblob.server.port=6124" "-Dquery.server.port=6125")
if [ -n "${TASK_MANAGER_NUMBER_OF_TASK_SLOTS:-}" ]; then
  options+=("-Dtaskmanager.numberOfTaskSlots=$TASK_MANAGER_NUMBER_OF_TASK_SLOTS")
fi
while IFS= read -r line; do
  case "$line" in *:*) ;; *) continue ;; esac  # blank lines and anything without a key
  key="${line%%:*}"
  value="${line#*:}"
  key="$(echo "$key" | tr -d '[:space:]')"
  value="$(expand "$(echo "$value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')")"
  if [ -n "$key" ]; then
    options+=("-D$key=$value")
  fi
done <<<"${FLINK_PROPERTIES:-}"

conf="${FLINK_CONF_DIR:-$FLINK_HOME/conf}"
[ -f "$conf/config.yaml" ] || die "no config.yaml in $conf (this image runs Flink 2, which reads only config.yaml)"
if ! [ -w "$conf" ] || ! [ -w "$conf/config.yaml" ]; then
  writable="$(mktemp -d "${TMPDIR:-/tmp}/flink-conf.XXXXXX")" \
    || die "$conf is read-only and ${TMPDIR:-/tmp} is not writable: mount an emptyDir at /tmp"
  # -L: a ConfigMap's files are symlinks into its ..data folder; the glob skips those dot folders.
  cp -L "$conf"/* "$writable"/
  conf="$writable"
fi
export FLINK_CONF_DIR="$conf"
dist=("$FLINK_HOME"/lib/flink-dist*.jar)
result="$("${JAVA_HOME:-/usr/lib/jvm/default-java}/bin/java" -Xmx64m -classpath "$FLINK_HOME/bin/bash-java-utils.jar:${dist[0]}" \
  org.apache.flink.runtime.util.bash.BashJavaUtils UPDATE_AND_GET_FLINK_CONFIGURATION \
  --configDir "$conf" "${options[@]}" 2>&1)" || die "Flink could not read $conf/config.yaml: $(echo "$result" | tail -n 3)"
prefix="BASH_JAVA_UTILS_EXEC_RESULT:"
grep "^$prefix" <<<"$result" | sed "s/^$prefix//" >"$conf/config.yaml.new" \
  || die "Flink's configuration tool gave no configuration: $(echo "$result" | tail -n 3)"
mv "$conf/config.yaml.new" "$conf/config.yaml"

# --- the command ---------------------------------------------------------------------------------
command="${1:-help}"
[ $# -gt 0 ] && shift
case "$command" in
  help) echo "$usage"; exit 0 ;;
  jobmanager) script=jobmanager.sh ;;
  standalone-job) script=standalone-job.sh ;;
  taskmanager) script=taskmanager.sh ;;
  history-server) script=historyserver.sh ;;
  *) exec "$command" "$@" ;;
esac
echo "docker-entrypoint: starting $command (configuration in $FLINK_CONF_DIR)"
# tini as PID 1: it forwards the kubelet's SIGTERM to the JVM and reaps what the JVM leaves behind.
exec tini -s -- "$FLINK_HOME/bin/$script" start-foreground "$@"
