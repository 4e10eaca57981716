package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Delivery headers. The event id is the same on every attempt, after a
// restart and after a replay, so receivers drop duplicates by it.
const (
	HeaderEventID   = "X-Tollgate-Event-Id"
	HeaderTimestamp = "X-Tollgate-Timestamp"
	HeaderSignature = "X-Tollgate-Signature"
)

// signaturePrefix names the algorithm in the signature header.
const signaturePrefix = "sha256="

// Sign returns the X-Tollgate-Signature value for a body sent at timestamp
// (Unix seconds): "sha256=" and the hex HMAC-SHA256, keyed with secret, of
// the timestamp, a dot, and the exact body bytes.
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Errors Verify returns.
var (
	ErrNoSignature  = errors.New("webhook: missing signature or timestamp header")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a delivery's headers against its body: the recipe a receiver
// follows. tolerance bounds how far the timestamp may be from now, against
// replays of a captured request; 0 skips that check.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig, ts := h.Get(HeaderSignature), h.Get(HeaderTimestamp)
	if sig == "" || ts == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, ts)
	}
	// Compare decoded MACs in constant time; a malformed header fails the same way.
	got, err := hex.DecodeString(strings.TrimPrefix(sig, signaturePrefix))
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(secret, sec, body), signaturePrefix))
	if err != nil || !strings.HasPrefix(sig, signaturePrefix) || !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return ErrStale
		}
	}
	return nil
}
