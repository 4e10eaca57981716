package extproc

import (
	"slices"

	"github.com/tidwall/gjson"
)

// forceIncludeUsage returns body, a JSON object with "stream": true, changed so
// that stream_options.include_usage is true, which makes OpenAI-compatible
// upstreams end the stream with a usage chunk. Only the bytes that must change
// are touched. ok is false when the body already asks for usage, or when
// stream_options is neither absent, null nor an object (the upstream rejects
// such a body anyway).
func forceIncludeUsage(body []byte) (out []byte, ok bool) {
	opts := gjson.GetBytes(body, "stream_options")
	switch {
	case !opts.Exists():
		// Insert the field first: right after the object's opening brace.
		brace := firstNonSpace(body)
		field := `"stream_options":{"include_usage":true}`
		if hasMembers(gjson.ParseBytes(body)) {
			field += ","
		}
		return splice(body, brace+1, brace+1, field), true
	case !located(body, opts):
		return nil, false
	case opts.Type == gjson.Null:
		return splice(body, opts.Index, opts.Index+len(opts.Raw), `{"include_usage":true}`), true
	case !opts.IsObject():
		return nil, false
	}
	usage := opts.Get("include_usage")
	switch {
	case usage.Type == gjson.True:
		return nil, false
	case !usage.Exists():
		brace := opts.Index + firstNonSpace([]byte(opts.Raw))
		field := `"include_usage":true`
		if hasMembers(opts) {
			field += ","
		}
		return splice(body, brace+1, brace+1, field), true
	case !located(body, usage):
		return nil, false
	}
	return splice(body, usage.Index, usage.Index+len(usage.Raw), `true`), true
}

// located reports whether v, found in body, knows where in body its bytes
// are; the edits rely on it.
func located(body []byte, v gjson.Result) bool {
	return v.Index > 0 && v.Index+len(v.Raw) <= len(body) && string(body[v.Index:v.Index+len(v.Raw)]) == v.Raw
}

// hasMembers reports whether an object has any member, including members
// Map would merge because their keys repeat.
func hasMembers(obj gjson.Result) bool {
	found := false
	obj.ForEach(func(_, _ gjson.Result) bool {
		found = true
		return false
	})
	return found
}

// splice returns a copy of b with b[start:end] replaced by s.
func splice(b []byte, start, end int, s string) []byte {
	out := make([]byte, 0, len(b)-(end-start)+len(s))
	out = append(out, b[:start]...)
	out = append(out, s...)
	return append(out, b[end:]...)
}

func firstNonSpace(b []byte) int {
	return slices.IndexFunc(b, func(c byte) bool { return c != ' ' && c != '\t' && c != '\n' && c != '\r' })
}
