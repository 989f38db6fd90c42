// Command sse-server is a Server-Sent Events server built on net/http alone.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	serverName       = "sse-server"
	defaultPort      = "3006"
	streamPath       = "/events"
	retryMs          = 3000
	heartbeatSeconds = 15
	historySize      = 100
	maxClients       = 10000
	maxQueueBytes    = 1 << 20 // a client further behind than this is dropped...
	maxQueueFrames   = 64      // ...or than this many frames
	maxBodyBytes     = 64 << 10
	maxEventName     = 64
	maxJSONDepth     = 64
	writeTimeout     = 5 * time.Second // a client that takes no bytes for this long is gone
	corsMethods      = "GET, POST, OPTIONS"
	corsHeaders      = "Last-Event-ID, Cache-Control, Content-Type, Authorization"
)

type timedEvent struct {
	name  string
	every time.Duration
	data  string // the spec's JSON object, keys in the spec's order
}

// timedEvents each get one timer for the whole server; data gains a "timestamp".
var timedEvents = []timedEvent{
	{name: "clock", data: "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}", every: 1000 * time.Millisecond},
	{name: "stock-price", data: "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}", every: 2000 * time.Millisecond},
}

// Tokens come from the environment only. Without SSE_TOKEN the stream is open to anyone.
var streamToken = os.Getenv("SSE_TOKEN")

// Without SSE_PUBLISH_TOKEN, main makes one at start and logs it.
var publishToken = os.Getenv("SSE_PUBLISH_TOKEN")

type event struct {
	id    int64
	frame []byte
}

type client struct {
	frames chan []byte  // closed by the hub when the client falls too far behind
	queued atomic.Int64 // bytes waiting in frames
}

// hub owns the id counter, the history and the set of connected clients.
type hub struct {
	mu      sync.Mutex
	lastID  int64
	history []event
	clients map[*client]struct{}
}

func newHub() *hub {
	return &hub{clients: make(map[*client]struct{})}
}

// subscribe snapshots the events after lastID and joins the broadcast under one lock, so no
// event is lost or sent twice in between. ok is false when the server is full.
func (h *hub) subscribe(lastID int64) (c *client, replay [][]byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients) >= maxClients {
		return nil, nil, false
	}
	if lastID >= 0 {
		for _, e := range h.history {
			if e.id > lastID {
				replay = append(replay, e.frame)
			}
		}
	}
	c = &client{frames: make(chan []byte, maxQueueFrames)}
	h.clients[c] = struct{}{}
	return c, replay, true
}

func (h *hub) unsubscribe(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// publish assigns the next id, keeps the event and queues it for every client without
// ever blocking: a client whose queue is full is dropped.
func (h *hub) publish(name, data string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastID++
	f := frame(h.lastID, name, data)
	h.history = append(h.history, event{h.lastID, f})
	if len(h.history) > historySize {
		h.history = h.history[1:]
	}
	for c := range h.clients {
		if c.queued.Load()+int64(len(f)) <= maxQueueBytes {
			select {
			case c.frames <- f:
				c.queued.Add(int64(len(f)))
				continue
			default:
			}
		}
		delete(h.clients, c)
		close(c.frames)
	}
	return h.lastID
}

// every publishes one timed event until ctx ends. The timestamp is spliced into the spec's
// JSON text rather than added to a map, which encoding/json would write with sorted keys.
func (h *hub) every(ctx context.Context, e timedEvent) {
	head := strings.TrimSuffix(e.data, "}")
	if head != "{" {
		head += ","
	}
	t := time.NewTicker(e.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.publish(e.name, head+`"timestamp":"`+now.UTC().Format("2006-01-02T15:04:05.000Z")+`"}`)
		}
	}
}

// frame writes one event; every line of data (split on CRLF, CR or LF) gets its own "data: ".
func frame(id int64, name, data string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "id: %d\nevent: %s\n", id, name)
	data = strings.ReplaceAll(data, "\r\n", "\n")
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r", "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteByte('\n')
	return b.Bytes()
}

func (h *hub) stream(w http.ResponseWriter, r *http.Request) {
	if !streamAuthorized(r) {
		unauthorized(w)
		return
	}
	c, replay, ok := h.subscribe(lastEventID(r))
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too many clients")
		return
	}
	defer h.unsubscribe(c)

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}

	// net/http buffers the body until Flush. Each write gets its own deadline: that lifts the
	// server's WriteTimeout for this long response, and ends a client that stops reading.
	rc := http.NewResponseController(w)
	send := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}

	hello := []byte(fmt.Sprintf("retry: %d\n\n", retryMs))
	if send(bytes.Join(append([][]byte{hello}, replay...), nil)) != nil {
		return
	}

	beat := time.NewTicker(heartbeatSeconds * time.Second)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done(): // the client went away, or the server is shutting down
			return
		case f, ok := <-c.frames:
			if !ok {
				// Dropped by the hub for falling behind. Returning would end the response
				// cleanly and leave the connection open for another request: abort it, which
				// makes net/http close the connection.
				panic(http.ErrAbortHandler)
			}
			c.queued.Add(-int64(len(f)))
			if send(f) != nil {
				return
			}
		case <-beat.C:
			if send([]byte(": heartbeat\n\n")) != nil {
				return
			}
		}
	}
}

