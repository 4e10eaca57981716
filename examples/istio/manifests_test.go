package istio

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	clientnetworking "istio.io/client-go/pkg/apis/networking/v1alpha3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/envoy"
)

// manifest is one decoded document of an example file.
type manifest struct {
	kind string
	obj  any // the typed object: *clientnetworking.EnvoyFilter, *appsv1.Deployment, ...
}

// decodeStrict decodes JSON into v the way the Kubernetes API server does:
// field names match case-sensitively, and unknown or duplicate fields fail.
func decodeStrict(j []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeEnvoyFilter decodes an EnvoyFilter strictly. The client-go type's
// spec decoder ignores unknown fields, so the spec is decoded a second time
// with protojson, which does not.
func decodeEnvoyFilter(j []byte) (*clientnetworking.EnvoyFilter, error) {
	var ef clientnetworking.EnvoyFilter
	if err := decodeStrict(j, &ef); err != nil {
		return nil, err
	}
	var raw struct{ Spec json.RawMessage }
	if err := json.Unmarshal(j, &raw); err != nil {
		return nil, err
	}
	var spec networkingv1alpha3.EnvoyFilter
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw.Spec, &spec); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	return &ef, nil
}

// decodeManifests splits a multi-document YAML file and decodes every
// document strictly into its kind's Go type.
func decodeManifests(b []byte) ([]manifest, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []manifest
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, err
		}
		if string(j) == "null" {
			continue // only comments
		}
		var tm struct{ APIVersion, Kind string }
		if err := json.Unmarshal(j, &tm); err != nil {
			return nil, err
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			obj, err = decodeEnvoyFilter(j)
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 PersistentVolumeClaim":
			obj = &corev1.PersistentVolumeClaim{}
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		default:
			return nil, fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
		}
		if err == nil && tm.Kind != "EnvoyFilter" {
			err = decodeStrict(j, obj)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		out = append(out, manifest{kind: tm.Kind, obj: obj})
	}
}

func readManifests(t *testing.T, file string) []manifest {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := decodeManifests(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return ms
}

// only returns the one object of type T in ms.
func only[T any](t *testing.T, ms []manifest) T {
	t.Helper()
	var found []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T, found %d", zero, len(found))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for _, c := range []struct {
		file  string
		kinds []string
	}{
		{"tollgate.yaml", []string{"Namespace", "PersistentVolumeClaim", "Deployment", "Service"}},
		{"envoyfilter-gateway.yaml", []string{"EnvoyFilter"}},
		{"envoyfilter-sidecar.yaml", []string{"EnvoyFilter"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			var kinds []string
			for _, m := range readManifests(t, c.file) {
				kinds = append(kinds, m.kind)
			}
			if diff := cmp.Diff(c.kinds, kinds); diff != "" {
				t.Errorf("kinds (-want +got):\n%s", diff)
			}
		})
	}
}

// The decoders are strict at every level: a misspelt field fails whether it
// is in Kubernetes' metadata, in Istio's spec, or in the Envoy config inside
// the patch value.
func TestStrictDecodingRejectsTypos(t *testing.T) {
	gateway, err := os.ReadFile("envoyfilter-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	deployment, err := os.ReadFile("tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, file, old, typo string
		doc                   []byte
	}{
		{"kubernetes metadata", "envoyfilter-gateway.yaml", "namespace:", "namespce:", gateway},
		{"istio spec", "envoyfilter-gateway.yaml", "configPatches:", "configPatchs:", gateway},
		{"istio match", "envoyfilter-gateway.yaml", "subFilter:", "subfilter:", gateway},
		{"envoy filter config", "envoyfilter-gateway.yaml", "failure_mode_allow:", "failure_mode_alow:", gateway},
		{"deployment", "tollgate.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:", deployment},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := bytes.Replace(c.doc, []byte(c.old), []byte(c.typo), 1)
			if bytes.Equal(bad, c.doc) {
				t.Fatalf("%s has no %q", c.file, c.old)
			}
			ms, err := decodeManifests(bad)
			if err == nil {
				// The Envoy config inside a patch is opaque to Istio's types.
				for _, m := range ms {
					if ef, ok := m.obj.(*clientnetworking.EnvoyFilter); ok {
						_, err = patchValues(ef)
					}
				}
			}
			if err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(c.typo, ":")) {
				t.Errorf("decoding with %q: error %v, want one naming it", c.typo, err)
			}
		})
	}
}

