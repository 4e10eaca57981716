package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/syncbuf"
)

// route is one authenticated route with a request that is valid for it.
type route struct {
	method, path, body string
	env                envelope
}

// routes lists every authenticated route, /end_user aliases included.
func routes() []route {
	var rs []route
	for _, p := range []string{"/customer", "/end_user"} {
		rs = append(rs,
			route{"POST", p + "/new", `{"user_id":"a"}`, envError},
			route{"GET", p + "/info?end_user_id=a", "", envError},
			route{"POST", p + "/update", `{"user_id":"a"}`, envError},
			route{"POST", p + "/delete", `{"user_ids":["a"]}`, envError},
			route{"GET", p + "/list", "", envError},
			route{"POST", p + "/block", `{"user_ids":["a"]}`, envDetail},
			route{"POST", p + "/unblock", `{"user_ids":["a"]}`, envDetail},
		)
	}
	return append(rs,
		route{"POST", "/budget/new", `{"budget_id":"t"}`, envDetail},
		route{"POST", "/budget/update", `{"budget_id":"t"}`, envDetail},
		route{"POST", "/budget/info", `{"budgets":["t"]}`, envDetail},
		route{"GET", "/budget/list", "", envDetail},
		route{"POST", "/budget/delete", `{"id":"t"}`, envDetail},
		route{"GET", "/budget/settings?budget_id=t", "", envDetail},
	)
}

// in renders msg in the route's envelope, for client errors of the given status.
func (r route) in(msg, typ, param string, status int) string {
	if r.env == envDetail {
		return detailJSON(msg)
	}
	return errJSON(msg, typ, param, status)
}

func TestAuth(t *testing.T) {
	noKey := errJSON("Authentication Error, No api key passed in.", "auth_error", "", 401)
	badKey := errJSON("Authentication Error, Invalid proxy server token passed.", "auth_error", "", 401)
	malformed := errJSON("Authentication Error, Malformed API Key passed in. Ensure Key has `Bearer ` prefix.", "auth_error", "", 401)
	cases := []struct {
		name, authorization string
		want                string
	}{
		{"missing", "", noKey},
		{"empty bearer", "Bearer ", noKey},
		{"wrong key", "Bearer sk-12345", badKey},
		{"prefix of the key", "Bearer sk-12", badKey},
		{"key without scheme", testKey, malformed},
		{"basic scheme", "Basic " + testKey, malformed},
	}
	e := newEnv(t)
	for _, r := range routes() {
		for _, c := range cases {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				code, body := send(t, e.h, r.method, r.path, r.body, c.authorization)
				check(t, "response", code, body, http.StatusUnauthorized, c.want)
			})
		}
	}
	// Nothing may have been written by the refused requests.
	check(t, "list after refused writes", 200, e.ok("GET", "/customer/list", ""), 200, `[]`)
	check(t, "budgets after refused writes", 200, e.ok("GET", "/budget/list", ""), 200, `[]`)
}

func TestAuthAcceptsMasterKey(t *testing.T) {
	e := newEnv(t)
	for _, authorization := range []string{"Bearer " + testKey, "bearer " + testKey, "  Bearer   " + testKey + "  "} {
		t.Run(authorization, func(t *testing.T) {
			code, body := send(t, e.h, "GET", "/customer/list", "", authorization)
			check(t, "list", code, body, 200, `[]`)
		})
	}
}

func TestEmptyMasterKeyRefusesEverything(t *testing.T) {
	// newHandler would substitute testKey for "", so build this one directly.
	st := newEnv(t).st
	h := New(Config{}, st)
	code, body := send(t, h, "GET", "/customer/list", "", "Bearer ")
	check(t, "empty token", code, body, 401, errJSON("Authentication Error, No api key passed in.", "auth_error", "", 401))
	code, body = send(t, h, "GET", "/customer/list", "", "Bearer anything")
	check(t, "any token", code, body, 401, errJSON("Authentication Error, Invalid proxy server token passed.", "auth_error", "", 401))
}

