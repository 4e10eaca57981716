package extproc

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
)

// maxDecodedBody bounds how far a compressed response is inflated to find its
// usage, so a compression bomb costs memory once, not without limit.
const maxDecodedBody = 64 << 20

var errDecodedTooLarge = fmt.Errorf("decoded response is over %d bytes", maxDecodedBody)

// contentEncoding normalises a content-encoding header; "" means identity.
func contentEncoding(header string) string {
	enc := strings.ToLower(strings.TrimSpace(header))
	if enc == "identity" {
		return ""
	}
	return enc
}

// decoderFor returns a function wrapping a reader of encoding-compressed bytes
// in one that inflates them: gzip, deflate (zlib-wrapped as HTTP says, or raw,
// as some servers send it) and br.
func decoderFor(encoding string) (func(io.Reader) (io.Reader, error), error) {
	switch encoding {
	case "gzip", "x-gzip":
		return newGzipMembers, nil
	case "deflate":
		return func(r io.Reader) (io.Reader, error) {
			br := bufio.NewReader(r)
			if h, err := br.Peek(2); err == nil && isZlibHeader(h) {
				return zlib.NewReader(br)
			}
			return flate.NewReader(br), nil
		}, nil
	case "br":
		return func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }, nil
	default:
		return nil, fmt.Errorf("content-encoding %q is not supported", encoding)
	}
}

// gzipMembers reads a gzip stream of one or more members, as gzip.Reader
// does, but hands over each member's data as soon as the member ends;
// gzip.Reader holds it back until the next member's header has arrived.
type gzipMembers struct {
	br *bufio.Reader
	zr *gzip.Reader
}

func newGzipMembers(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return &gzipMembers{br: br, zr: zr}, nil
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if n > 0 || !errors.Is(err, io.EOF) {
			if errors.Is(err, io.EOF) {
				err = nil // the next Read looks for another member
			}
			return n, err
		}
		// io.EOF from Reset: no further member, the end of the stream.
		if err := g.zr.Reset(g.br); err != nil {
			return 0, err
		}
		g.zr.Multistream(false)
	}
}

// isZlibHeader reports whether h starts a zlib stream (RFC 1950): deflate
// with a window of at most 32 KiB and a valid header checksum.
func isZlibHeader(h []byte) bool {
	return h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}

// decode inflates a whole body that has content-encoding encoding.
func decode(body []byte, encoding string) ([]byte, error) {
	enc := contentEncoding(encoding)
	if enc == "" {
		return body, nil
	}
	newReader, err := decoderFor(enc)
	if err != nil {
		return nil, err
	}
	r, err := newReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("decode %s response: %w", enc, err)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecodedBody+1))
	if err != nil {
		return nil, fmt.Errorf("decode %s response: %w", enc, err)
	}
	if len(out) > maxDecodedBody {
		return nil, errDecodedTooLarge
	}
	return out, nil
}

// streamDecoder inflates a compressed body chunk by chunk, as it streams
// through: each Write returns all the plaintext its chunk completes. Go's
// decompressors want a reader that blocks for more input rather than one that
// ends, so the decompressor runs in its own goroutine reading from a channel;
// Write hands it a chunk and waits until it asks for the next one, by which
// time it has produced everything the chunk allows. Close must be called to
// end that goroutine.
type streamDecoder struct {
	in   chan []byte   // chunks for the decompressor
	idle chan struct{} // the decompressor has used up its input
	done chan struct{} // the decompressor goroutine has ended

	// out and err belong to the decompressor goroutine except between its
	// signal on idle (or done) and the next send on in.
	out   []byte
	err   error
	total int
}

// newStreamDecoder starts decoding encoding; it fails for encodings it cannot
// decode.
func newStreamDecoder(encoding string) (*streamDecoder, error) {
	newReader, err := decoderFor(encoding)
	if err != nil {
		return nil, err
	}
	d := &streamDecoder{in: make(chan []byte), idle: make(chan struct{}), done: make(chan struct{})}
	go d.run(newReader)
	return d, nil
}

func (d *streamDecoder) run(newReader func(io.Reader) (io.Reader, error)) {
	defer close(d.done)
	r, err := newReader(&chanReader{d: d})
	if err != nil {
		d.err = err
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if d.total += n; d.total > maxDecodedBody {
			d.err = errDecodedTooLarge
			return
		}
		d.out = append(d.out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			d.err = err
			return
		}
	}
}

// Write decodes the next chunk of the body and returns the plaintext it
// completes. After a decoding error it returns nothing more; Close reports it.
func (d *streamDecoder) Write(chunk []byte) []byte {
	if len(chunk) == 0 {
		return nil
	}
	select {
	case d.in <- chunk:
	case <-d.done:
		return d.take()
	}
	select {
	case <-d.idle:
	case <-d.done:
	}
	return d.take()
}

// Close ends the body: it returns the last plaintext and the decoding error,
// if any (a body cut short is an error).
func (d *streamDecoder) Close() ([]byte, error) {
	select {
	case <-d.done:
	default:
		close(d.in)
		<-d.done
	}
	return d.take(), d.err
}

func (d *streamDecoder) take() []byte {
	out := d.out
	d.out = nil
	return out
}

// chanReader is the decompressor's source: it blocks until Write sends the
// next chunk, and ends when Close closes the channel.
type chanReader struct {
	d       *streamDecoder
	pending []byte
	started bool // the first chunk was asked for; later asks tell Write the last one is used up
	ended   bool // Close closed the channel
}

func (c *chanReader) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.ended {
			return 0, io.EOF
		}
		if c.started {
			c.d.idle <- struct{}{}
		}
		c.started = true
		chunk, ok := <-c.d.in
		if !ok {
			c.ended = true
			return 0, io.EOF
		}
		c.pending = chunk
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}
