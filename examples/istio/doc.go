// Package istio holds no code: its tests decode the Istio example manifests
// strictly with Istio's, Kubernetes' and Envoy's own Go types, check that they
// agree with each other, and run the EnvoyFilter's filter config in a real
// Envoy.
package istio
