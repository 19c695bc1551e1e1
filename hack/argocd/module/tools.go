//go:build tools

// Package tools pins Argo CD (one multi-call binary: application-controller, repo-server, ...) for
// hack/argocd/build.sh; tests/e2e/test_argocd_real.py runs it against the local cluster.
package tools

import _ "github.com/argoproj/argo-cd/v2/cmd"
