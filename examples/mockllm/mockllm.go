// Package mockllm is an LLM upstream for demos and tests. It answers OpenAI's
// chat completions, completions, embeddings and Responses API, Azure OpenAI's
// deployment paths and Anthropic's Messages API, JSON and streamed, for any
// model with a fixed reply and usage derived from the request, so tests can
// compute the exact token counts (ReportedUsage) and so the spend tollgate
// should record. Request headers (the Header* constants) force errors and
// latency and shape the response: compression, how a stream is cut into
// chunks and formatted, streams cut short, usage left out. /__mock/* endpoints
// let tests see what reached it and what it sent back, and release the
// requests it holds.
package mockllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// ReplyWords is the length in words, and so in completion tokens, of every
	// reply that max_tokens does not cut short.
	ReplyWords = 16
	// MessageOverheadTokens is counted for each chat message on top of its words.
	MessageOverheadTokens = 3
	// EmbeddingDimensions is the length of every embedding vector.
	EmbeddingDimensions = 8
	// streamChunkWords is how many words each streamed content chunk carries.
	streamChunkWords = 4
	// maxBodyBytes bounds request bodies; larger ones get 413.
	maxBodyBytes = 64 << 20
)

// replyText has exactly ReplyWords words.
const replyText = "This is a deterministic reply from mockllm, the tollgate mock upstream for offline tests and demos."

// Request headers that make the mock misbehave on purpose.
const (
	// HeaderStatus forces an error response with that status (400–599).
	HeaderStatus = "x-mock-status"
	// HeaderDelay delays the response by that many milliseconds.
	HeaderDelay = "x-mock-delay-ms"
	// HeaderHold ("true") holds the request, after any delay, until
	// POST /__mock/release (Release) or until the client goes away, so a
	// test can keep requests in flight for as long as it needs.
	HeaderHold = "x-mock-hold"
)

// Server is the mock upstream; it is an http.Handler safe for concurrent use.
type Server struct {
	now func() time.Time

	mu     sync.Mutex
	count  int64
	byPath map[string]int64
	last   *Request
	// inFlight counts LLM requests being served; maxInFlight is its peak
	// since New or the last Reset.
	inFlight, maxInFlight int64
	// held counts the requests waiting for release, which Release closes
	// (nil until a request is held).
	held    int64
	release chan struct{}
}

// New returns a Server with no requests recorded.
func New() *Server {
	return &Server{now: time.Now, byPath: map[string]int64{}}
}

// Request is an LLM request as the mock received it.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Header has lower-case names; repeated values are joined with ", ".
	// The Host header is included as "host".
	Header map[string]string `json:"headers"`
	Body   string            `json:"body"`
	// ResponseBody is the body the mock has written back so far, byte for
	// byte as sent (compressed when it was).
	ResponseBody []byte `json:"response_body,omitempty"`
}

// Stats counts the LLM requests received since New or the last Reset.
type Stats struct {
	Requests int64            `json:"requests"`
	ByPath   map[string]int64 `json:"by_path"`
	// InFlight is how many LLM requests are being served now, from the
	// request's arrival until its handler returns (delays included);
	// MaxInFlight is the most there were at once.
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
	// Held is how many of the requests in flight wait for Release (HeaderHold).
	Held int64 `json:"held"`
}

// Requests returns how many LLM requests were received: every request outside
// /__mock/, whatever its path, method or outcome.
func (s *Server) Requests() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Requests: s.count, ByPath: maps.Clone(s.byPath), InFlight: s.inFlight, MaxInFlight: s.maxInFlight, Held: s.held}
}

// Last returns the most recent LLM request, and false if there was none.
func (s *Server) Last() (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return Request{}, false
	}
	r := *s.last
	r.Header = maps.Clone(r.Header)
	r.ResponseBody = slices.Clone(r.ResponseBody)
	return r, true
}

// Reset forgets all recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count = 0
	s.byPath = map[string]int64{}
	s.last = nil
	s.maxInFlight = s.inFlight
}

