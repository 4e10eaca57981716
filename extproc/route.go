package extproc

import "strings"

// api is the shape of an LLM endpoint's request and response bodies.
type api int

const (
	apiNone        api = iota // not an LLM endpoint tollgate meters
	apiChat                   // OpenAI /chat/completions
	apiCompletions            // OpenAI /completions
	apiEmbeddings             // OpenAI /embeddings
	apiResponses              // OpenAI Responses API, /responses
	apiMessages               // Anthropic Messages API, /messages
)

// route is what a request path says about the request.
type route struct {
	api api
	// deployment is the Azure OpenAI deployment named by the path, which
	// stands for the model when the body names none.
	deployment string
}

// endpoints maps the path after a prefix to its api.
var endpoints = map[string]api{
	"/chat/completions": apiChat,
	"/completions":      apiCompletions,
	"/embeddings":       apiEmbeddings,
	"/responses":        apiResponses,
	"/messages":         apiMessages,
}

// parseRoute recognises the metered endpoints in the forms clients use:
// OpenAI's and Anthropic's /v1/… and the un-prefixed /…; Azure OpenAI's
// /openai/deployments/{deployment}/… (chat, completions, embeddings),
// /openai/v1/… and /openai/responses. path has no query string.
func parseRoute(path string) route {
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		deployment, endpoint, ok := strings.Cut(rest, "/")
		switch a := endpoints["/"+endpoint]; {
		case !ok || deployment == "":
			return route{}
		case a == apiChat || a == apiCompletions || a == apiEmbeddings:
			return route{api: a, deployment: deployment}
		default:
			return route{}
		}
	}
	if rest, ok := strings.CutPrefix(path, "/openai/v1"); ok {
		if a := endpoints[rest]; a != apiMessages {
			return route{api: a}
		}
		return route{}
	}
	if path == "/openai/responses" {
		return route{api: apiResponses}
	}
	if rest, ok := strings.CutPrefix(path, "/v1"); ok && strings.HasPrefix(rest, "/") {
		path = rest
	}
	return route{api: endpoints[path]}
}

// credentialStyle is where an upstream expects its API key.
type credentialStyle int

const (
	bearerCredential    credentialStyle = iota // authorization: Bearer (OpenAI and compatibles)
	anthropicCredential                        // x-api-key
	azureCredential                            // api-key
)

// credentialStyleFor picks the upstream's credential header: Anthropic's for
// the Messages API and for any request carrying anthropic-version (its other
// endpoints, such as /v1/messages/count_tokens), Azure's for /openai/… paths.
func credentialStyleFor(r route, path string, hdr headers) credentialStyle {
	switch {
	case r.api == apiMessages || hdr.get("anthropic-version") != "":
		return anthropicCredential
	case strings.HasPrefix(path, "/openai/"):
		return azureCredential
	default:
		return bearerCredential
	}
}