func TestHealth(t *testing.T) {
	notReady := errors.New("badger: value log full at /secret/path")
	cases := []struct {
		name     string
		ready    func(context.Context) error
		path     string
		wantCode int
		want     string
	}{
		{"liveliness", nil, "/health/liveliness", 200, `"I'm alive!"`},
		{"readiness without probe", nil, "/health/readiness", 200, `{"status":"healthy","db":"connected"}`},
		{"readiness ok", func(context.Context) error { return nil }, "/health/readiness", 200, `{"status":"healthy","db":"connected"}`},
		{"readiness failing", func(context.Context) error { return notReady }, "/health/readiness", 503, `{"status":"unhealthy"}`},
		{"liveliness while not ready", func(context.Context) error { return notReady }, "/health/liveliness", 200, `"I'm alive!"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnvWith(t, Config{Ready: c.ready})
			code, body := send(t, e.h, "GET", c.path, "", "") // probes need no key
			check(t, c.path, code, body, c.wantCode, c.want)
			if c.wantCode == 503 && !strings.Contains(e.log.String(), notReady.Error()) {
				t.Errorf("log lacks the readiness failure: %s", e.log.String())
			}
		})
	}
}

func TestMalformedJSON(t *testing.T) {
	e := newEnv(t)
	bodies := []struct {
		name, body, msg string
	}{
		{"truncated", `{"user_id":`, "Malformed JSON in request body: unexpected end of JSON input"},
		{"comment", `{"user_id": "a" # note` + "\n}", "Malformed JSON in request body: invalid character '#' after object key:value pair"},
		{"trailing comma", `{"user_id": "a",}`, "Malformed JSON in request body: invalid character '}' looking for beginning of object key string"},
		{"empty", ``, "Malformed JSON in request body: unexpected end of JSON input"},
		{"array", `["a"]`, "Request body must be a JSON object."},
		{"string", `"a"`, "Request body must be a JSON object."},
		{"null", `null`, "Request body must be a JSON object."},
	}
	for _, r := range routes() {
		if r.method != "POST" {
			continue
		}
		for _, b := range bodies {
			t.Run(r.path+"/"+b.name, func(t *testing.T) {
				code, got := e.do(r.method, r.path, b.body)
				check(t, "response", code, got, 400, r.in(b.msg, "bad_request", "", 400))
			})
		}
	}
}

func TestOversizeBody(t *testing.T) {
	const limit = 64
	e := newEnvWith(t, Config{MaxBodyBytes: limit})
	big := `{"user_id":"a","alias":"` + strings.Repeat("x", limit) + `"}`
	msg := "Request body too large: the limit is 64 bytes."
	for _, r := range routes() {
		if r.method != "POST" {
			continue
		}
		for _, chunked := range []bool{false, true} {
			name := r.path + "/content-length"
			if chunked {
				name = r.path + "/chunked"
			}
			t.Run(name, func(t *testing.T) {
				req := httptest.NewRequest("POST", r.path, strings.NewReader(big))
				req.Header.Set("Authorization", "Bearer "+testKey)
				if chunked {
					req.ContentLength = -1 // length unknown up front: the reader must stop it
				}
				rec := httptest.NewRecorder()
				e.h.ServeHTTP(rec, req)
				check(t, "response", rec.Code, rec.Body.String(), 413, r.in(msg, "bad_request_error", "", 413))
			})
		}
	}
	// A body at the limit is accepted.
	atLimit := `{"user_id":"a","alias":"` + strings.Repeat("x", limit-26) + `"}`
	if len(atLimit) != limit {
		t.Fatalf("test body is %d bytes, want %d", len(atLimit), limit)
	}
	e.ok("POST", "/customer/new", atLimit)
}

func TestDefaultBodyLimitIsOneMiB(t *testing.T) {
	e := newEnv(t)
	alias := strings.Repeat("x", 1<<20)
	code, body := e.do("POST", "/customer/new", `{"user_id":"a","alias":"`+alias+`"}`)
	check(t, "over 1 MiB", code, body, 413, errJSON("Request body too large: the limit is 1048576 bytes.", "bad_request_error", "", 413))
	e.ok("POST", "/customer/new", `{"user_id":"a","alias":"`+alias[:1<<19]+`"}`)
}

func TestStoreFailureIsGeneric500(t *testing.T) {
	for _, r := range routes() {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			buf := &syncbuf.Buffer{}
			h := newHandler(Config{}, brokenStore{}, buf)
			code, body := send(t, h, r.method, r.path, r.body, "Bearer "+testKey)
			check(t, "response", code, body, 500, r.in("Internal Server Error", "internal_server_error", "", 500))
			logged := buf.String()
			path, _, _ := strings.Cut(r.path, "?")
			for _, want := range []string{errDiskOnFire.Error(), `"level":"ERROR"`, `"method":"` + r.method + `"`, `"path":"` + path + `"`} {
				if !strings.Contains(logged, want) {
					t.Errorf("log lacks %s: %s", want, logged)
				}
			}
			if strings.Contains(logged, testKey) {
				t.Errorf("log contains the master key: %s", logged)
			}
		})
	}
}

func TestRejectedKeyIsNotLogged(t *testing.T) {
	e := newEnv(t)
	const secret = "sk-guessed-secret-value"
	send(t, e.h, "POST", "/customer/new", `{"user_id":"a"}`, "Bearer "+secret)
	logged := e.log.String()
	if !strings.Contains(logged, "Invalid proxy server token") {
		t.Fatalf("the rejection was not logged: %s", logged)
	}
	if strings.Contains(logged, secret) || strings.Contains(logged, testKey) {
		t.Errorf("log contains a key: %s", logged)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		method, path string
		want         int
	}{
		{"GET", "/customer/new", http.StatusMethodNotAllowed},
		{"POST", "/customer/list", http.StatusMethodNotAllowed},
		{"GET", "/customer/nope", http.StatusNotFound},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req := httptest.NewRequest(c.method, c.path, nil)
			req.Header.Set("Authorization", "Bearer "+testKey)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("status %d, want %d", rec.Code, c.want)
			}
		})
	}
}
