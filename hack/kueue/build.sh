#!/usr/bin/env bash
# Builds Kueue's manager (sigs.k8s.io/kueue/cmd/kueue) from the Go modules pinned in hack/kueue/module
# (go.mod + go.sum committed) into $LAKEJOB_CACHE/kueue/<inputs hash>/kueue, with the same version's
# CRDs (the module's config/components/crd/bases) beside it in crds/, and prints the binary's path on
# stdout (progress goes to stderr).
# The hash covers the module files and this script, so the binary is rebuilt only when one of them
# changes; an older build is removed once a new one is in place.
# Called by `make kueue`, and by tests/e2e/kueue.py (which runs the manager out of cluster).
# Kueue v0.17.0's go.mod has no replace directives, so the wrapper module needs none.
# Cold (empty module and build caches): ~20 s of module downloads and ~10.5 min of compiling on 2 cores
# (measured 2026-12-04, the machine otherwise busy); with Go's caches warm ~11 s; the binary is ~83 MiB.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LAKEJOB_CACHE:-$HOME/.cache/lakejob}/kueue
KUEUE_VERSION=v0.17.0  # must match hack/kueue/module/go.mod
KUEUE_COMMIT=4d5f7ffc7bdc5f88c723678cdacb89c05158dd36  # the commit of upstream's tag v0.17.0

die() { echo "build-kueue: $*" >&2; exit 1; }
. "$here/../progress.sh"
command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go 1.25 or newer and put its bin directory on PATH, then retry"

key=$(cat "$here/module/go.mod" "$here/module/go.sum" "$here/module/tools.go" "$here/build.sh" | sha256sum | cut -c1-16)
out=$cache/$key/kueue
if [ -x "$out" ] && [ -d "$cache/$key/crds" ]; then echo "$out"; exit 0; fi

# Never let Go fetch a toolchain of its own, and build a static binary.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$cache"
log=$(mktemp)
tmp=$(mktemp -d "$cache/.build.XXXXXX")
# Only in this shell: bash (5.2) at times runs a script's EXIT trap in a background subshell that is
# killed as it starts, such as progress_run's heartbeat (about 1 step in 60 here), which would delete
# the build folder mid-build ("cannot create …/.build.XXXXXX/kueue: Directory nonexistent").
trap '[ "$BASHPID" != "$$" ] || rm -rf "$tmp" "$log"' EXIT

echo "build-kueue: building Kueue $KUEUE_VERSION (a cold build takes ~11 minutes; cached in $cache)" >&2
start=$SECONDS
go_download() { cd "$here/module" && go mod download; }
# Without these the manager logs gitVersion v0.0.0-main at start (upstream's Makefile sets the same three).
go_build() {
  local v=sigs.k8s.io/kueue/pkg/version
  cd "$here/module" && go build -trimpath \
    -ldflags "-s -w -X $v.GitVersion=$KUEUE_VERSION -X $v.GitCommit=$KUEUE_COMMIT -X $v.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -o "$tmp/kueue" sigs.k8s.io/kueue/cmd/kueue
}
# Download first so that a proxy problem gets its own clear message.
if ! progress_run --log "$log" build-kueue 1/2 "downloading the Go modules of hack/kueue/module" go_download; then
  tail -n 5 "$log" >&2
  die "could not download the Go modules in hack/kueue/module: is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?"
fi
if ! progress_run --log "$log" build-kueue 2/2 "building Kueue's manager" go_build; then
  tail -n 20 "$log" >&2
  die "go build of sigs.k8s.io/kueue/cmd/kueue failed (see the lines above)"
fi
# The CRDs from the very module that was built.
src=$(cd "$here/module" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)
[ -d "$src/config/components/crd/bases" ] || die "no config/components/crd/bases in $src"
mkdir -p "$tmp/crds"
cp "$src"/config/components/crd/bases/*.yaml "$tmp/crds/"
chmod u+w "$tmp"/crds/*.yaml  # the module cache is read-only; the copies need not be
# Into place only once built, so a killed build leaves nothing half-made; then drop older builds.
rm -rf "${cache:?}/$key"
mkdir -p "$cache/$key"
mv "$tmp/kueue" "$tmp/crds" "$cache/$key/"
for old in "$cache"/*/; do [ "${old%/}" = "$cache/$key" ] || rm -rf "$old"; done
echo "build-kueue: built in $((SECONDS - start))s" >&2
echo "$out"
