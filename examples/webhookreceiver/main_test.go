package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/admin/webhook"
)

// startReceiver runs the receiver in-process with args plus a random port and
// an output file, and returns its URL and the file.
func startReceiver(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "events.jsonl")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-addr", "127.0.0.1:0", "-out", out}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no ready line: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url, ok := strings.CutPrefix(sc.Text(), "webhookreceiver listening on ")
	if !ok {
		t.Fatalf("ready line %q", sc.Text())
	}
	return url, out
}

func post(t *testing.T, url, body string, header http.Header) (int, time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/hook", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, time.Since(began)
}

func readLines(t *testing.T, path string) []line {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []line
	for _, s := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("line %q: %v", s, err)
		}
		out = append(out, l)
	}
	return out
}

func TestReceiver(t *testing.T) {
	const secret = "s3cret"
	event := `{"spend":0.001112,"customer_id":"krrish12","event":"spend_tracked"}`
	signed := func(body string) http.Header {
		ts := time.Now().Unix()
		return http.Header{
			"Content-Type":           {"application/json"},
			webhook.HeaderEventID:    {"evt_1"},
			webhook.HeaderTimestamp:  {strconv.FormatInt(ts, 10)},
			webhook.HeaderSignature:  {webhook.Sign(secret, ts, []byte(body))},
			"X-Something-Else-Added": {"kept"},
		}
	}
	tests := []struct {
		name          string
		args          []string
		body          string
		header        http.Header
		wantStatus    int
		wantSignature string
		wantBody      string
	}{
		{"records and accepts", nil, event, http.Header{webhook.HeaderEventID: {"evt_1"}}, 200, "unchecked", event},
		{"fails forever when told", []string{"-status", "500"}, event, http.Header{}, 500, "unchecked", event},
		{"valid signature", []string{"-secret", secret}, event, signed(event), 200, "valid", event},
		{"tampered body", []string{"-secret", secret}, strings.Replace(event, "0.001112", "9.0", 1), signed(event), 401, "invalid", strings.Replace(event, "0.001112", "9.0", 1)},
		{"not JSON is kept as a string", nil, "hello", http.Header{}, 200, "unchecked", `"hello"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, out := startReceiver(t, tt.args...)
			status, _ := post(t, url, tt.body, tt.header)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			lines := readLines(t, out)
			if len(lines) != 1 {
				t.Fatalf("%d lines, want 1", len(lines))
			}
			l := lines[0]
			got := []string{l.Method, l.Path, string(l.Body), l.Signature, strconv.Itoa(l.Status), l.Headers.Get(webhook.HeaderEventID)}
			want := []string{"POST", "/hook", tt.wantBody, tt.wantSignature, strconv.Itoa(tt.wantStatus), tt.header.Get(webhook.HeaderEventID)}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("line (-want +got):\n%s", d)
			}
			if _, err := time.Parse(time.RFC3339Nano, l.ReceivedAt); err != nil {
				t.Errorf("received_at %q: %v", l.ReceivedAt, err)
			}
		})
	}
}

func TestReceiverSlow(t *testing.T) {
	url, out := startReceiver(t, "-delay", "200ms")
	status, took := post(t, url, "{}", http.Header{})
	if status != 200 || took < 200*time.Millisecond {
		t.Errorf("answered %d after %v, want 200 after at least 200ms", status, took)
	}
	if n := len(readLines(t, out)); n != 1 {
		t.Errorf("%d lines, want 1", n)
	}
}

func TestReceiverAppends(t *testing.T) {
	url, out := startReceiver(t)
	for range 3 {
		post(t, url, "{}", http.Header{})
	}
	if n := len(readLines(t, out)); n != 3 {
		t.Errorf("%d lines, want 3", n)
	}
}

func TestReceiverBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-status", "42"}, {"-nope"}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