// Release lets every request held now (HeaderHold) go on, and returns how
// many there were. Requests held after it wait for the next Release.
func (s *Server) Release() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.held
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
	s.held = 0
	return n
}

// ServeHTTP serves the LLM endpoints and /__mock/*.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/__mock/") {
		s.serveIntrospection(w, r)
		return
	}
	s.enter()
	defer s.leave()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	rec := s.record(r, body)
	w = &recordingWriter{ResponseWriter: w, rec: rec}
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}

	kind, deployment := route(r.URL.Path)
	if kind == unknownEndpoint {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown path %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed", r.Method))
		return
	}
	if !delay(w, r) || !s.hold(w, r) {
		return
	}
	if v := r.Header.Get(HeaderStatus); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil || code < 400 || code > 599 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be a status code from 400 to 599, got %q", HeaderStatus, v))
			return
		}
		writeError(w, code, fmt.Sprintf("mockllm: forced status %d (%s)", code, HeaderStatus))
		return
	}

	o, msg := parseOptions(r.Header)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	req, msg := parseRequest(kind, body, deployment)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	c := call{w: w, r: r, kind: kind, req: req, o: o, seq: rec.seq, created: s.now().Unix()}
	switch kind {
	case chatEndpoint:
		c.serveChat()
	case completionsEndpoint:
		c.serveCompletion()
	case embeddingsEndpoint:
		c.serveEmbeddings()
	case responsesEndpoint:
		c.serveResponses()
	case messagesEndpoint:
		c.serveMessages()
	}
}

// call is one LLM request being answered.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	kind    endpoint
	req     request
	o       options
	seq     int64 // the request's sequence number, used in response ids
	created int64 // the response's creation time, Unix seconds
}

// route maps a path to its endpoint: OpenAI's /v1/… and un-prefixed forms,
// Azure OpenAI's /openai/deployments/{deployment}/…, /openai/v1/… and
// /openai/responses, and Anthropic's /v1/messages.
func route(path string) (endpoint, string) {
	var deployment string
	if rest, ok := strings.CutPrefix(path, "/openai/deployments/"); ok {
		d, tail, ok := strings.Cut(rest, "/")
		if !ok || d == "" {
			return unknownEndpoint, ""
		}
		deployment, path = d, "/"+tail
		switch path {
		case "/chat/completions", "/completions", "/embeddings":
		default:
			return unknownEndpoint, ""
		}
	} else if rest, ok := strings.CutPrefix(path, "/openai/v1/"); ok && rest != "messages" {
		path = "/" + rest
	} else if path == "/openai/responses" {
		path = "/responses"
	} else if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
		path = "/" + rest
	}
	switch path {
	case "/chat/completions":
		return chatEndpoint, deployment
	case "/completions":
		return completionsEndpoint, deployment
	case "/embeddings":
		return embeddingsEndpoint, deployment
	case "/responses":
		return responsesEndpoint, ""
	case "/messages":
		return messagesEndpoint, ""
	}
	return unknownEndpoint, ""
}

// enter and leave count the LLM requests being served.
func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
}

// record counts r and keeps it as the last request.
func (s *Server) record(r *http.Request, body []byte) *recorded {
	header := make(map[string]string, len(r.Header)+1)
	for name, values := range r.Header {
		header[strings.ToLower(name)] = strings.Join(values, ", ")
	}
	header["host"] = r.Host
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.byPath[r.URL.Path]++
	s.last = &Request{Method: r.Method, Path: r.URL.Path, Header: header, Body: string(body)}
	return &recorded{s: s, req: s.last, seq: s.count}
}

// recorded is the record of one request, to which its response is added.
type recorded struct {
	s   *Server
	req *Request
	seq int64
}

