package envoygateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/envoy"
)

// manifest is one decoded document of an example file.
type manifest struct {
	kind string
	obj  any
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
		case "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy":
			obj = &egv1a1.EnvoyExtensionPolicy{}
		case "gateway.envoyproxy.io/v1alpha1 ClientTrafficPolicy":
			obj = &egv1a1.ClientTrafficPolicy{}
		case "gateway.networking.k8s.io/v1 HTTPRoute":
			obj = &gwapiv1.HTTPRoute{}
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
		if err := decodeStrict(j, obj); err != nil {
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
		{"policy.yaml", []string{"EnvoyExtensionPolicy", "ClientTrafficPolicy"}},
		{"httproute.yaml", []string{"HTTPRoute"}},
		{"tollgate.yaml", []string{"PersistentVolumeClaim", "Deployment", "Service"}},
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

// A misspelt field fails to decode, also when only its case is wrong.
func TestStrictDecodingRejectsTypos(t *testing.T) {
	policy, err := os.ReadFile("policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, typo string }{
		{"allowModeOverride:", "allowModeOveride:"},
		{"failOpen:", "failopen:"},
		{"messageTimeout:", "messageTimeOut:"},
		{"bufferLimit:", "bufferLimits:"},
		{"targetRefs:", "targetrefs:"},
	} {
		t.Run(c.typo, func(t *testing.T) {
			bad := bytes.Replace(policy, []byte(c.old), []byte(c.typo), 1)
			if bytes.Equal(bad, policy) {
				t.Fatalf("policy.yaml has no %q", c.old)
			}
			field := strings.TrimSuffix(c.typo, ":")
			if _, err := decodeManifests(bad); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("decoding with %q: error %v, want one naming %q", c.typo, err, field)
			}
		})
	}
}

// demoConfig returns the ext_proc filter config and listener buffer limit of
// the demo Envoy config (envoy/envoy.yaml.tmpl), which the rest of tollgate's
// tests exercise end to end.
func demoConfig(t *testing.T) (*extprocfilterv3.ExternalProcessor, uint32) {
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
	var epc extprocfilterv3.ExternalProcessor
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&epc); err != nil {
		t.Fatal(err)
	}
	return &epc, l.GetPerConnectionBufferLimitBytes().GetValue()
}

// translate builds the ExternalProcessor settings Envoy Gateway derives from
// an ExtProc, following buildProcessingMode and extProcConfig in Envoy
// Gateway v1.9's internal/xds/translator/extproc.go: a request or response
// section sends its headers, its body mode maps one to one, trailers are
// skipped.
func translate(t *testing.T, ep egv1a1.ExtProc) *extprocfilterv3.ExternalProcessor {
	t.Helper()
	bodyModes := map[egv1a1.ExtProcBodyProcessingMode]extprocfilterv3.ProcessingMode_BodySendMode{
		egv1a1.BufferedExtProcBodyProcessingMode:          extprocfilterv3.ProcessingMode_BUFFERED,
		egv1a1.BufferedPartialExtBodyHeaderProcessingMode: extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL,
		egv1a1.StreamedExtProcBodyProcessingMode:          extprocfilterv3.ProcessingMode_STREAMED,
		egv1a1.FullDuplexStreamedExtBodyProcessingMode:    extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
	}
	mode := &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   extprocfilterv3.ProcessingMode_SKIP,
		ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SKIP,
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
	body := func(o *egv1a1.ProcessingModeOptions) extprocfilterv3.ProcessingMode_BodySendMode {
		if o.Body == nil {
			return extprocfilterv3.ProcessingMode_NONE
		}
		m, ok := bodyModes[*o.Body]
		if !ok {
			t.Fatalf("unknown body mode %q", *o.Body)
		}
		return m
	}
	pm := ep.ProcessingMode
	if pm == nil {
		t.Fatal("no processingMode: Envoy Gateway would send nothing to tollgate")
	}
	if pm.Request != nil {
		mode.RequestHeaderMode, mode.RequestBodyMode = extprocfilterv3.ProcessingMode_SEND, body(pm.Request)
	}
	if pm.Response != nil {
		mode.ResponseHeaderMode, mode.ResponseBodyMode = extprocfilterv3.ProcessingMode_SEND, body(pm.Response)
	}
	out := &extprocfilterv3.ExternalProcessor{ProcessingMode: mode, AllowModeOverride: pm.AllowModeOverride}
	if ep.FailOpen != nil {
		out.FailureModeAllow = *ep.FailOpen
	}
	if ep.MessageTimeout != nil {
		d, err := time.ParseDuration(string(*ep.MessageTimeout))
		if err != nil {
			t.Fatalf("messageTimeout: %v", err)
		}
		out.MessageTimeout = durationpb.New(d)
	}
	return out
}

