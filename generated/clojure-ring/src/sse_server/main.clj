(ns sse-server.main
  "A Server-Sent Events server: ring on Jetty (ring's async handlers), frames written by hand."
  (:require [clojure.data.json :as json]
            [clojure.string :as str]
            [ring.adapter.jetty :as jetty]
            [ring.core.protocols :as protocols]
            [sse-server.hub :as hub]
            [sse-server.jetty :as jetty-ext])
  (:import [java.io ByteArrayOutputStream IOException InputStream OutputStream PushbackReader StringReader]
           [java.net URLDecoder]
           [java.nio ByteBuffer]
           [java.nio.charset CharacterCodingException CodingErrorAction StandardCharsets]
           [java.security MessageDigest SecureRandom]
           [java.time Instant ZoneOffset]
           [java.time.format DateTimeFormatter]
           [java.util.concurrent Executors ScheduledExecutorService TimeUnit]
           [org.eclipse.jetty.io EndPoint]
           [org.eclipse.jetty.server Server]
           [sun.misc Signal SignalHandler])
  (:gen-class))

(set! *warn-on-reflection* true)

(def server-name "sse-server")
(def default-port 3013)
(def stream-path "/events")
(def retry-ms 3000)
(def heartbeat-seconds 15)
(def max-body-bytes (* 64 1024))
(def max-event-name 64)
(def max-json-depth 64)
;; name, every (ms), data (a JSON object; each event adds "timestamp")
(def timed-events
  [["clock" 1000 "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"]
   ["stock-price" 2000 "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"]])

;; How often an idle stream checks that its client is still there.
(def watch-ms 1000)

(defn- utf8 ^bytes [^String s] (.getBytes s StandardCharsets/UTF_8))

(defn- json-response [status body]
  (let [bytes (utf8 (json/write-str body :escape-unicode false :escape-slash false))]
    {:status status
     :headers {"Content-Type" "application/json"
               "Content-Length" (str (alength bytes))}
     :body bytes}))

(defn- error
  ([status message] (error status message {}))
  ([status message headers] (update (json-response status {"error" message}) :headers merge headers)))

(defn- unauthorized [] (error 401 "unauthorized" {"WWW-Authenticate" "Bearer"}))

(defn- method-not-allowed [allow] (error 405 "method not allowed" {"Allow" allow}))

(defn- preflight []
  {:status 204
   :headers {"Access-Control-Allow-Methods" "GET, POST, OPTIONS"
             "Access-Control-Allow-Headers" "Last-Event-ID, Cache-Control, Content-Type, Authorization"
             "Access-Control-Max-Age" "86400"}})

