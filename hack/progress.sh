# Progress lines for the long steps of bash scripts and the Makefile (hack/build-tools.sh,
# hack/argocd/build.sh, the venv's pip installs): source it, then
#   progress_run [--log FILE] TAG COUNTER WHAT COMMAND [ARG...]
# says `TAG: [3/9] WHAT…`, then `TAG: … still WHAT, 45 s` every PROGRESS_HEARTBEAT seconds (20)
# while COMMAND runs, then `TAG: [3/9] WHAT: done in 95 s` or `failed (exit 2) after 95 s`, and
# returns COMMAND's exit code. COUNTER is "3/9", or "" for none. --log FILE: COMMAND's stdout and
# stderr go to FILE (the progress lines never do). COMMAND runs in a subshell, so it may be a
# function of the caller's that cds. hack/progress.py is the same for Python.
# Plain lines on stderr: they read the same in a CI log as on a terminal.

progress_run() {
  local log=
  if [ "${1-}" = --log ]; then log=$2; shift 2; fi
  local tag=$1 counter=$2 what=$3; shift 3
  local label=$what every=${PROGRESS_HEARTBEAT:-20} start=$SECONDS owner=$BASHPID beat rc=0
  [ -z "$counter" ] || label="[$counter] $what"
  echo "$tag: $label…" >&2
  # The heartbeat sleeps in 1 s ticks and checks its owner each tick, so that it also stops within a
  # second of its owner dying (a Ctrl-C: bash makes a script's background jobs ignore SIGINT) and
  # never holds the output open for long after. Told to stop, it stops at once, its sleep with it.
  (s=
   trap '[ -z "$s" ] || kill "$s" 2>/dev/null; exit 0' TERM
   ticks=0
   while kill -0 "$owner" 2>/dev/null; do
     sleep 1 </dev/null >/dev/null 2>&1 &
     s=$!
     wait "$s"
     ticks=$((ticks + 1))
     if [ "$ticks" -ge "$every" ]; then ticks=0; echo "$tag: … still $what, $((SECONDS - start)) s" >&2; fi
   done) &
  beat=$!
  if [ -n "$log" ]; then ("$@") >"$log" 2>&1 || rc=$?; else ("$@") || rc=$?; fi
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if [ "$rc" -eq 0 ]; then
    echo "$tag: $label: done in $((SECONDS - start)) s" >&2
  else
    echo "$tag: $label: failed (exit $rc) after $((SECONDS - start)) s" >&2
  fi
  return "$rc"
}
