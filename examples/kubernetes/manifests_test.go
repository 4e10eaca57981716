package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/envoy"
)

const manifestFile = "llm-gateway.yaml"

// decodeStrict decodes JSON into v the way the Kubernetes API server does:
// field names match case-sensitively, and unknown or duplicate fields fail.
func decodeStrict(j []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// objects is the decoded manifest file.
type objects struct {
	kinds      []string
	configMap  *corev1.ConfigMap
	pvc        *corev1.PersistentVolumeClaim
	deployment *appsv1.Deployment
	service    *corev1.Service
}

// decodeManifests splits the multi-document YAML and decodes every document
// strictly into its kind's Go type.
func decodeManifests(b []byte) (objects, error) {
	var o objects
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return o, nil
		}
		if err != nil {
			return o, err
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return o, err
		}
		if string(j) == "null" {
			continue // only comments
		}
		var tm struct{ APIVersion, Kind string }
		if err := json.Unmarshal(j, &tm); err != nil {
			return o, err
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			o.configMap = &corev1.ConfigMap{}
			obj = o.configMap
		case "v1 PersistentVolumeClaim":
			o.pvc = &corev1.PersistentVolumeClaim{}
			obj = o.pvc
		case "apps/v1 Deployment":
			o.deployment = &appsv1.Deployment{}
			obj = o.deployment
		case "v1 Service":
			o.service = &corev1.Service{}
			obj = o.service
		default:
			return o, fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict(j, obj); err != nil {
			return o, fmt.Errorf("%s: %w", tm.Kind, err)
		}
		o.kinds = append(o.kinds, tm.Kind)
	}
}

func readManifests(t *testing.T) objects {
	t.Helper()
	b, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	o, err := decodeManifests(b)
	if err != nil {
		t.Fatalf("%s: %v", manifestFile, err)
	}
	if want := []string{"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"}; !slices.Equal(o.kinds, want) {
		t.Fatalf("%s holds %v, want %v", manifestFile, o.kinds, want)
	}
	return o
}

// pod is the Deployment's pod with its two containers picked out.
type pod struct {
	spec            corev1.PodSpec
	tollgate, envoy corev1.Container
}

func podOf(t *testing.T, d *appsv1.Deployment) pod {
	t.Helper()
	s := d.Spec.Template.Spec
	if len(s.InitContainers) != 1 || len(s.Containers) != 1 {
		t.Fatalf("want tollgate as the one init container and envoy as the one container, got %d and %d",
			len(s.InitContainers), len(s.Containers))
	}
	return pod{spec: s, tollgate: s.InitContainers[0], envoy: s.Containers[0]}
}

// mountOf returns where c mounts the volume named name, and the volume.
func mountOf(t *testing.T, p pod, c corev1.Container, name string) (string, corev1.Volume) {
	t.Helper()
	i := slices.IndexFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		t.Fatalf("pod has no volume %q", name)
	}
	for _, m := range c.VolumeMounts {
		if m.Name == name {
			return m.MountPath, p.spec.Volumes[i]
		}
	}
	t.Fatalf("container %s does not mount volume %q", c.Name, name)
	return "", corev1.Volume{}
}

// volumeAt returns the volume c mounts at exactly path.
func volumeAt(t *testing.T, c corev1.Container, path string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m.Name
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, path)
	return ""
}

// portOf returns the number of c's port named name.
func portOf(t *testing.T, c corev1.Container, name string) uint32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return uint32(p.ContainerPort)
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

// envoyArgs returns Envoy's arguments (after the binary) and the index of the
// config path among them.
func envoyArgs(t *testing.T, c corev1.Container) ([]string, int) {
	t.Helper()
	if len(c.Command) == 0 || filepath.Base(c.Command[0]) != "envoy" {
		t.Fatalf("envoy container command %v: want the envoy binary", c.Command)
	}
	args := append(slices.Clone(c.Command[1:]), c.Args...)
	i := slices.IndexFunc(args, func(a string) bool { return a == "--config-path" || a == "-c" })
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("envoy arguments %v have no config path", args)
	}
	return args, i + 1
}