(defn- query-param
  "The first parameter of that name, URL-decoded; nil when absent or malformed."
  [request param]
  (some (fn [^String pair]
          (let [[k v] (str/split pair #"=" 2)]
            (try
              (when (= param (URLDecoder/decode ^String k "UTF-8"))
                (URLDecoder/decode (or ^String v "") "UTF-8"))
              (catch IllegalArgumentException _ nil))))
        (some-> ^String (:query-string request) (str/split #"&"))))

(defn- bearer
  "The token of `Authorization: Bearer <token>` (scheme in any case)."
  [request]
  (some->> (get-in request [:headers "authorization"]) (re-matches #"(?i)bearer +(.+)") second))

(defn- same-token?
  "Constant time: compares SHA-256 digests, which have the same length."
  [^String given ^String token]
  (and (some? given)
       (let [digest #(.digest (MessageDigest/getInstance "SHA-256") (.getBytes ^String % StandardCharsets/UTF_8))]
         (MessageDigest/isEqual ^bytes (digest given) ^bytes (digest token)))))

(defn- last-event-id
  "Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, else nil (ignored)."
  [request]
  (let [header (get-in request [:headers "last-event-id"])
        value (if (str/blank? header) (query-param request "lastEventId") header)]
    (when (and value (re-matches #"[0-9]{1,1024}" value))
      (bigint value))))

(defn- write-flush [^OutputStream out ^bytes bytes]
  (.write out bytes)
  (.flush out))

;; Ring streams a body by calling write-body-to-stream on the thread that called `respond`:
;; each stream gets a thread of its own, so Jetty's threads stay free. Frames go straight to
;; Jetty's response stream (see jetty-ext/output), each flushed as it is written.
(deftype EventStream [client replay ^EndPoint endpoint ^OutputStream out]
  protocols/StreamableResponseBody
  (write-body-to-stream [_ _ output-stream]
    (let [ring-out ^OutputStream output-stream]
      (try
        (.write out (utf8 (str "retry: " retry-ms "\n\n")))
        (doseq [frame replay] (.write out ^bytes frame))
        (.flush out)
        (let [beat-ms (* 1000 heartbeat-seconds)
              heartbeat (utf8 ": heartbeat\n\n")]
          (loop [next-beat (+ (System/currentTimeMillis) beat-ms)]
            (let [item (hub/take! client (max 0 (min watch-ms (- next-beat (System/currentTimeMillis)))))]
              (cond
                (= item ::hub/closed) nil
                (bytes? item) (do (write-flush out item) (recur next-beat))
                (>= (System/currentTimeMillis) next-beat) (do (write-flush out heartbeat)
                                                              (recur (+ (System/currentTimeMillis) beat-ms)))
                (jetty-ext/peer-closed? endpoint) nil
                :else (recur next-beat)))))
        ;; EofException: the client went away, or was dropped and its connection closed
        (catch IOException _)
        (finally
          (hub/unsubscribe! client)
          ;; ring's stream: closing it also completes the asynchronous request
          (try (.close ring-out) (catch Exception _)))))))

(defn- stream [request respond stream-token]
  (if (and stream-token
           (not (or (same-token? (bearer request) stream-token)
                    (same-token? (query-param request "token") stream-token))))
    (respond (unauthorized))
    (let [endpoint (jetty-ext/endpoint)
          out (jetty-ext/output)]
      (if-let [[client replay] (hub/subscribe! (last-event-id request) #(.close endpoint))]
        (do
          ;; The connector's idle timeout bounds slow request headers; a stream may be quiet longer.
          (.setIdleTimeout endpoint 0)
          (doto (Thread. ^Runnable
                         (fn []
                           (respond {:status 200
                                     :headers {"Content-Type" "text/event-stream; charset=utf-8"
                                               "Cache-Control" "no-store"
                                               "X-Accel-Buffering" "no"}
                                     :body (EventStream. client replay endpoint out)}))
                         "sse-stream")
            (.setDaemon true)
            (.start)))
        (respond (error 503 "too many clients" {"Retry-After" "1"}))))))

(defn- read-body
  "The body as it arrives (Content-Length or chunked); nil once it passes max-body-bytes."
  [^InputStream in]
  (let [body (ByteArrayOutputStream.)
        buffer (byte-array 8192)]
    (loop []
      (let [n (.read in buffer)]
        (cond
          (neg? n) (.toByteArray body)
          (> (+ (.size body) n) max-body-bytes) nil
          :else (do (.write body buffer 0 n) (recur)))))))

(defn- strict-utf8 ^String [^bytes body]
  (-> (.newDecoder StandardCharsets/UTF_8)
      (.onMalformedInput CodingErrorAction/REPORT)
      (.onUnmappableCharacter CodingErrorAction/REPORT)
      (.decode (ByteBuffer/wrap body))
      str))

(defn- json-depth
  "How deeply arrays and objects nest in JSON text (strings skipped), before it is parsed."
  [^String text]
  (let [n (.length text)]
    (loop [i 0, depth 0, deepest 0, in-string false]
      (if (>= i n)
        deepest
        (let [c (.charAt text i)]
          (if in-string
            (case c
              \\ (recur (+ i 2) depth deepest true)
              \" (recur (inc i) depth deepest false)
              (recur (inc i) depth deepest true))
            (case c
              \" (recur (inc i) depth deepest true)
              (\[ \{) (recur (inc i) (inc depth) (max deepest (inc depth)) false)
              (\] \}) (recur (inc i) (dec depth) deepest false)
              (recur (inc i) depth deepest false))))))))

(defn- read-json
  "One JSON value and nothing after it; numbers with a fraction stay exact (BigDecimal)."
  [^String text]
  (let [reader (PushbackReader. (StringReader. text) 64)
        value (json/read reader :bigdec true)]
    (when-not (str/blank? (slurp reader))
      (throw (ex-info "text after the JSON value" {})))
    value))

(defn- lone-surrogate?
  "JSON may escape half of a surrogate pair (\\ud83c alone): no UTF-8 can carry that."
  [^String s]
  (let [n (.length s)]
    (loop [i 0]
      (cond
        (= i n) false
        (Character/isHighSurrogate (.charAt s i)) (if (and (< (inc i) n) (Character/isLowSurrogate (.charAt s (inc i))))
                                                    (recur (+ i 2))
                                                    true)
        (Character/isLowSurrogate (.charAt s i)) true
        :else (recur (inc i))))))

(defn- parse-publish
  "Reads {\"event\": \"<name>\", \"data\": <any JSON>}: [event data] or [nil problem]. A string
  data is sent as its text, anything else as compact JSON."
  [^bytes body]
  (let [text (try (strict-utf8 body) (catch CharacterCodingException _ nil))
        too-deep (and text (> (json-depth text) max-json-depth))
        value (when (and text (not too-deep))
                (try (read-json text) (catch Exception _ ::invalid)))
        event (when (map? value) (get value "event" "message"))]
    (cond
      (nil? text) [nil "body is not valid UTF-8"]
      too-deep [nil "JSON nested deeper than 64 levels"]
      (or (= value ::invalid)
          (some lone-surrogate? (filter string? (tree-seq coll? seq value)))) [nil "body is not JSON"]
      (not (map? value)) [nil "body must be a JSON object"]
      (not (string? event)) [nil "event must be a string"]
      (or (str/blank? event)
          (> (.codePointCount ^String event 0 (count event)) max-event-name)
          (re-find #"[\r\n]" event)) [nil "event must be 1-64 characters without line breaks"]
      :else (let [data (get value "data")]
              [event (if (string? data) data (json/write-str data :escape-unicode false :escape-slash false))]))))

;; Checked in this order: token (401), Content-Type (415), size (413), body (400).
(defn- publish [request publish-token]
  (let [media-type (some-> ^String (:content-type request) (str/split #";") first str/trim str/lower-case)]
    (cond
      (not (same-token? (bearer request) publish-token)) (unauthorized)
      (not= media-type "application/json") (error 415 "Content-Type must be application/json")
      (some-> (:content-length request) (> max-body-bytes)) (error 413 "body over 64 KiB")
      :else (if-let [body (read-body (:body request))]
              (let [[event data-or-problem] (parse-publish body)]
                (if event
                  (json-response 202 {"id" (hub/publish! event data-or-problem)})
                  (error 400 data-or-problem)))
              (error 413 "body over 64 KiB")))))

(defn- cors-headers [request]
  {"Access-Control-Allow-Origin" "*"})

(defn- route [request respond {:keys [stream-token publish-token]}]
  (let [{:keys [uri request-method]} request]
    (cond
      (= uri stream-path) (case request-method
                            :get (stream request respond stream-token)
                            :options (respond (preflight))
                            (respond (method-not-allowed "GET, OPTIONS")))
      (= uri "/publish") (respond (case request-method
                                    :post (publish request publish-token)
                                    :options (preflight)
                                    (method-not-allowed "POST, OPTIONS")))
      (= uri "/health") (respond (if (= request-method :get)
                                   (json-response 200 {"status" "ok" "clients" (hub/client-count)})
                                   (method-not-allowed "GET")))
      :else (respond (error 404 "not found")))))

(defn handler
  "The ring handler (asynchronous: request, respond, raise); CORS headers on every answer."
  [tokens]
  (fn [request respond raise]
    (try
      (route request #(respond (update % :headers merge (cors-headers request))) tokens)
      (catch Exception e (raise e)))))

(def ^:private ^DateTimeFormatter iso-millis (DateTimeFormatter/ofPattern "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"))

(defn- start-timed-events
  "One timer per timed event for the whole server."
  ^ScheduledExecutorService []
  (let [timers (Executors/newSingleThreadScheduledExecutor)]
    (doseq [[event every ^String data] timed-events]
      (.scheduleAtFixedRate timers
                            ^Runnable (fn []
                                        ;; data is the spec's object as JSON text: "timestamp"
                                        ;; (ISO-8601 UTC) goes in before its closing brace
                                        (let [timestamp (.format iso-millis (.atOffset (Instant/now) ZoneOffset/UTC))]
                                          (hub/publish! event (str (subs data 0 (dec (count data)))
                                                                   (when (not= data "{}") ",")
                                                                   "\"timestamp\":\"" timestamp "\"}"))))
                            (long every) (long every) TimeUnit/MILLISECONDS))
    timers))

(defn- env
  "An environment variable; empty counts as unset."
  [name]
  (not-empty (System/getenv name)))

(defn -main [& _]
  (let [stream-token (env "SSE_TOKEN")]
    (let [publish-token (or (env "SSE_PUBLISH_TOKEN")
                          (let [token (format "%032x" (BigInteger. 1 (let [b (byte-array 16)] (.nextBytes (SecureRandom.) b) b)))]
                            (println (str "publish token: " token " (set SSE_PUBLISH_TOKEN to choose your own)"))
                            token))
          host (or (env "HOST") "0.0.0.0")
          port (Integer/parseInt (or (env "PORT") (str default-port)))
          ^Server server (jetty/run-jetty (handler {:stream-token stream-token :publish-token publish-token})
                                          {:host host
                                           :port port
                                           :join? false
                                           :async? true
                                           :async-timeout 0
                                           ;; also bounds slow request headers: idle 15 s, closed
                                           :max-idle-time 15000
                                           :send-server-version? false
                                           :configurator jetty-ext/configure})
          timers (start-timed-events)
          stop (fn []
                 (try
                   (.shutdownNow timers)
                   (hub/close-all!)
                   (.stop server)
                   (finally (System/exit 0))))]
      (println (str server-name " listening on http://" host ":" port))
      (doseq [signal ["TERM" "INT"]]
        (Signal/handle (Signal. ^String signal) (reify SignalHandler (handle [_ _] (stop)))))
      (.join server))))
