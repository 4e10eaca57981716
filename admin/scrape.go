package admin

import (
	"errors"
	"net/http"
)

// metrics serves h, the Prometheus scrape. With requireAuth it takes the
// master key and refuses like LiteLLM's metrics middleware: a 401 whose body
// is a JSON string naming the auth error.
func (s *server) metrics(h http.Handler, requireAuth bool) http.Handler {
	if !requireAuth {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := s.authenticate(r)
		if err == nil {
			h.ServeHTTP(w, r)
			return
		}
		msg := "Authentication Error"
		if ae, ok := errors.AsType[*apiError](err); ok {
			msg = ae.message
		}
		s.log.Debug("request rejected", "method", r.Method, "path", r.URL.Path, "status", http.StatusUnauthorized, "err", err)
		// Encoding a string cannot fail.
		_ = writeJSON(w, http.StatusUnauthorized, "Unauthorized access to metrics endpoint: "+msg)
	})
}
