//go:build tools

// Package tools pins etcd's server command for hack/build-tools.sh; etcd lives in
// its own module so its grpc/otel versions never mix with Kubernetes' (MVS).
package tools

import _ "go.etcd.io/etcd/server/v3"