// patchValues decodes every patch value of an EnvoyFilter strictly into the
// Envoy type its applyTo names, in order.
func patchValues(ef *clientnetworking.EnvoyFilter) ([]proto.Message, error) {
	var out []proto.Message
	for i, p := range ef.Spec.GetConfigPatches() {
		var m proto.Message
		switch p.GetApplyTo() {
		case networkingv1alpha3.EnvoyFilter_HTTP_FILTER:
			m = &hcmv3.HttpFilter{}
		case networkingv1alpha3.EnvoyFilter_LISTENER:
			m = &listenerv3.Listener{}
		case networkingv1alpha3.EnvoyFilter_HTTP_ROUTE:
			m = &routev3.Route{}
		default:
			return nil, fmt.Errorf("patch %d: no Envoy type for applyTo %s", i, p.GetApplyTo())
		}
		j, err := protojson.Marshal(p.GetPatch().GetValue())
		if err != nil {
			return nil, err
		}
		if err := (protojson.UnmarshalOptions{}).Unmarshal(j, m); err != nil {
			return nil, fmt.Errorf("patch %d (%s): %w", i, p.GetApplyTo(), err)
		}
		out = append(out, m)
	}
	return out, nil
}

// demo holds the pieces of the demo Envoy config (envoy/envoy.yaml.tmpl) that
// the rest of tollgate's tests exercise end to end.
type demo struct {
	filter      *hcmv3.HttpFilter
	bufferLimit uint32
	skip        map[string]*anypb.Any // typed_per_filter_config of a route that skips ext_proc
}

func demoConfig(t *testing.T) demo {
	t.Helper()
	b, err := envoy.Render(envoy.Params{
		ListenerAddress:      "127.0.0.1:10000",
		AdminAddress:         "127.0.0.1:9901",
		ExtProcAddress:       "127.0.0.1:50051",
		TollgateAdminAddress: "127.0.0.1:4001",
		UpstreamAddress:      "127.0.0.1:8000",
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(j, &bs); err != nil {
		t.Fatal(err)
	}
	l := bs.GetStaticResources().GetListeners()[0]
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return demo{
		filter:      hcm.GetHttpFilters()[0],
		bufferLimit: l.GetPerConnectionBufferLimitBytes().GetValue(),
		skip:        hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetTypedPerFilterConfig(),
	}
}

// tollgateCluster is the Istio cluster name of the tollgate Service's
// grpc-extproc port.
const tollgateCluster = "outbound|50051||tollgate.tollgate.svc.cluster.local"

func TestEnvoyFilters(t *testing.T) {
	d := demoConfig(t)
	wantFilter := proto.Clone(d.filter).(*hcmv3.HttpFilter)
	var epc extprocfilterv3.ExternalProcessor
	if err := wantFilter.GetTypedConfig().UnmarshalTo(&epc); err != nil {
		t.Fatal(err)
	}
	epc.GetGrpcService().GetEnvoyGrpc().ClusterName = tollgateCluster
	typed, err := anypb.New(&epc)
	if err != nil {
		t.Fatal(err)
	}
	wantFilter.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed}
	wantListener := &listenerv3.Listener{PerConnectionBufferLimitBytes: wrapperspb.UInt32(d.bufferLimit)}
	wantRoute := &routev3.Route{TypedPerFilterConfig: d.skip}

	type patch struct {
		ApplyTo, Context, Operation, SubFilter, Route string
		PortNumber                                    uint32
	}
	for _, c := range []struct {
		file       string
		selector   map[string]string
		patches    []patch
		wantValues []proto.Message
	}{
		{
			file:     "envoyfilter-gateway.yaml",
			selector: map[string]string{"istio": "ingressgateway"},
			patches: []patch{
				{ApplyTo: "HTTP_FILTER", Context: "GATEWAY", Operation: "INSERT_BEFORE", SubFilter: "envoy.filters.http.router"},
				{ApplyTo: "LISTENER", Context: "GATEWAY", Operation: "MERGE"},
				{ApplyTo: "HTTP_ROUTE", Context: "GATEWAY", Operation: "MERGE", Route: "internal"},
			},
			wantValues: []proto.Message{wantFilter, wantListener, wantRoute},
		},
		{
			file:     "envoyfilter-sidecar.yaml",
			selector: map[string]string{"app": "vllm"},
			patches: []patch{
				{ApplyTo: "HTTP_FILTER", Context: "SIDECAR_INBOUND", Operation: "INSERT_BEFORE", SubFilter: "envoy.filters.http.router", PortNumber: 8000},
				{ApplyTo: "LISTENER", Context: "SIDECAR_INBOUND", Operation: "MERGE"},
			},
			wantValues: []proto.Message{wantFilter, wantListener},
		},
	} {
		t.Run(c.file, func(t *testing.T) {
			ef := only[*clientnetworking.EnvoyFilter](t, readManifests(t, c.file))
			if diff := cmp.Diff(c.selector, ef.Spec.GetWorkloadSelector().GetLabels()); diff != "" {
				t.Errorf("workloadSelector (-want +got):\n%s", diff)
			}
			var got []patch
			for _, p := range ef.Spec.GetConfigPatches() {
				m := p.GetMatch()
				got = append(got, patch{
					ApplyTo:    p.GetApplyTo().String(),
					Context:    m.GetContext().String(),
					Operation:  p.GetPatch().GetOperation().String(),
					SubFilter:  m.GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName(),
					Route:      m.GetRouteConfiguration().GetVhost().GetRoute().GetName(),
					PortNumber: m.GetListener().GetPortNumber(),
				})
				if f := m.GetListener().GetFilterChain().GetFilter().GetName(); p.GetApplyTo() == networkingv1alpha3.EnvoyFilter_HTTP_FILTER &&
					f != "envoy.filters.network.http_connection_manager" {
					t.Errorf("HTTP_FILTER patch matches filter %q, want the HTTP connection manager", f)
				}
			}
			if diff := cmp.Diff(c.patches, got); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
			values, err := patchValues(ef)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.wantValues, values, protocmp.Transform()); diff != "" {
				t.Errorf("patch values: the demo config's, with Istio's cluster name (-want +got):\n%s", diff)
			}
		})
	}
}