// recordingWriter keeps what is written in the request's record before
// writing it, so a client that has read a response finds all of it there.
type recordingWriter struct {
	http.ResponseWriter
	rec *recorded
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.rec.s.mu.Lock()
	w.rec.req.ResponseBody = append(w.rec.req.ResponseBody, p...)
	w.rec.s.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController flush the underlying writer.
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// delay waits x-mock-delay-ms. It returns false if the response is finished:
// the header was invalid or the client went away.
func delay(w http.ResponseWriter, r *http.Request) bool {
	v := r.Header.Get(HeaderDelay)
	if v == "" {
		return true
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be a non-negative integer, got %q", HeaderDelay, v))
		return false
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// hold waits for Release if the request asks to be held. It returns false if
// the response is finished: the header was invalid or the client went away.
func (s *Server) hold(w http.ResponseWriter, r *http.Request) bool {
	v := r.Header.Get(HeaderHold)
	if v == "" {
		return true
	}
	hold, err := strconv.ParseBool(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be true or false, got %q", HeaderHold, v))
		return false
	}
	if !hold {
		return true
	}
	s.mu.Lock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
	released := s.release
	s.held++
	s.mu.Unlock()
	select {
	case <-released:
		return true
	case <-r.Context().Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-released: // Release has already stopped counting it
		default:
			s.held--
		}
		return false
	}
}

func (s *Server) serveIntrospection(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/__mock/stats":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	case "/__mock/last":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		last, ok := s.Last()
		if !ok {
			writeError(w, http.StatusNotFound, "no request received yet")
			return
		}
		writeJSON(w, http.StatusOK, last)
	case "/__mock/reset":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case "/__mock/release":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, http.MethodPost)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"released": s.Release()})
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown path %s", r.URL.Path))
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

type endpoint int

const (
	unknownEndpoint endpoint = iota
	chatEndpoint
	completionsEndpoint
	embeddingsEndpoint
	responsesEndpoint
	messagesEndpoint
)

// request holds the fields of a request body the mock uses, for every API.
type request struct {
	Model               string          `json:"model"`
	Messages            []message       `json:"messages"`
	System              json.RawMessage `json:"system"`       // Anthropic
	Instructions        json.RawMessage `json:"instructions"` // Responses API
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	MaxOutputTokens     *int64          `json:"max_output_tokens"` // Responses API
	Stream              bool            `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	EncodingFormat string `json:"encoding_format"`
}

type message struct {
	Content json.RawMessage `json:"content"`
}

// parseRequest decodes body for kind; a non-empty message is the client
// error. An Azure deployment stands for the model when the body names none.
func parseRequest(kind endpoint, body []byte, deployment string) (request, string) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return request{}, "We could not parse the JSON body of your request: " + err.Error()
	}
	if req.Model == "" {
		req.Model = deployment
	}
	if req.Model == "" {
		return request{}, "you must provide a model parameter"
	}
	switch kind {
	case messagesEndpoint:
		if len(req.Messages) == 0 {
			return request{}, "messages: field required"
		}
		if req.MaxTokens == nil {
			return request{}, "max_tokens: field required"
		}
	case responsesEndpoint:
		if isNull(req.Input) {
			return request{}, "you must provide an input parameter"
		}
	case chatEndpoint:
		if len(req.Messages) == 0 {
			return request{}, "messages must be a non-empty array"
		}
	case completionsEndpoint:
		if isNull(req.Prompt) {
			return request{}, "you must provide a prompt parameter"
		}
	case embeddingsEndpoint:
		if req.Stream {
			return request{}, "embeddings do not support stream"
		}
		if embeddingCount(req.Input) == 0 {
			return request{}, "input must be a non-empty string or array"
		}
		if f := req.EncodingFormat; f != "" && f != "float" && f != "base64" {
			return request{}, fmt.Sprintf("encoding_format must be float or base64, got %q", f)
		}
	}
	return req, ""
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// PromptTokens returns the prompt tokens the mock reports for body, for any
// API: the whitespace-separated words of every message content (strings, and
// the text or content of content parts and input items), system, instructions,
// prompt and input string, one token per token id in a token-id array, plus
// MessageOverheadTokens per chat or Anthropic message. It returns 0 for a body
// that is not a JSON object.
func PromptTokens(body []byte) int64 {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return 0
	}
	return req.promptTokens()
}

func (req request) promptTokens() int64 {
	var n int64
	for _, m := range req.Messages {
		n += MessageOverheadTokens + countWords(m.Content)
	}
	return n + countWords(req.System) + countWords(req.Instructions) + countWords(req.Prompt) + countWords(req.Input)
}

// countWords counts the words in the strings of a JSON value; numbers are token
// ids and count one each; objects count their "text" field (content parts),
// else their "content" (Responses API input items).
func countWords(raw json.RawMessage) int64 {
	if isNull(raw) {
		return 0
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0
	}
	return countValue(v)
}

func countValue(v any) int64 {
	switch v := v.(type) {
	case string:
		return int64(len(strings.Fields(v)))
	case float64:
		return 1
	case []any:
		var n int64
		for _, e := range v {
			n += countValue(e)
		}
		return n
	case map[string]any:
		if text, ok := v["text"].(string); ok {
			return countValue(text)
		}
		return countValue(v["content"])
	}
	return 0
}

// CompletionTokens returns the words the mock generates for a chat,
// completions, Responses or Anthropic body: ReplyWords, or the request's
// limit (max_completion_tokens, else max_tokens, else max_output_tokens) when
// that is smaller. Reasoning tokens (HeaderReasoningTokens) come on top.
// Embeddings generate nothing. It returns 0 for a body that is not a JSON
// object.
func CompletionTokens(body []byte) int64 {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return 0
	}
	return req.completionTokens()
}

func (req request) completionTokens() int64 {
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	if limit == nil {
		limit = req.MaxOutputTokens
	}
	if limit != nil && *limit < ReplyWords {
		return max(*limit, 0)
	}
	return ReplyWords
}

// ReplyText returns the reply the mock generates for a chat or completions
// body: the first CompletionTokens(body) words of a fixed sentence.
func ReplyText(body []byte) string {
	return replyWords(CompletionTokens(body))
}

func replyWords(n int64) string {
	return strings.Join(strings.Fields(replyText)[:n], " ")
}

func (req request) finishReason() string {
	if req.completionTokens() < ReplyWords {
		return "length"
	}
	return "stop"
}

type usage struct {
	PromptTokens            int64          `json:"prompt_tokens"`
	CompletionTokens        int64          `json:"completion_tokens"`
	TotalTokens             int64          `json:"total_tokens"`
	PromptTokensDetails     *promptDetails `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *outputDetails `json:"completion_tokens_details,omitempty"`
}

type promptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type outputDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// openAIUsage is the usage object of a chat or completions response. The
// details appear only when the request asked for cached or reasoning tokens.
func (c *call) openAIUsage() *usage {
	u := c.usage()
	ou := &usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
	if c.o.cachedTokens > 0 {
		ou.PromptTokensDetails = &promptDetails{CachedTokens: u.CachedTokens}
	}
	if c.o.reasoningTokens > 0 {
		ou.CompletionTokensDetails = &outputDetails{ReasoningTokens: u.ReasoningTokens}
	}
	return ou
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      *chatMessage `json:"message,omitempty"`
	Delta        *chatDelta   `json:"delta,omitempty"`
	Logprobs     *struct{}    `json:"logprobs"` // always null: the mock has none
	FinishReason *string      `json:"finish_reason"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

func (c *call) serveChat() {
	req := c.req
	id := fmt.Sprintf("chatcmpl-mock-%d", c.seq)
	text := replyWords(req.completionTokens())
	finish := req.finishReason()
	var u *usage
	if !c.o.omitUsage {
		u = c.openAIUsage()
	}
	if !req.Stream {
		c.writeJSON(chatCompletion{
			ID: id, Object: "chat.completion", Created: c.created, Model: req.Model,
			Choices: []chatChoice{{Message: &chatMessage{Role: "assistant", Content: text}, FinishReason: &finish}},
			Usage:   u,
		})
		return
	}
	chunk := func(choices []chatChoice, u *usage) any {
		return chatCompletion{ID: id, Object: "chat.completion.chunk", Created: c.created, Model: req.Model, Choices: choices, Usage: u}
	}
	empty := ""
	events := []any{chunk([]chatChoice{{Delta: &chatDelta{Role: "assistant", Content: &empty}}}, nil)}
	for _, part := range streamParts(text) {
		events = append(events, chunk([]chatChoice{{Delta: &chatDelta{Content: &part}}}, nil))
	}
	events = append(events, chunk([]chatChoice{{Delta: &chatDelta{}, FinishReason: &finish}}, nil))
	if req.StreamOptions.IncludeUsage && u != nil {
		events = append(events, chunk([]chatChoice{}, u))
	}
	c.writeSSE(openAIEvents(events))
}

type textCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type textChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"` // always null: the mock has none
	FinishReason *string   `json:"finish_reason"`
}

