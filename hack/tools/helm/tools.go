//go:build tools

// Package tools pins the helm CLI (chart lint/template/install tests) for hack/build-tools.sh.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
