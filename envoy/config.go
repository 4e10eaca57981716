// Package envoy holds tollgate's Envoy configuration and a launcher for a real
// Envoy binary. The shipped configs (envoy.yaml for the local demo,
// envoy.compose.yaml for docker compose) are rendered from one embedded
// template, so tests that start Envoy run the same config users run.
package envoy

import (
	"bytes"
	_ "embed"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/template"
	"unicode"
)

// bufferLimitBytes is the listener and cluster buffer limit: BUFFERED ext_proc
// bodies larger than this fail with 413 (request) or 500 (response).
const bufferLimitBytes = 32 << 20

// adminPrefixes are the routes served by tollgate's admin API, so one base URL
// serves the LiteLLM-compatible surface. They skip ext_proc.
var adminPrefixes = []string{"/customer/", "/end_user/", "/budget/", "/spend/", "/webhook/", "/health"}

//go:embed envoy.yaml.tmpl
var templateText string

var configTemplate = template.Must(template.New("envoy.yaml").
	Funcs(template.FuncMap{"quote": strconv.Quote}).
	Parse(templateText))

// Params are the values the Envoy config is rendered from. Addresses are
// host:port; listener and admin hosts must be IP literals, cluster hosts may
// be IPs or DNS names.
type Params struct {
	// ListenerAddress is the public listener clients call. Port 0 picks a free port.
	ListenerAddress string
	// AdminAddress is Envoy's own admin interface. Port 0 picks a free port.
	AdminAddress string
	// ExtProcAddress is tollgate's ext_proc gRPC server: host:port or unix:///path.
	ExtProcAddress string
	// TollgateAdminAddress is tollgate's admin HTTP API.
	TollgateAdminAddress string
	// UpstreamAddress is the OpenAI-compatible LLM upstream, spoken to in plain HTTP.
	UpstreamAddress string
	// FailureModeAllow makes Envoy fail open: requests pass unmetered while ext_proc is
	// unreachable. False (fail closed) rejects them instead.
	FailureModeAllow bool
	// WithoutExtProc renders the same listener, routes and clusters without the
	// ext_proc filter, so LLM requests go straight to the upstream: the baseline
	// the benchmark (scripts/bench) measures tollgate's added cost against.
	// ExtProcAddress is ignored.
	WithoutExtProc bool
}

type endpoint struct {
	Host string
	Port int
	Pipe string
}

type cluster struct {
	Name     string
	Endpoint endpoint
	HTTP2    bool
}

type templateData struct {
	Listener, Admin  endpoint
	AdminPrefixes    []string
	Clusters         []cluster
	ExtProc          bool
	FailureModeAllow bool
	BufferLimitBytes int
}

// Render returns the Envoy bootstrap config (YAML) for p.
func Render(p Params) ([]byte, error) {
	listener, err := parseBind("listener", p.ListenerAddress)
	if err != nil {
		return nil, err
	}
	admin, err := parseBind("admin", p.AdminAddress)
	if err != nil {
		return nil, err
	}
	var clusters []cluster
	if !p.WithoutExtProc {
		extProc, err := parseExtProc(p.ExtProcAddress)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, cluster{Name: "tollgate_ext_proc", Endpoint: extProc, HTTP2: true})
	}
	tollgateAdmin, err := parseUpstream("tollgate admin", p.TollgateAdminAddress)
	if err != nil {
		return nil, err
	}
	upstream, err := parseUpstream("upstream", p.UpstreamAddress)
	if err != nil {
		return nil, err
	}
	data := templateData{
		Listener:      listener,
		Admin:         admin,
		AdminPrefixes: adminPrefixes,
		Clusters: append(clusters,
			cluster{Name: "tollgate_admin", Endpoint: tollgateAdmin},
			cluster{Name: "llm_upstream", Endpoint: upstream},
		),
		ExtProc:          !p.WithoutExtProc,
		FailureModeAllow: p.FailureModeAllow,
		BufferLimitBytes: bufferLimitBytes,
	}
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render envoy config: %w", err)
	}
	return buf.Bytes(), nil
}

// parseExtProc parses tollgate's ext_proc address: host:port or unix:///absolute/path.
func parseExtProc(addr string) (endpoint, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !strings.HasPrefix(path, "/") || strings.ContainsFunc(path, unicode.IsControl) {
			return endpoint{}, fmt.Errorf("ext_proc address %q: want unix:///absolute/path", addr)
		}
		return endpoint{Pipe: path}, nil
	}
	return parseUpstream("ext_proc", addr)
}

// parseBind parses an address Envoy listens on: an IP literal and a port, 0 allowed.
func parseBind(what, addr string) (endpoint, error) {
	e, err := splitAddress(what, addr)
	if err != nil {
		return endpoint{}, err
	}
	if net.ParseIP(e.Host) == nil {
		return endpoint{}, fmt.Errorf("%s address %q: host must be an IP address", what, addr)
	}
	return e, nil
}

// parseUpstream parses an address Envoy connects to: an IP or DNS name and a non-zero port.
func parseUpstream(what, addr string) (endpoint, error) {
	e, err := splitAddress(what, addr)
	if err != nil {
		return endpoint{}, err
	}
	if e.Port == 0 {
		return endpoint{}, fmt.Errorf("%s address %q: port must not be 0", what, addr)
	}
	if net.ParseIP(e.Host) == nil && !isDNSName(e.Host) {
		return endpoint{}, fmt.Errorf("%s address %q: host must be an IP address or DNS name", what, addr)
	}
	return e, nil
}

func splitAddress(what, addr string) (endpoint, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s address %q: %w", what, addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return endpoint{}, fmt.Errorf("%s address %q: bad port", what, addr)
	}
	return endpoint{Host: host, Port: port}, nil
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
