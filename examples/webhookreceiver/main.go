// Command webhookreceiver is a small webhook endpoint for trying tollgate's
// webhook alerting and for its tests: it appends every request it receives,
// headers included, as one JSON line to a file (or stdout), and can be told
// to answer with an error status or slowly. With -secret it checks each
// request's X-Tollgate-Signature and answers 401 when it does not verify.
//
//	go run ./examples/webhookreceiver -addr 127.0.0.1:8090 -out events.jsonl
//	WEBHOOK_URL=http://127.0.0.1:8090/ make demo
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/admin/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webhookreceiver:", err)
		os.Exit(1)
	}
}

// maxBody bounds one request body; tollgate's events are far smaller.
const maxBody = 1 << 20

// signatureTolerance is how old a signed timestamp may be.
const signatureTolerance = 5 * time.Minute

// line is one received request, as written out.
type line struct {
	ReceivedAt string      `json:"received_at"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	Headers    http.Header `json:"headers"`
	// Body is the request body: JSON as it arrived, or a string when it is not JSON.
	Body json.RawMessage `json:"body"`
	// Signature is "valid", "invalid" or "unchecked" (no -secret).
	Signature string `json:"signature"`
	// Status is what the receiver answered.
	Status int `json:"status"`
}

// receiver records requests and answers them as configured.
type receiver struct {
	status int
	delay  time.Duration
	secret string
	now    func() time.Time

	mu  sync.Mutex // serializes writes so lines never interleave
	out io.Writer
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	l := line{
		ReceivedAt: rc.now().UTC().Format(time.RFC3339Nano),
		Method:     r.Method,
		Path:       r.URL.Path,
		Headers:    r.Header,
		Body:       body,
		Signature:  "unchecked",
		Status:     rc.status,
	}
	if !json.Valid(body) {
		l.Body, _ = json.Marshal(string(body)) // a string always marshals
	}
	if rc.secret != "" {
		l.Signature = "valid"
		if webhook.Verify(rc.secret, r.Header, body, rc.now(), signatureTolerance) != nil {
			l.Signature, l.Status = "invalid", http.StatusUnauthorized
		}
	}
	if rc.delay > 0 {
		select {
		case <-time.After(rc.delay):
		case <-r.Context().Done():
			return
		}
	}
	if err := rc.write(l); err != nil {
		// Not recorded means not received: let the sender retry.
		http.Error(w, "could not record the event", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(l.Status)
}

func (rc *receiver) write(l line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, err = rc.out.Write(append(b, '\n'))
	return err
}

// run serves until ctx is done. Once listening it prints
// "webhookreceiver listening on http://ADDR" to stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("webhookreceiver", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", "127.0.0.1:8090", "listen address")
	outPath := flags.String("out", "-", "file to append one JSON line per request to; - is stdout")
	status := flags.Int("status", http.StatusOK, "HTTP status to answer every request with (e.g. 500 to fail forever)")
	delay := flags.Duration("delay", 0, "wait this long before answering (e.g. 15s to outlast tollgate's timeout)")
	secret := flags.String("secret", os.Getenv("TOLLGATE_WEBHOOK_SECRET"), "verify X-Tollgate-Signature with this secret; 401 when it fails (env TOLLGATE_WEBHOOK_SECRET)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *status < 100 || *status > 999 {
		return fmt.Errorf("-status %d is not an HTTP status", *status)
	}
	var out io.Writer = stdout
	if *outPath != "-" {
		f, err := os.OpenFile(*outPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("open -out: %w", err)
		}
		defer f.Close()
		out = f
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	rc := &receiver{status: *status, delay: *delay, secret: *secret, now: time.Now, out: out}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "webhookreceiver listening on http://%s\n", lis.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
