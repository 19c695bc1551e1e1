//go:build tools

// Package tools pins Kueue's manager (sigs.k8s.io/kueue/cmd/kueue) for hack/kueue/build.sh;
// tests/e2e/kueue.py runs it out of cluster against the local cluster.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
