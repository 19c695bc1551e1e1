//go:build tools

// Package tools pins CoreDNS (the local cluster's DNS on its real node) for
// hack/build-tools.sh; its own module so its dependency versions never mix with
// Kubernetes' (MVS).
package tools

import _ "github.com/coredns/coredns"