// envoyConfig returns the Envoy config in the ConfigMap the envoy container
// reads, after checking the config path points into its mount.
func envoyConfig(t *testing.T, o objects, p pod) []byte {
	t.Helper()
	args, i := envoyArgs(t, p.envoy)
	path := args[i]
	vol := volumeAt(t, p.envoy, filepath.Dir(path))
	_, v := mountOf(t, p, p.envoy, vol)
	if v.ConfigMap == nil || v.ConfigMap.Name != o.configMap.Name {
		t.Fatalf("envoy reads %s from volume %q, want the ConfigMap %s", path, vol, o.configMap.Name)
	}
	cfg, ok := o.configMap.Data[filepath.Base(path)]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", o.configMap.Name, filepath.Base(path))
	}
	return []byte(cfg)
}

func decodeBootstrap(t *testing.T, y []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	var bs bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(j, &bs); err != nil {
		t.Fatalf("decode Envoy config: %v", err)
	}
	return &bs
}

func listener(t *testing.T, bs *bootstrapv3.Bootstrap, name string) *listenerv3.Listener {
	t.Helper()
	for _, l := range bs.GetStaticResources().GetListeners() {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("Envoy config has no listener %q", name)
	return nil
}

func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	return &hcm
}

func cluster(t *testing.T, bs *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range bs.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("Envoy config has no cluster %q", name)
	return nil
}

// endpoint returns the one address of a cluster.
func endpoint(t *testing.T, c *clusterv3.Cluster) *corev3.Address {
	t.Helper()
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("cluster %s: want one endpoint", c.GetName())
	}
	return eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress()
}

// flags parses tollgate's --name=value arguments.
func flags(t *testing.T, args []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(k, "--") {
			t.Fatalf("tollgate argument %q: want --name=value", a)
		}
		m[k] = v
	}
	return m
}

// The Envoy config in the ConfigMap passes the real Envoy's validate mode,
// run with the envoy container's own arguments.
func TestEnvoyConfigValidates(t *testing.T) {
	bin, err := envoy.FindBinary()
	if err != nil {
		t.Fatalf("this test needs the real Envoy: %v", err)
	}
	o := readManifests(t)
	p := podOf(t, o.deployment)
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, envoyConfig(t, o, p), 0o600); err != nil {
		t.Fatal(err)
	}
	args, i := envoyArgs(t, p.envoy)
	args[i] = path
	out, err := exec.CommandContext(t.Context(), bin, append(args, "--mode", "validate")...).CombinedOutput()
	if err != nil {
		t.Fatalf("envoy %v --mode validate: %v\n%s", args, err, out)
	}
}

// The ext_proc filter and its cluster are the demo config's (which the rest of
// tollgate's tests run end to end), reached over the unix socket.
func TestEnvoyConfigMatchesDemoConfig(t *testing.T) {
	o := readManifests(t)
	p := podOf(t, o.deployment)
	bs := decodeBootstrap(t, envoyConfig(t, o, p))
	socket, ok := strings.CutPrefix(flags(t, p.tollgate.Args)["--grpc-addr"], "unix://")
	if !ok {
		t.Fatalf("tollgate --grpc-addr %q: want a unix socket", flags(t, p.tollgate.Args)["--grpc-addr"])
	}
	demoYAML, err := envoy.Render(envoy.Params{
		ListenerAddress:      "0.0.0.0:10000",
		AdminAddress:         "127.0.0.1:9901",
		ExtProcAddress:       "unix://" + socket,
		TollgateAdminAddress: "127.0.0.1:4001",
		UpstreamAddress:      "127.0.0.1:8000",
	})
	if err != nil {
		t.Fatal(err)
	}
	demo := decodeBootstrap(t, demoYAML)
	demoListener := listener(t, demo, "tollgate_listener")
	public := listener(t, bs, "public")

	if diff := cmp.Diff(hcmOf(t, demoListener).GetHttpFilters(), hcmOf(t, public).GetHttpFilters(), protocmp.Transform()); diff != "" {
		t.Errorf("http_filters (-demo +kubernetes):\n%s", diff)
	}
	if diff := cmp.Diff(cluster(t, demo, "tollgate_ext_proc"), cluster(t, bs, "tollgate_ext_proc"), protocmp.Transform()); diff != "" {
		t.Errorf("ext_proc cluster (-demo +kubernetes):\n%s", diff)
	}
	if got, want := public.GetPerConnectionBufferLimitBytes().GetValue(), demoListener.GetPerConnectionBufferLimitBytes().GetValue(); got != want {
		t.Errorf("listener buffer limit %d, want the demo's %d", got, want)
	}
	// Every route but the LLM catch-all skips ext_proc, as in the demo.
	demoRoutes := hcmOf(t, demoListener).GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	routes := hcmOf(t, public).GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	if len(routes) != len(demoRoutes) {
		t.Fatalf("%d routes, want the demo's %d", len(routes), len(demoRoutes))
	}
	for i, r := range routes {
		d := demoRoutes[i]
		if diff := cmp.Diff(d.GetMatch(), r.GetMatch(), protocmp.Transform()); diff != "" {
			t.Errorf("route %d match (-demo +kubernetes):\n%s", i, diff)
		}
		if diff := cmp.Diff(d.GetTypedPerFilterConfig(), r.GetTypedPerFilterConfig(), protocmp.Transform()); diff != "" {
			t.Errorf("route %d typed_per_filter_config (-demo +kubernetes):\n%s", i, diff)
		}
		if diff := cmp.Diff(d.GetRoute().GetTimeout(), r.GetRoute().GetTimeout(), protocmp.Transform()); diff != "" {
			t.Errorf("route %d timeout (-demo +kubernetes):\n%s", i, diff)
		}
	}
}