func (c *call) serveCompletion() {
	req := c.req
	id := fmt.Sprintf("cmpl-mock-%d", c.seq)
	text := replyWords(req.completionTokens())
	finish := req.finishReason()
	var u *usage
	if !c.o.omitUsage {
		u = c.openAIUsage()
	}
	completion := func(choices []textChoice, u *usage) textCompletion {
		return textCompletion{ID: id, Object: "text_completion", Created: c.created, Model: req.Model, Choices: choices, Usage: u}
	}
	if !req.Stream {
		c.writeJSON(completion([]textChoice{{Text: text, FinishReason: &finish}}, u))
		return
	}
	var events []any
	for _, part := range streamParts(text) {
		events = append(events, completion([]textChoice{{Text: part}}, nil))
	}
	events = append(events, completion([]textChoice{{FinishReason: &finish}}, nil))
	if req.StreamOptions.IncludeUsage && u != nil {
		events = append(events, completion([]textChoice{}, u))
	}
	c.writeSSE(openAIEvents(events))
}

// streamParts splits text into chunks of streamChunkWords words that
// concatenate back to text.
func streamParts(text string) []string {
	words := strings.Fields(text)
	var parts []string
	for i := 0; i < len(words); i += streamChunkWords {
		part := strings.Join(words[i:min(i+streamChunkWords, len(words))], " ")
		if i > 0 {
			part = " " + part
		}
		parts = append(parts, part)
	}
	return parts
}

type embeddingList struct {
	Object string          `json:"object"`
	Data   []embedding     `json:"data"`
	Model  string          `json:"model"`
	Usage  *embeddingUsage `json:"usage,omitempty"`
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

type embeddingUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

func (c *call) serveEmbeddings() {
	req := c.req
	vector := make([]float32, EmbeddingDimensions)
	for i := range vector {
		vector[i] = float32(i+1) / 10
	}
	var value any = vector
	if req.EncodingFormat == "base64" {
		raw := make([]byte, 0, 4*len(vector))
		for _, f := range vector {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
		}
		value = base64.StdEncoding.EncodeToString(raw)
	}
	n := embeddingCount(req.Input)
	data := make([]embedding, n)
	for i := range data {
		data[i] = embedding{Object: "embedding", Index: i, Embedding: value}
	}
	p := req.promptTokens()
	list := embeddingList{Object: "list", Data: data, Model: req.Model, Usage: &embeddingUsage{PromptTokens: p, TotalTokens: p}}
	if c.o.omitUsage {
		list.Usage = nil
	}
	c.writeJSON(list)
}

// embeddingCount is how many embeddings input asks for: one per string or
// token-id array in an array, one for a single string or token-id array.
func embeddingCount(input json.RawMessage) int {
	var v any
	if isNull(input) || json.Unmarshal(input, &v) != nil {
		return 0
	}
	switch v := v.(type) {
	case string:
		return 1
	case []any:
		if len(v) == 0 {
			return 0
		}
		if _, ok := v[0].(float64); ok {
			return 1
		}
		return len(v)
	}
	return 0
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	var body errorBody
	body.Error.Message = msg
	body.Error.Type = "invalid_request_error"
	if status >= 500 {
		body.Error.Type = "server_error"
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the mock's own types are marshalled; they always encode.
		panic(fmt.Sprintf("mockllm: marshal response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
