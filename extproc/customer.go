package extproc

import (
	"strings"

	"github.com/tidwall/gjson"
)

// customerFromHeaders returns the customer id named by a header, or "". The
// standard LiteLLM headers come first, then the configured user header.
func customerFromHeaders(hdr headers, userHeader string) string {
	for _, name := range customerHeaders {
		if v := hdr.get(name); strings.TrimSpace(v) != "" {
			return v
		}
	}
	if v := hdr.get(userHeader); userHeader != "" && strings.TrimSpace(v) != "" {
		return v
	}
	return ""
}

// customerFromBody returns the customer id a JSON request body names, or "",
// looking where LiteLLM does, first match wins: user, litellm_metadata.user,
// metadata.user_id (Anthropic SDK, Claude Code), safety_identifier (Responses API).
func customerFromBody(body []byte) string {
	if id := customerID(gjson.GetBytes(body, "user")); id != "" {
		return id
	}
	if id := customerID(litellmMetadata(body).Get("user")); id != "" {
		return id
	}
	if id := customerID(gjson.GetBytes(body, "metadata.user_id")); id != "" {
		return id
	}
	return customerID(gjson.GetBytes(body, "safety_identifier"))
}

// litellmMetadata returns the litellm_metadata object, which clients may also
// send as a JSON string holding the object.
func litellmMetadata(body []byte) gjson.Result {
	md := gjson.GetBytes(body, "litellm_metadata")
	if md.Type == gjson.String && gjson.Valid(md.Str) {
		md = gjson.Parse(md.Str)
	}
	if !md.IsObject() {
		return gjson.Result{}
	}
	return md
}

// customerID coerces a JSON value to an id as LiteLLM does: strings unless only
// whitespace, numbers as written; booleans, null, objects and arrays are not ids.
func customerID(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		if strings.TrimSpace(v.Str) == "" {
			return ""
		}
		return v.Str
	case gjson.Number:
		return v.Raw
	default:
		return ""
	}
}