// The EnvoyFilters' cluster name, the Service, the Deployment and its probes
// all name the same ports.
func TestTollgateDeploymentLinesUp(t *testing.T) {
	ms := readManifests(t, "tollgate.yaml")
	ns := only[*corev1.Namespace](t, ms)
	svc := only[*corev1.Service](t, ms)
	dep := only[*appsv1.Deployment](t, ms)
	pvc := only[*corev1.PersistentVolumeClaim](t, ms)

	// outbound|PORT||NAME.NAMESPACE.svc.cluster.local
	parts := strings.Split(tollgateCluster, "|")
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); len(parts) != 4 || parts[0] != "outbound" || parts[3] != want {
		t.Fatalf("cluster %q does not name Service %s", tollgateCluster, want)
	}
	if ns.Name != svc.Namespace || dep.Namespace != svc.Namespace || pvc.Namespace != svc.Namespace {
		t.Errorf("namespaces: Namespace %s, Service %s, Deployment %s, PVC %s", ns.Name, svc.Namespace, dep.Namespace, pvc.Namespace)
	}
	if ns.Labels["istio-injection"] != "enabled" {
		t.Errorf("namespace labels %v: want istio-injection=enabled so tollgate is in the mesh", ns.Labels)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == parts[1] })
	if i < 0 {
		t.Fatalf("Service has no port %s", parts[1])
	}
	grpcPort := svc.Spec.Ports[i]
	if !strings.HasPrefix(grpcPort.Name, "grpc-") || grpcPort.AppProtocol == nil || *grpcPort.AppProtocol != "grpc" {
		t.Errorf("ext_proc Service port %+v: want a grpc- name and appProtocol grpc so Istio speaks HTTP/2", grpcPort)
	}

	pod := dep.Spec.Template
	for k, v := range svc.Spec.Selector {
		if pod.Labels[k] != v || dep.Spec.Selector.MatchLabels[k] != v {
			t.Errorf("Service selector %s=%s does not select the Deployment's pods %v", k, v, pod.Labels)
		}
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	containerPort := func(name string) int32 {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Fatalf("container has no port %q", name)
		return 0
	}
	for _, p := range svc.Spec.Ports {
		containerPort(p.TargetPort.StrVal)
	}
	args := flags(t, c.Args)
	if _, port, _ := net.SplitHostPort(args["--grpc-addr"]); port != strconv.Itoa(int(containerPort(grpcPort.TargetPort.StrVal))) {
		t.Errorf("--grpc-addr %s does not listen on the grpc-extproc port", args["--grpc-addr"])
	}
	_, adminPort, _ := net.SplitHostPort(args["--admin-addr"])
	for name, probe := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if got := strconv.Itoa(int(containerPort(probe.HTTPGet.Port.StrVal))); got != adminPort {
			t.Errorf("%s probe port %s, want the admin port %s", name, got, adminPort)
		}
	}
	if got := []string{c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path}; !slices.Equal(got, []string{"/health/readiness", "/health/liveliness"}) {
		t.Errorf("probe paths %v", got)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != args["--data-dir"] {
		t.Errorf("volume mounts %+v, want one at --data-dir %s", c.VolumeMounts, args["--data-dir"])
	}
	if v := pod.Spec.Volumes; len(v) != 1 || v[0].Name != c.VolumeMounts[0].Name || v[0].PersistentVolumeClaim == nil ||
		v[0].PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("volumes %+v, want the PVC %s", v, pvc.Name)
	}
	if *dep.Spec.Replicas != 1 || dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %d, strategy %s: Badger needs exactly one pod at a time", *dep.Spec.Replicas, dep.Spec.Strategy.Type)
	}
	sc, psc := c.SecurityContext, pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("security contexts pod %+v, container %+v: want non-root, read-only root, no privilege escalation, all capabilities dropped", psc, sc)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "TOLLGATE_MASTER_KEY" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.SecretKeyRef == nil {
		t.Errorf("env %+v, want TOLLGATE_MASTER_KEY from a Secret", c.Env)
	}
}

// flags parses --name=value arguments.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(k, "--") {
			t.Fatalf("argument %q: want --name=value", a)
		}
		m[k] = v
	}
	return m
}
