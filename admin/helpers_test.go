package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/internal/syncbuf"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/badgerstore"
)

const testKey = "sk-1234"

// testTime is the clock of both the admin API and the store in tests.
var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const testStamp = "2026-01-02T03:04:05Z"

// env is an admin API over a fresh in-memory Badger store.
type env struct {
	t   testing.TB
	h   http.Handler
	st  *badgerstore.Store
	log *syncbuf.Buffer
}

// newEnv opens a fresh store; generated budget ids are "gen-1", "gen-2", ...
func newEnv(t testing.TB) *env {
	return newEnvWith(t, Config{})
}

func newEnvWith(t testing.TB, cfg Config) *env {
	t.Helper()
	var n atomic.Int64
	st, err := badgerstore.Open(badgerstore.Options{
		InMemory: true,
		Now:      func() time.Time { return testTime },
		NewID:    func() string { return fmt.Sprintf("gen-%d", n.Add(1)) },
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e := &env{t: t, st: st, log: &syncbuf.Buffer{}}
	e.h = newHandler(cfg, st, e.log)
	return e
}

// newHandler fills in the test defaults (key, clock, JSON logger into buf).
func newHandler(cfg Config, st store.Store, buf *syncbuf.Buffer) http.Handler {
	if cfg.MasterKey == "" {
		cfg.MasterKey = testKey
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testTime }
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(cfg, st)
}

// do sends an authenticated request and returns the status and body.
func (e *env) do(method, path, body string) (int, string) {
	e.t.Helper()
	return send(e.t, e.h, method, path, body, "Bearer "+testKey)
}

// ok sends an authenticated request that must succeed and returns the body.
func (e *env) ok(method, path, body string) string {
	e.t.Helper()
	code, got := e.do(method, path, body)
	if code != http.StatusOK {
		e.t.Fatalf("%s %s %s: status %d, body %s", method, path, body, code, got)
	}
	return got
}

func send(t testing.TB, h http.Handler, method, path, body, authorization string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return rec.Code, rec.Body.String()
}

// compact returns want without insignificant whitespace, keeping key order, so
// expectations can be written across lines and still compared byte for byte.
func compact(t testing.TB, want string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(want)); err != nil {
		t.Fatalf("bad expected JSON %s: %v", want, err)
	}
	return b.String() + "\n"
}

// check compares a response with the expected status and JSON.
func check(t testing.TB, label string, gotCode int, gotBody string, wantCode int, wantJSON string) {
	t.Helper()
	if gotCode != wantCode {
		t.Errorf("%s: status %d, want %d (body %s)", label, gotCode, wantCode, gotBody)
	}
	if diff := cmp.Diff(compact(t, wantJSON), gotBody); diff != "" {
		t.Errorf("%s: body mismatch (-want +got):\n%s", label, diff)
	}
}

// errJSON is LiteLLM's ProxyException envelope.
func errJSON(msg, typ, param string, code int) string {
	p := "null"
	if param != "" {
		p = mustJSON(param)
	}
	return fmt.Sprintf(`{"error":{"message":%s,"type":%q,"param":%s,"code":"%d"}}`, mustJSON(msg), typ, p, code)
}

// detailJSON is FastAPI's HTTPException envelope with a dict detail.
func detailJSON(msg string) string {
	return fmt.Sprintf(`{"detail":{"error":%s}}`, mustJSON(msg))
}

// mustJSON encodes v as the API does, without HTML escaping.
func mustJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// kv holds raw JSON values by key, for the row builders below.
type kv map[string]string

// object renders keys in order: set's value if present, else def's, else null.
// The key orders are written out here, apart from the code under test.
func object(keys []string, def, set kv) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, ok := set[k]
		if !ok {
			v, ok = def[k]
		}
		if !ok {
			v = "null"
		}
		parts[i] = mustJSON(k) + ":" + v
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// budgetRowJSON is a full budget row (Prisma shape) created and updated at testStamp by the master key.
func budgetRowJSON(id string, set kv) string {
	return object([]string{
		"budget_id", "max_budget", "soft_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
		"model_max_budget", "budget_duration", "budget_reset_at", "allowed_models",
		"created_at", "created_by", "updated_at", "updated_by",
	}, kv{
		"budget_id": mustJSON(id), "allowed_models": "[]",
		"created_at": mustJSON(testStamp), "created_by": `"default_user_id"`,
		"updated_at": mustJSON(testStamp), "updated_by": `"default_user_id"`,
	}, set)
}

// budgetInfoJSON is the typed nested budget of /customer/info.
func budgetInfoJSON(id string, set kv) string {
	return object([]string{
		"budget_id", "soft_budget", "max_budget", "max_parallel_requests", "tpm_limit", "rpm_limit",
		"model_max_budget", "budget_duration", "allowed_models",
	}, kv{"budget_id": mustJSON(id), "allowed_models": "[]"}, set)
}

// customerRowJSON is a Prisma customer row (/customer/new, /update, /block).
func customerRowJSON(id string, set kv) string {
	return object([]string{
		"user_id", "alias", "spend", "allowed_model_region", "default_model", "budget_id",
		"object_permission_id", "blocked", "litellm_budget_table", "object_permission",
	}, kv{"user_id": mustJSON(id), "spend": "0.0", "blocked": "false"}, set)
}

// customerInfoJSON is the typed customer of /customer/info and /customer/list.
func customerInfoJSON(id string, set kv) string {
	return object([]string{
		"user_id", "blocked", "alias", "spend", "allowed_model_region", "default_model", "budget_id",
		"litellm_budget_table", "object_permission_id", "object_permission",
	}, kv{"user_id": mustJSON(id), "spend": "0.0", "blocked": "false"}, set)
}
