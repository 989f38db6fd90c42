// Command sse-server is a Server-Sent Events server built on net/http alone.
package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	serverName    = "sse-server"
	defaultPort   = "3006"
	streamPath    = "/events"
	retryMs       = 3000
	heartbeat     = 15 * time.Second
	historySize   = 100
	maxClients    = 10000
	queueFrames   = 256     // a client further behind than this is dropped...
	queueBytes    = 1 << 20 // ...or than this many bytes
	writeTimeout  = 5 * time.Second
	maxPublish    = 64 << 10
	maxEventName  = 64
	corsMethods   = "GET, POST, OPTIONS"
	corsHeaders   = "Last-Event-ID, Cache-Control, Content-Type, Authorization"
	heartbeatLine = ": heartbeat\n\n"
)

type timedEvent struct {
	name  string
	every time.Duration
	data  string // a JSON object
}

// timedEvents each get one timer for the whole server; data gains a "timestamp".
var timedEvents = []timedEvent{
	{name: "clock", data: "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}", every: 1000 * time.Millisecond},
	{name: "stock-price", data: "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}", every: 2000 * time.Millisecond},
}

var (
	streamToken  = envOr("SSE_TOKEN", "")
	publishToken = ""
)

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
	c = &client{frames: make(chan []byte, queueFrames)}
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
	if historySize > 0 {
		h.history = append(h.history, event{h.lastID, f})
		if len(h.history) > historySize {
			h.history = h.history[1:]
		}
	}
	for c := range h.clients {
		if c.queued.Load()+int64(len(f)) <= queueBytes {
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

// every publishes one timed event until ctx ends.
func (h *hub) every(ctx context.Context, name string, period time.Duration, dataJSON string) {
	var data map[string]json.RawMessage
	if err := json.Unmarshal([]byte(dataJSON), &data); err != nil {
		panic(err)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			data["timestamp"], _ = json.Marshal(now.UTC().Format("2006-01-02T15:04:05.000Z"))
			b, _ := json.Marshal(data)
			h.publish(name, string(b))
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
	if streamToken != "" && !streamAuthorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	c, replay, ok := h.subscribe(lastEventID(r))
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many clients"})
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

	hello := []byte(": connected\n\n")
	if retryMs > 0 {
		hello = []byte(fmt.Sprintf("retry: %d\n\n", retryMs))
	}
	if send(bytes.Join(append([][]byte{hello}, replay...), nil)) != nil {
		return
	}

	var beat <-chan time.Time
	if heartbeat > 0 {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		beat = t.C
	}
	for {
		select {
		case <-r.Context().Done(): // the client went away, or the server is shutting down
			return
		case f, ok := <-c.frames:
			if !ok { // dropped by the hub: too slow
				return
			}
			c.queued.Add(-int64(len(f)))
			if send(f) != nil {
				return
			}
		case <-beat: // also how a silent disconnect shows up
			if send([]byte(heartbeatLine)) != nil {
				return
			}
		}
	}
}

func streamAuthorized(r *http.Request) bool {
	return bearer(r, streamToken) ||
		subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(streamToken)) == 1
}

func bearer(r *http.Request, token string) bool {
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) == 1
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

func (h *hub) handlePublish(w http.ResponseWriter, r *http.Request) {
	if publishToken != "" && !bearer(r, publishToken) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublish))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body over 64 KiB"})
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cannot read body"})
		}
		return
	}
	name, data, problem := parsePublish(body)
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": problem})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]int64{"id": h.publish(name, data)})
}

// parsePublish checks {"event": "<name>", "data": <any JSON>}; a string data is sent as its
// text, anything else as compact JSON.
func parsePublish(body []byte) (name, data, problem string) {
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

// cors runs before the mux, so 404 and 405 answers carry the headers too.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return fallback
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h := newHub()
	for _, e := range timedEvents {
		go h.every(ctx, e.name, e.every, e.data)
	}

	// Method patterns make the mux answer 404 for unknown paths and 405 (with Allow) for
	// known paths asked with another method.
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+streamPath, h.stream)
	mux.HandleFunc("OPTIONS "+streamPath, preflight)
	mux.HandleFunc("POST /publish", h.handlePublish)
	mux.HandleFunc("OPTIONS /publish", preflight)
	mux.HandleFunc("GET /health", h.health)

	addr := net.JoinHostPort(envOr("HOST", "0.0.0.0"), envOr("PORT", defaultPort))
	srv := &http.Server{
		Addr:              addr,
		Handler:           cors(mux),
		ReadHeaderTimeout: 10 * time.Second,
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
	log.SetFlags(0)
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
