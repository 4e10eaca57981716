package extproc

import "bytes"

// maxEventBytes bounds one server-sent event (and one line), so a stream that
// never ends an event costs bounded memory. The largest real events, such as
// the Responses API's response.completed carrying the whole response, are far
// smaller.
const maxEventBytes = 8 << 20

const utf8BOM = "\xef\xbb\xbf"

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	Type string // the event field; "" when the event named none
	Data []byte // the data lines joined with LF
}

// sseParser parses a text/event-stream incrementally, as the WHATWG HTML
// standard's "event stream interpretation" describes: lines end with CRLF, LF
// or CR, a field's value loses one leading space, lines starting with a colon
// are comments, data lines accumulate, and a blank line dispatches the event
// (no event when there was no data); a byte order mark opening the stream is
// ignored. Bytes may arrive split anywhere, including between the CR and LF of
// one line end.
type sseParser struct {
	bom      int    // bytes of a leading UTF-8 byte order mark matched so far; -1 once past it
	line     []byte // the current line, not yet ended
	longLine bool   // the current line went over maxEventBytes
	skipLF   bool   // the last line ended with CR: an LF right after it belongs to that line end
	data     []byte // the data buffer: each data line's value, then LF
	event    string // the event type buffer
	overflow bool   // the current event went over maxEventBytes and is dropped
}

// feed parses chunk. At each blank line, the end of an event block, it calls
// block with the offset in chunk just past that line's end (including the LF
// of a CRLF when it is in chunk) and the event the block dispatched, or nil.
func (p *sseParser) feed(chunk []byte, block func(end int, ev *sseEvent)) {
	i := 0
	for ; p.bom >= 0 && i < len(chunk); i++ {
		if chunk[i] != utf8BOM[p.bom] {
			p.appendLine([]byte(utf8BOM[:p.bom])) // not a mark after all: they were text
			p.bom = -1
			break
		}
		if p.bom++; p.bom == len(utf8BOM) {
			p.bom = -1
		}
	}
	for i < len(chunk) {
		if p.skipLF {
			p.skipLF = false
			if chunk[i] == '\n' {
				i++
				continue
			}
		}
		j := bytes.IndexAny(chunk[i:], "\r\n")
		if j < 0 {
			p.appendLine(chunk[i:])
			return
		}
		p.appendLine(chunk[i : i+j])
		end := i + j + 1
		if chunk[i+j] == '\r' {
			if end < len(chunk) {
				if chunk[end] == '\n' {
					end++
				}
			} else {
				p.skipLF = true
			}
		}
		i = end
		if ev, blank := p.endLine(); blank {
			block(end, ev)
		}
	}
}

func (p *sseParser) appendLine(b []byte) {
	if p.longLine || len(p.line)+len(b) > maxEventBytes {
		p.longLine, p.line = true, p.line[:0]
		return
	}
	p.line = append(p.line, b...)
}

// endLine interprets the line just ended. blank reports an empty line, which
// ends the event block; ev is the event it dispatched, if any.
func (p *sseParser) endLine() (ev *sseEvent, blank bool) {
	line := p.line
	p.line = p.line[:0]
	if p.longLine {
		p.longLine, p.overflow = false, true
		return nil, false
	}
	if len(line) == 0 {
		if p.overflow || len(p.data) == 0 {
			p.data, p.event, p.overflow = p.data[:0], "", false
			return nil, true
		}
		ev = &sseEvent{Type: p.event, Data: p.data[:len(p.data)-1]}
		p.data, p.event = nil, ""
		return ev, true
	}
	if line[0] == ':' || p.overflow {
		return nil, false
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value, _ = bytes.CutPrefix(value, []byte(" "))
	switch string(name) {
	case "event":
		p.event = string(value)
	case "data":
		if len(p.data)+len(value)+1 > maxEventBytes {
			p.overflow = true
			return nil, false
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	}
	// id and retry only matter to a reconnecting client; other fields are ignored.
	return nil, false
}

// sseFilter removes whole event blocks from a stream, byte for byte, and
// passes every other byte on unchanged and in order. A block (the bytes from
// the end of one blank line to the end of the next) is held until it ends, so
// it can still be dropped; a block growing beyond maxEventBytes is passed on
// as it comes instead, and can no longer be dropped.
type sseFilter struct {
	parser sseParser
	// event is called for each dispatched event and decides whether its block is removed.
	event func(ev *sseEvent) (drop bool)

	held      []byte // the current block so far
	streaming bool   // the current block outgrew maxEventBytes and is passed on unheld
	// lf says what to do with an LF opening the next chunk, when a block
	// ended with CR at the end of the last one: the LF completes that CRLF,
	// so it goes where the block went.
	lf lfFate
}

type lfFate int

const (
	lfNone lfFate = iota
	lfKeep
	lfDrop
)

// write filters the next chunk and returns the bytes to pass on.
func (f *sseFilter) write(chunk []byte) []byte {
	var out []byte
	start := 0
	if f.lf != lfNone && len(chunk) > 0 {
		if chunk[0] == '\n' {
			if f.lf == lfKeep {
				out = append(out, '\n')
			}
			start = 1
		}
		f.lf = lfNone
	}
	f.parser.feed(chunk, func(end int, ev *sseEvent) {
		fate := lfKeep
		if ev != nil && f.event(ev) && !f.streaming {
			fate = lfDrop
		} else {
			out = append(out, f.held...)
			out = append(out, chunk[start:end]...)
		}
		if f.parser.skipLF {
			f.lf = fate
		}
		f.held = f.held[:0]
		f.streaming = false
		start = end
	})
	rest := chunk[start:]
	if f.streaming || len(f.held)+len(rest) > maxEventBytes {
		out = append(out, f.held...)
		out = append(out, rest...)
		f.held = f.held[:0]
		f.streaming = true
		return out
	}
	f.held = append(f.held, rest...)
	return out
}

// flush returns the bytes still held at the end of the stream: an unfinished
// block, which clients discard but which is theirs to see.
func (f *sseFilter) flush() []byte {
	out := f.held
	f.held = nil
	return out
}
