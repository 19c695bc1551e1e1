//go:build tools

// Package tools pins the upstream Kubernetes commands that hack/build-tools.sh
// builds unchanged (`go build k8s.io/kubernetes/cmd/...`); this module exists only
// to map k8s.io/kubernetes' staging replaces onto their published v0.34.x twins.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
