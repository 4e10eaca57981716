package envoy

import (
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestRenderRejects(t *testing.T) {
	good := Params{
		ListenerAddress:      "0.0.0.0:4000",
		AdminAddress:         "127.0.0.1:9901",
		ExtProcAddress:       "127.0.0.1:50051",
		TollgateAdminAddress: "tollgate:4001",
		UpstreamAddress:      "mockllm:8081",
	}
	if _, err := Render(good); err != nil {
		t.Fatalf("Render(good): %v", err)
	}
	tests := []struct {
		name    string
		edit    func(*Params)
		wantErr string
	}{
		{"listener without port", func(p *Params) { p.ListenerAddress = "0.0.0.0" }, `listener address "0.0.0.0"`},
		{"listener hostname", func(p *Params) { p.ListenerAddress = "localhost:4000" }, "host must be an IP address"},
		{"admin bad port", func(p *Params) { p.AdminAddress = "127.0.0.1:70000" }, "bad port"},
		{"ext_proc port 0", func(p *Params) { p.ExtProcAddress = "127.0.0.1:0" }, "port must not be 0"},
		{"ext_proc relative socket", func(p *Params) { p.ExtProcAddress = "unix://run/x.sock" }, "want unix:///absolute/path"},
		{"ext_proc control char in socket", func(p *Params) { p.ExtProcAddress = "unix:///run/x\n.sock" }, "want unix:///absolute/path"},
		{"admin api empty", func(p *Params) { p.TollgateAdminAddress = "" }, "tollgate admin address"},
		{"upstream yaml injection", func(p *Params) { p.UpstreamAddress = `a"b:80` }, "host must be an IP address or DNS name"},
		{"upstream bad label", func(p *Params) { p.UpstreamAddress = "-x.example:80" }, "host must be an IP address or DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.edit(&p)
			_, err := Render(p)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Render error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestConfigsValidate runs every Envoy config under envoy/ through the real
// Envoy's validate mode.
func TestConfigsValidate(t *testing.T) {
	bin, err := FindBinary()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range shippedConfigs {
		if !slices.Contains(files, c.file) {
			t.Errorf("shipped config %s not found among %v", c.file, files)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			if err := Validate(t.Context(), bin, f); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestValidateReportsEnvoyError(t *testing.T) {
	bin, err := FindBinary()
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(good), "allow_mode_override", "allow_mode_overide", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	err = Validate(t.Context(), bin, bad)
	if err == nil || !strings.Contains(err.Error(), "'allow_mode_overide'") {
		t.Errorf("Validate error = %v, want Envoy's unknown-field message", err)
	}
}

func TestFindBinary(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	venvEnvoy := filepath.Join(root, ".venv", "bin", "envoy")
	mkfile := func(path string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkfile(filepath.Join(root, "go.mod"))
	mkfile(filepath.Join(sub, "x"))
	explicit := filepath.Join(t.TempDir(), "my-envoy")
	mkfile(explicit)

	tests := []struct {
		name     string
		envoyBin string
		venv     bool
		want     string
		wantErr  string
	}{
		{name: "ENVOY_BIN wins", envoyBin: explicit, venv: true, want: explicit},
		{name: "ENVOY_BIN missing", envoyBin: filepath.Join(root, "nope"), wantErr: "ENVOY_BIN="},
		{name: "venv at module root", venv: true, want: venvEnvoy},
		{name: "none", wantErr: `run "make envoy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_ = os.RemoveAll(filepath.Join(root, ".venv"))
			if tt.venv {
				mkfile(venvEnvoy)
			}
			t.Setenv("ENVOY_BIN", tt.envoyBin)
			t.Setenv("PATH", t.TempDir())
			t.Chdir(sub)
			got, err := FindBinary()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("FindBinary() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("FindBinary() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// composeService is the part of a compose service the demo depends on.
type composeService struct {
	Image       string             `yaml:"image"`
	Build       string             `yaml:"build"`
	Command     []string           `yaml:"command"`
	Entrypoint  []string           `yaml:"entrypoint"`
	Volumes     []string           `yaml:"volumes"`
	Ports       []string           `yaml:"ports"`
	Environment map[string]*string `yaml:"environment"`
}

// TestDockerCompose checks docker-compose.yml against the compose Envoy config,
// since no Docker engine runs here.
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	names := slices.Sorted(maps.Keys(compose.Services))
	if diff := cmp.Diff([]string{"envoy", "mockllm", "tollgate"}, names); diff != "" {
		t.Fatalf("services (-want +got):\n%s", diff)
	}
	envoySvc, tollgate, mockllm := compose.Services["envoy"], compose.Services["tollgate"], compose.Services["mockllm"]

	t.Run("envoy image matches the tested Envoy", func(t *testing.T) {
		if !regexp.MustCompile(`^envoyproxy/envoy:v1\.40\.\d+$`).MatchString(envoySvc.Image) {
			t.Errorf("envoy image = %q, want envoyproxy/envoy:v1.40.x", envoySvc.Image)
		}
		bin, err := FindBinary()
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("envoy --version: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "/1.40.") {
			t.Errorf("tests validate with %s, want Envoy 1.40.x like the compose image", out)
		}
	})

	t.Run("envoy mounts the compose config", func(t *testing.T) {
		const target = "/etc/envoy/envoy.yaml"
		if diff := cmp.Diff([]string{"envoy", "-c", target}, envoySvc.Command); diff != "" {
			t.Errorf("envoy command (-want +got):\n%s", diff)
		}
		want := []string{"./envoy/envoy.compose.yaml:" + target + ":ro"}
		if diff := cmp.Diff(want, envoySvc.Volumes); diff != "" {
			t.Errorf("envoy volumes (-want +got):\n%s", diff)
		}
		if _, err := os.Stat("envoy.compose.yaml"); err != nil {
			t.Error(err)
		}
		if diff := cmp.Diff([]string{"4000:4000", "9901:9901"}, envoySvc.Ports); diff != "" {
			t.Errorf("envoy ports (-want +got):\n%s", diff)
		}
	})

	t.Run("tollgate", func(t *testing.T) {
		if tollgate.Build != "." {
			t.Errorf("tollgate build = %q, want .", tollgate.Build)
		}
		want := []string{"/tollgate", "--grpc-addr", "0.0.0.0:50051", "--admin-addr", "0.0.0.0:4001", "--data-dir", "/data"}
		if diff := cmp.Diff(want, tollgate.Command); diff != "" {
			t.Errorf("tollgate command (-want +got):\n%s", diff)
		}
		key := "sk-1234"
		wantEnv := map[string]*string{"TOLLGATE_MASTER_KEY": &key, "WEBHOOK_URL": nil}
		if diff := cmp.Diff(wantEnv, tollgate.Environment); diff != "" {
			t.Errorf("tollgate environment (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"tollgate-data:/data"}, tollgate.Volumes); diff != "" {
			t.Errorf("tollgate volumes (-want +got):\n%s", diff)
		}
		if _, ok := compose.Volumes["tollgate-data"]; !ok {
			t.Error("named volume tollgate-data is not declared")
		}
	})

	t.Run("mockllm", func(t *testing.T) {
		if mockllm.Image != tollgate.Image || mockllm.Build != "." {
			t.Errorf("mockllm image, build = %q, %q; want tollgate's image %q built from .", mockllm.Image, mockllm.Build, tollgate.Image)
		}
		if diff := cmp.Diff([]string{"/mockllm", "-addr", "0.0.0.0:8081"}, mockllm.Entrypoint); diff != "" {
			t.Errorf("mockllm entrypoint (-want +got):\n%s", diff)
		}
	})

	// envoy.compose.yaml must point at the services and ports they listen on.
	var composeParams Params
	for _, c := range shippedConfigs {
		if c.file == "envoy.compose.yaml" {
			composeParams = c.params
		}
	}
	for _, tt := range []struct {
		cluster, envoyAddr, service, listenAddr string
	}{
		{"tollgate_ext_proc", composeParams.ExtProcAddress, "tollgate", flagValue(tollgate.Command, "--grpc-addr")},
		{"tollgate_admin", composeParams.TollgateAdminAddress, "tollgate", flagValue(tollgate.Command, "--admin-addr")},
		{"llm_upstream", composeParams.UpstreamAddress, "mockllm", flagValue(mockllm.Entrypoint, "-addr")},
	} {
		t.Run("cluster "+tt.cluster, func(t *testing.T) {
			_, listenPort, _ := strings.Cut(tt.listenAddr, ":")
			if want := tt.service + ":" + listenPort; tt.envoyAddr != want {
				t.Errorf("envoy.compose.yaml sends %s to %q, want %q", tt.cluster, tt.envoyAddr, want)
			}
		})
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