// bearerToken reads "Authorization: Bearer <token>", the scheme in any case.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(token, " "), true
}

func sameToken(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// streamAuthorized: with SSE_TOKEN set, the token as a Bearer header or as ?token= (either
// place is enough).
func streamAuthorized(r *http.Request) bool {
	if streamToken == "" {
		return true
	}
	if token, ok := bearerToken(r); ok && sameToken(token, streamToken) {
		return true
	}
	query := r.URL.Query()
	return query.Has("token") && sameToken(query.Get("token"), streamToken)
}

// lastEventID reads Last-Event-ID (or ?lastEventId=); -1 when absent or malformed.
func lastEventID(r *http.Request) int64 {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if len(v) == 0 || len(v) > 1024 || strings.Trim(v, "0123456789") != "" {
		return -1
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil { // more digits than any id we will ever send
		return -1
	}
	return id
}

func publishAuthorized(r *http.Request) bool {
	token, ok := bearerToken(r)
	return ok && sameToken(token, publishToken)
}

// handlePublish checks, in order: token (401), Content-Type (415), size (413), body (400).
func (h *hub) handlePublish(w http.ResponseWriter, r *http.Request) {
	if !publishAuthorized(r) {
		unauthorized(w)
		return
	}
	if media, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); media != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	if r.ContentLength > maxBodyBytes {
		// Without "Connection: close", net/http would first read up to 256 KiB of the body
		// it is refusing, to keep the connection for another request.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, "body over 64 KiB")
		return
	}
	// Chunked bodies have no length up front: MaxBytesReader fails as soon as one passes the cap.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "body over 64 KiB")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read body")
		return
	}
	name, data, problem := parsePublish(body)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int64{"id": h.publish(name, data)})
}

// parsePublish checks {"event": "<name>", "data": <any JSON>}; a string data is sent as its
// text, anything else as compact JSON.
func parsePublish(body []byte) (name, data, problem string) {
	// encoding/json would turn invalid UTF-8 into U+FFFD and accepts 10000 levels of nesting.
	if !utf8.Valid(body) {
		return "", "", "body is not valid UTF-8"
	}
	if tooDeep(body) {
		return "", "", "body nests deeper than 64 levels"
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil || msg == nil {
		return "", "", "body must be a JSON object"
	}
	name = "message"
	if raw, ok := msg["event"]; ok {
		if raw[0] != '"' || json.Unmarshal(raw, &name) != nil {
			return "", "", "event must be a string"
		}
		if name == "" || utf8.RuneCountInString(name) > maxEventName || strings.ContainsAny(name, "\r\n") {
			return "", "", "event must be 1-64 characters without line breaks"
		}
	}
	raw, ok := msg["data"]
	switch {
	case !ok:
		data = "null"
	case raw[0] == '"':
		_ = json.Unmarshal(raw, &data)
	default:
		var b bytes.Buffer
		_ = json.Compact(&b, raw)
		data = b.String()
	}
	return name, data, ""
}

// tooDeep tells whether arrays and objects nest deeper than maxJSONDepth.
func tooDeep(body []byte) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range body {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

func (h *hub) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Status  string `json:"status"`
		Clients int    `json:"clients"`
	}{"ok", h.count()})
}

func preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Access-Control-Allow-Methods", corsMethods)
	hd.Set("Access-Control-Allow-Headers", corsHeaders)
	hd.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// methods serves one path: a handler per method (HEAD runs GET's), any other method gets 405.
// The mux's own 404 and 405 answers are plain text; these are JSON like every other error.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	if handler, ok := m[method]; ok {
		handler(w, r)
		return
	}
	allow := []string{}
	for known := range m {
		allow = append(allow, known)
		if known == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method not allowed")
}

// cors runs before the mux, so every answer carries the headers, errors included.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, http.StatusUnauthorized, "missing or wrong token")
}

func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func main() {
	log.SetFlags(0)
	if publishToken == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			log.Fatal(err)
		}
		publishToken = hex.EncodeToString(b)
		log.Printf("publish token: %s (set SSE_PUBLISH_TOKEN to choose your own)", publishToken)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := newHub()
	for _, e := range timedEvents {
		go h.every(ctx, e)
	}

	mux := http.NewServeMux()
	mux.Handle(streamPath, methods{http.MethodGet: h.stream, http.MethodOptions: preflight})
	mux.Handle("/publish", methods{http.MethodPost: h.handlePublish, http.MethodOptions: preflight})
	mux.Handle("/health", methods{http.MethodGet: h.health})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})

	addr := net.JoinHostPort(envOr("HOST", "0.0.0.0"), envOr("PORT", defaultPort))
	srv := &http.Server{
		Addr:              addr,
		Handler:           cors(mux),
		ReadHeaderTimeout: 15 * time.Second,
		WriteTimeout:      30 * time.Second, // streams lift it per write (see stream)
		IdleTimeout:       60 * time.Second,
		// Every request context derives from ctx, so a signal ends the open streams:
		// Shutdown alone would wait for them forever.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%s listening on http://%s", serverName, addr)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	stop()
	shutdown, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Printf("shutdown: %v", err)
	}
}
