#!/usr/bin/env bash
# Builds Argo CD (one multi-call binary: the file name or ARGOCD_BINARY_NAME picks the component) from
# the Go modules pinned in hack/argocd/module (go.mod + go.sum committed), into
# $LAKEJOB_CACHE/argocd/<inputs hash>/argocd with the same version's Application and AppProject CRDs
# beside it in crds/, and prints the binary's path on stdout (progress goes to stderr).
# The hash covers the module files and this script, so the binary is rebuilt only when one of them
# changes; an older build is removed once a new one is in place (each is ~225 MiB).
# Called by the argocd fixture of tests/e2e/test_argocd_real.py (and by hand: bash hack/argocd/build.sh).
# A cold build is ~90 s of module downloads and ~7 min of compiling on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LAKEJOB_CACHE:-$HOME/.cache/lakejob}/argocd
ARGOCD_VERSION=2.14.21  # must match hack/argocd/module/go.mod

die() { echo "build-argocd: $*" >&2; exit 1; }
. "$here/../progress.sh"
command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go 1.24 or newer and put its bin directory on PATH, then retry"

key=$(cat "$here/module/go.mod" "$here/module/go.sum" "$here/module/tools.go" "$here/build.sh" | sha256sum | cut -c1-16)
out=$cache/$key/argocd
if [ -x "$out" ] && [ -d "$cache/$key/crds" ]; then echo "$out"; exit 0; fi

# Never let Go fetch a toolchain of its own, and build a static binary.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$cache"
log=$(mktemp)
tmp=$(mktemp -d "$cache/.build.XXXXXX")
# Only in this shell: bash at times runs a script's EXIT trap in progress_run's heartbeat subshell as
# that is killed, which would delete the build folder mid-build (found by hack/kueue/build.sh's test).
trap '[ "$BASHPID" != "$$" ] || rm -rf "$tmp" "$log"' EXIT

echo "build-argocd: building Argo CD v$ARGOCD_VERSION (a cold build takes ~9 minutes; cached in $cache)" >&2
start=$SECONDS
go_download() { cd "$here/module" && go mod download; }
# Without common.version the binary reports v99.99.99 (and so would every Application's status).
go_build() {
  cd "$here/module" && go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-cd/v2/common.version=$ARGOCD_VERSION" \
    -o "$tmp/argocd" github.com/argoproj/argo-cd/v2/cmd
}
# Download first so that a proxy problem gets its own clear message.
if ! progress_run --log "$log" build-argocd 1/2 "downloading the Go modules of hack/argocd/module" go_download; then
  tail -n 5 "$log" >&2
  die "could not download the Go modules in hack/argocd/module: is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?"
fi
if ! progress_run --log "$log" build-argocd 2/2 "building Argo CD" go_build; then
  tail -n 20 "$log" >&2
  die "go build of github.com/argoproj/argo-cd/v2/cmd failed (see the lines above)"
fi
# The CRDs from the very module that was built (argo-cd's manifests/crds/).
src=$(cd "$here/module" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v2)
mkdir -p "$tmp/crds"
cp "$src/manifests/crds/application-crd.yaml" "$src/manifests/crds/appproject-crd.yaml" "$tmp/crds/"
# Into place only once built, so a killed build leaves nothing half-made; then drop older builds.
rm -rf "${cache:?}/$key"
mkdir -p "$cache/$key"
mv "$tmp/argocd" "$tmp/crds" "$cache/$key/"
for old in "$cache"/*/; do [ "${old%/}" = "$cache/$key" ] || rm -rf "$old"; done
echo "build-argocd: built in $((SECONDS - start))s" >&2
echo "$out"