// The socket, the volumes and the ports the two containers, the Envoy config,
// the probes and the Service use are the same ones.
func TestPodLinesUp(t *testing.T) {
	o := readManifests(t)
	p := podOf(t, o.deployment)
	bs := decodeBootstrap(t, envoyConfig(t, o, p))
	tollgate := flags(t, p.tollgate.Args)

	t.Run("native sidecar", func(t *testing.T) {
		if rp := p.tollgate.RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
			t.Errorf("tollgate restartPolicy %v, want Always (a native sidecar)", rp)
		}
		if p.tollgate.StartupProbe == nil {
			t.Error("tollgate has no startupProbe: Envoy would start before tollgate is ready")
		}
	})
	t.Run("unix socket", func(t *testing.T) {
		socket, ok := strings.CutPrefix(tollgate["--grpc-addr"], "unix://")
		if !ok {
			t.Fatalf("tollgate --grpc-addr %q: want unix:///path", tollgate["--grpc-addr"])
		}
		if got := endpoint(t, cluster(t, bs, "tollgate_ext_proc")).GetPipe().GetPath(); got != socket {
			t.Errorf("Envoy's ext_proc cluster dials %q, tollgate listens on %q", got, socket)
		}
		vol := volumeAt(t, p.tollgate, filepath.Dir(socket))
		envoyDir, v := mountOf(t, p, p.envoy, vol)
		if envoyDir != filepath.Dir(socket) {
			t.Errorf("volume %s is at %s in tollgate but %s in envoy", vol, filepath.Dir(socket), envoyDir)
		}
		if v.EmptyDir == nil {
			t.Errorf("socket volume %s is not an emptyDir", vol)
		}
	})
	t.Run("data volume", func(t *testing.T) {
		_, v := mountOf(t, p, p.tollgate, volumeAt(t, p.tollgate, tollgate["--data-dir"]))
		if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != o.pvc.Name {
			t.Errorf("--data-dir %s is on volume %+v, want the PVC %s", tollgate["--data-dir"], v, o.pvc.Name)
		}
		if *o.deployment.Spec.Replicas != 1 || o.deployment.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("replicas %d, strategy %s: Badger needs exactly one pod at a time",
				*o.deployment.Spec.Replicas, o.deployment.Spec.Strategy.Type)
		}
	})
	t.Run("tollgate admin port", func(t *testing.T) {
		_, port, err := net.SplitHostPort(tollgate["--admin-addr"])
		if err != nil {
			t.Fatal(err)
		}
		admin := portOf(t, p.tollgate, "admin")
		if port != strconv.Itoa(int(admin)) {
			t.Errorf("--admin-addr %s, container port %d", tollgate["--admin-addr"], admin)
		}
		if got := endpoint(t, cluster(t, bs, "tollgate_admin")).GetSocketAddress(); got.GetAddress() != "127.0.0.1" || got.GetPortValue() != admin {
			t.Errorf("Envoy reaches tollgate's admin API at %s:%d, want 127.0.0.1:%d", got.GetAddress(), got.GetPortValue(), admin)
		}
		for name, probe := range map[string]*corev1.Probe{
			"startup": p.tollgate.StartupProbe, "readiness": p.tollgate.ReadinessProbe, "liveness": p.tollgate.LivenessProbe,
		} {
			want := map[string]string{"startup": "/health/readiness", "readiness": "/health/readiness", "liveness": "/health/liveliness"}[name]
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || portOf(t, p.tollgate, probe.HTTPGet.Port.StrVal) != admin {
				t.Errorf("tollgate %s probe %+v, want GET %s on the admin port", name, probe, want)
			}
		}
	})
	t.Run("envoy ports", func(t *testing.T) {
		if got, want := listener(t, bs, "public").GetAddress().GetSocketAddress().GetPortValue(), portOf(t, p.envoy, "http"); got != want {
			t.Errorf("public listener on %d, container port http is %d", got, want)
		}
		ready := listener(t, bs, "ready")
		readyPort := portOf(t, p.envoy, "envoy-ready")
		if got := ready.GetAddress().GetSocketAddress().GetPortValue(); got != readyPort {
			t.Errorf("ready listener on %d, container port envoy-ready is %d", got, readyPort)
		}
		routes := hcmOf(t, ready).GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
		if len(routes) != 1 || routes[0].GetMatch().GetPath() != "/ready" {
			t.Fatalf("ready listener routes %v, want only /ready", routes)
		}
		adminCluster := cluster(t, bs, routes[0].GetRoute().GetCluster())
		got, admin := endpoint(t, adminCluster).GetSocketAddress(), bs.GetAdmin().GetAddress().GetSocketAddress()
		if got.GetAddress() != admin.GetAddress() || got.GetPortValue() != admin.GetPortValue() {
			t.Errorf("/ready goes to %s:%d, Envoy's admin is on %s:%d", got.GetAddress(), got.GetPortValue(), admin.GetAddress(), admin.GetPortValue())
		}
		if admin.GetAddress() != "127.0.0.1" {
			t.Errorf("Envoy's admin listens on %s; keep it on loopback", admin.GetAddress())
		}
		for name, probe := range map[string]*corev1.Probe{"readiness": p.envoy.ReadinessProbe, "liveness": p.envoy.LivenessProbe} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/ready" || portOf(t, p.envoy, probe.HTTPGet.Port.StrVal) != readyPort {
				t.Errorf("envoy %s probe %+v, want GET /ready on the envoy-ready port", name, probe)
			}
		}
	})
	t.Run("service", func(t *testing.T) {
		labels := o.deployment.Spec.Template.Labels
		for k, v := range o.service.Spec.Selector {
			if labels[k] != v || o.deployment.Spec.Selector.MatchLabels[k] != v {
				t.Errorf("Service selector %s=%s does not select the pod (labels %v)", k, v, labels)
			}
		}
		for _, sp := range o.service.Spec.Ports {
			portOf(t, p.envoy, sp.TargetPort.StrVal)
		}
	})
	t.Run("master key from a Secret", func(t *testing.T) {
		i := slices.IndexFunc(p.tollgate.Env, func(e corev1.EnvVar) bool { return e.Name == "TOLLGATE_MASTER_KEY" })
		if i < 0 || p.tollgate.Env[i].ValueFrom == nil || p.tollgate.Env[i].ValueFrom.SecretKeyRef == nil {
			t.Errorf("tollgate env %+v: want TOLLGATE_MASTER_KEY from a secretKeyRef", p.tollgate.Env)
		}
	})
	t.Run("security and resources", func(t *testing.T) {
		psc := p.spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("pod securityContext %+v: want runAsNonRoot", psc)
		}
		for _, c := range []corev1.Container{p.tollgate, p.envoy} {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s securityContext %+v: want a read-only root, no privilege escalation, all capabilities dropped", c.Name, sc)
			}
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
				t.Errorf("%s resources %+v: want cpu and memory requests and a memory limit", c.Name, r)
			}
		}
	})
}

// A misspelt field fails to decode, also when only its case is wrong.
func TestStrictDecodingRejectsTypos(t *testing.T) {
	b, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ old, typo string }{
		{"  restartPolicy: Always", "  restartpolicy: Always"},
		{"readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"persistentVolumeClaim:", "persistentVolumeClam:"},
		{"accessModes:", "accessMode:"},
	} {
		t.Run(c.typo, func(t *testing.T) {
			bad := bytes.Replace(b, []byte(c.old), []byte(c.typo), 1)
			if bytes.Equal(bad, b) {
				t.Fatalf("%s has no %q", manifestFile, c.old)
			}
			field := strings.TrimSpace(strings.Split(c.typo, ":")[0])
			if _, err := decodeManifests(bad); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("decoding with %q: error %v, want one naming it", c.typo, err)
			}
		})
	}
}
