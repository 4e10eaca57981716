// Package envoygateway holds no code: its tests decode the Envoy Gateway
// example manifests strictly with Envoy Gateway's, Gateway API's and
// Kubernetes' own Go types and check that they agree with each other and with
// the Envoy config the rest of tollgate's tests run.
package envoygateway
