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
. "$here/progress.sh"

command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go 1.26 or newer and put its bin directory on PATH, then retry"

# Never let Go fetch a toolchain of its own, and build static binaries.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

missing() {  # missing <binary>=<package>...: the pairs whose binary is not in the cache
  local pair
  for pair in "$@"; do [ -x "$bin/${pair%%=*}" ] || echo "$pair"; done
}

count() {  # count <module dir> <ldflags> <binary>=<package>...: adds the missing ones to $total
  shift 2
  total=$((total + $(missing "$@" | wc -l)))
}

go_download() {  # go_download <module dir>
  cd "$here/tools/$1" && go mod download
}

go_build() {  # go_build <module dir> <ldflags> <output> <package>
  cd "$here/tools/$1" && go build -trimpath -ldflags "$2" -o "$3" "$4"
}

build() {  # build <module dir> <ldflags> <binary>=<package>...
  local dir=$1 ldflags=$2; shift 2
  local pairs
  mapfile -t pairs < <(missing "$@")
  ((${#pairs[@]})) || return 0
  local names=("${pairs[@]%%=*}") log tmp pair
  log=$(mktemp)
  # Download first so that a proxy problem gets its own clear message.
  if ! progress_run --log "$log" build-tools "" "downloading the Go modules of hack/tools/$dir" \
      go_download "$dir"; then
    tail -n 5 "$log" >&2
    die "could not download the Go modules in hack/tools/$dir: is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))?"
  fi
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  for pair in "${pairs[@]}"; do
    done_=$((done_ + 1))
    if ! progress_run --log "$log" build-tools "$done_/$total" "building ${pair%%=*}" \
        go_build "$dir" "$ldflags" "$tmp/${pair%%=*}" "${pair#*=}"; then
      tail -n 20 "$log" >&2
      rm -rf "$tmp"
      die "go build of ${pair#*=} failed (see the lines above)"
    fi
  done
  # Move into place only when every binary built, so a killed build leaves nothing half-made.
  for b in "${names[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp" "$log"
}

kv="-X k8s.io/component-base/version"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
tools() {  # tools count|build: every binary, in one list for both
  "$1" k8s "-s -w $kv.gitVersion=$K8S_VERSION $kv.gitMajor=1 $kv.gitMinor=$minor $kv.gitTreeState=clean" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kubectl=k8s.io/kubernetes/cmd/kubectl \
    kubelet=k8s.io/kubernetes/cmd/kubelet \
    kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
  "$1" etcd "-s -w" etcd=go.etcd.io/etcd/server/v3
  "$1" kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" kwok=sigs.k8s.io/kwok/cmd/kwok
  "$1" helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm=helm.sh/helm/v3/cmd/helm
  "$1" coredns "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" coredns=github.com/coredns/coredns
}
total=0 done_=0
tools count
((total)) || exit 0
echo "build-tools: $total binaries to build from Go modules into $bin (a cold build takes minutes each)" >&2
start=$SECONDS
tools build
echo "build-tools: built $total binaries in $((SECONDS - start)) s" >&2