// The policies configure what the demo config configures: the same
// processing modes, timeout and failure mode, and the same buffer limit.
func TestPoliciesMatchDemoConfig(t *testing.T) {
	demo, demoBuffer := demoConfig(t)
	ms := readManifests(t, "policy.yaml")

	eep := only[*egv1a1.EnvoyExtensionPolicy](t, ms)
	if len(eep.Spec.ExtProc) != 1 {
		t.Fatalf("want one extProc, got %d", len(eep.Spec.ExtProc))
	}
	want := &extprocfilterv3.ExternalProcessor{
		ProcessingMode:    demo.GetProcessingMode(),
		FailureModeAllow:  demo.GetFailureModeAllow(),
		MessageTimeout:    demo.GetMessageTimeout(),
		AllowModeOverride: demo.GetAllowModeOverride(),
	}
	if diff := cmp.Diff(want, translate(t, eep.Spec.ExtProc[0]), protocmp.Transform()); diff != "" {
		t.Errorf("ext_proc settings (-demo +policy):\n%s", diff)
	}
	if ep := eep.Spec.ExtProc[0]; ep.FailOpen == nil {
		t.Error("failOpen is not set: say which way tollgate fails")
	}

	ctp := only[*egv1a1.ClientTrafficPolicy](t, ms)
	if ctp.Spec.Connection == nil || ctp.Spec.Connection.BufferLimit == nil {
		t.Fatal("ClientTrafficPolicy sets no connection.bufferLimit")
	}
	if got := ctp.Spec.Connection.BufferLimit.Value(); got != int64(demoBuffer) {
		t.Errorf("bufferLimit = %d bytes, want the demo's %d", got, demoBuffer)
	}
}

// The policies attach to the route and Gateway in httproute.yaml, and the
// ext_proc backend is tollgate's gRPC port in tollgate.yaml.
func TestReferencesLineUp(t *testing.T) {
	policies := readManifests(t, "policy.yaml")
	eep := only[*egv1a1.EnvoyExtensionPolicy](t, policies)
	ctp := only[*egv1a1.ClientTrafficPolicy](t, policies)
	route := only[*gwapiv1.HTTPRoute](t, readManifests(t, "httproute.yaml"))
	tollgate := readManifests(t, "tollgate.yaml")
	svc := only[*corev1.Service](t, tollgate)

	target := func(kind, name string) gwapiv1.LocalPolicyTargetReferenceWithSectionName {
		return gwapiv1.LocalPolicyTargetReferenceWithSectionName{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{
			Group: gwapiv1.GroupName, Kind: gwapiv1.Kind(kind), Name: gwapiv1.ObjectName(name),
		}}
	}
	if diff := cmp.Diff([]gwapiv1.LocalPolicyTargetReferenceWithSectionName{target("HTTPRoute", route.Name)}, eep.Spec.TargetRefs); diff != "" {
		t.Errorf("EnvoyExtensionPolicy targetRefs (-want +got):\n%s", diff)
	}
	if len(route.Spec.ParentRefs) != 1 {
		t.Fatalf("route has %d parentRefs, want 1", len(route.Spec.ParentRefs))
	}
	gateway := string(route.Spec.ParentRefs[0].Name)
	if diff := cmp.Diff([]gwapiv1.LocalPolicyTargetReferenceWithSectionName{target("Gateway", gateway)}, ctp.Spec.TargetRefs); diff != "" {
		t.Errorf("ClientTrafficPolicy targetRefs (-want +got):\n%s", diff)
	}
	for _, r := range route.Spec.Rules {
		if r.Timeouts == nil || r.Timeouts.Request == nil || *r.Timeouts.Request != "0s" {
			t.Errorf("route rule %v: want timeouts.request 0s so long generations are not cut off", r.Matches)
		}
	}

	refs := eep.Spec.ExtProc[0].BackendRefs
	if len(refs) != 1 {
		t.Fatalf("want one backendRef, got %d", len(refs))
	}
	ref := refs[0].BackendObjectReference
	if ref.Kind != nil && *ref.Kind != "Service" || ref.Namespace != nil || string(ref.Name) != svc.Name || ref.Port == nil {
		t.Fatalf("backendRef %+v, want Service %s in the policy's namespace with a port", ref, svc.Name)
	}
	found := false
	for _, p := range svc.Spec.Ports {
		if p.Port == int32(*ref.Port) {
			found = true
			if !strings.HasPrefix(p.Name, "grpc-") {
				t.Errorf("Service port %d is named %q, want grpc-*", p.Port, p.Name)
			}
		}
	}
	if !found {
		t.Errorf("Service %s has no port %d", svc.Name, *ref.Port)
	}
}

// tollgate.yaml is examples/istio/tollgate.yaml without the namespace, so a
// fix in one cannot miss the other.
func TestTollgateSameAsIstioExample(t *testing.T) {
	ours := readManifests(t, "tollgate.yaml")
	istio := readManifests(t, "../istio/tollgate.yaml")
	for _, m := range ours {
		if ns := m.obj.(interface{ GetNamespace() string }).GetNamespace(); ns != "" {
			t.Errorf("%s has namespace %q; it goes in the HTTPRoute's namespace", m.kind, ns)
		}
	}
	if diff := cmp.Diff(only[*appsv1.Deployment](t, istio).Spec, only[*appsv1.Deployment](t, ours).Spec); diff != "" {
		t.Errorf("Deployment spec (-istio +envoy-gateway):\n%s", diff)
	}
	if diff := cmp.Diff(only[*corev1.Service](t, istio).Spec, only[*corev1.Service](t, ours).Spec); diff != "" {
		t.Errorf("Service spec (-istio +envoy-gateway):\n%s", diff)
	}
	if diff := cmp.Diff(only[*corev1.PersistentVolumeClaim](t, istio).Spec, only[*corev1.PersistentVolumeClaim](t, ours).Spec); diff != "" {
		t.Errorf("PersistentVolumeClaim spec (-istio +envoy-gateway):\n%s", diff)
	}
}
