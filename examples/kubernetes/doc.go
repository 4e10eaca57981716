// Package kubernetes holds no code: its tests decode the Kubernetes example
// strictly with Kubernetes' and Envoy's own Go types, run its Envoy config
// through the real Envoy's validate mode with the container's own arguments,
// and check that the socket, volumes and ports line up between the
// containers.
package kubernetes
