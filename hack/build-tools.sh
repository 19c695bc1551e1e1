#!/usr/bin/env bash
# Builds the local control plane's (and its real node's) binaries from Go modules into the cache
# (default ~/.cache/lakejob/bin, or $LAKEJOB_CACHE/bin), once: a binary that is
# already there is not rebuilt. Called by `make tools` (and so by `make cluster`,
# `make test`, `make demo`). The wrapper modules under hack/tools/ pin every
# module version and checksum (go.mod + go.sum are committed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${LAKEJOB_CACHE:-$HOME/.cache/lakejob}
bin=$cache/bin
mkdir -p "$bin"

K8S_VERSION=v1.34.4   # must match hack/tools/k8s/go.mod
ETCD_VERSION=v3.6.14  # must match hack/tools/etcd/go.mod
KWOK_VERSION=v0.7.0   # must match hack/tools/kwok/go.mod
HELM_VERSION=v3.19.0  # must match hack/tools/helm/go.mod
COREDNS_VERSION=v1.15.0  # must match hack/tools/coredns/go.mod (the real node's cluster DNS)

die() { echo "build-tools: $*" >&2; exit 1; }
beat=
trap '[ -z "$beat" ] || kill "$beat" 2>/dev/null || true' EXIT  # never leave a heartbeat behind

command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go 1.26 or newer and put its bin directory on PATH, then retry"

# Never let Go fetch a toolchain of its own, and build static binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

build() {  # build <module dir> <ldflags> <binary>=<package>...
  local dir=$1 ldflags=$2; shift 2
  local missing=()
  for pair in "$@"; do [ -x "$bin/${pair%%=*}" ] || missing+=("$pair"); done
  ((${#missing[@]})) || return 0
  local names=("${missing[@]%%=*}")
  echo "build-tools: building ${names[*]} (a cold build takes minutes; cached in $bin)"
  local start=$SECONDS log tmp
  log=$(mktemp)
  # Download first so that a proxy problem gets its own clear message.
  if ! (cd "$here/tools/$dir" && go mod download) >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    die "could not download the Go modules in hack/tools/$dir: is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?"
  fi
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  for pair in "${missing[@]}"; do
    # A heartbeat, so that minutes of compiling are not minutes of silence.
    # Its sleep dies with it and never holds the output open (even when killed before `s` is set).
    (t0=$(date +%s); s=; trap '[ -z "$s" ] || kill "$s" 2>/dev/null; exit 0' TERM
     while :; do sleep 30 >/dev/null 2>&1 & s=$!; wait "$s"; echo "build-tools: still building ${pair%%=*} ($(( $(date +%s) - t0 ))s)"; done) &
    beat=$!
    if ! (cd "$here/tools/$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp/${pair%%=*}" "${pair#*=}") >"$log" 2>&1; then
      kill "$beat" 2>/dev/null || true
      beat=
      tail -n 20 "$log" >&2
      rm -rf "$tmp"
      die "go build of ${pair#*=} failed (see the lines above)"
    fi
    kill "$beat" 2>/dev/null || true
    beat=
  done
  # Move into place only when every binary built, so a killed build leaves nothing half-made.
  for b in "${names[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp" "$log"
  echo "build-tools: built ${names[*]} in $((SECONDS - start))s"
}

kv="-X k8s.io/component-base/version"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
build k8s "-s -w $kv.gitVersion=$K8S_VERSION $kv.gitMajor=1 $kv.gitMinor=$minor $kv.gitTreeState=clean" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  kubelet=k8s.io/kubernetes/cmd/kubelet \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
build etcd "-s -w" etcd=go.etcd.io/etcd/server/v3
build kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" kwok=sigs.k8s.io/kwok/cmd/kwok
build helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm=helm.sh/helm/v3/cmd/helm
build coredns "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" coredns=github.com/coredns/coredns
