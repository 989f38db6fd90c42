(ns sse-server.jetty
  "Two things ring's Jetty adapter does not reach: the connection under a request (a stream
  needs it to notice a client that has gone, and to cut off one that stopped reading), and
  JSON instead of Jetty's HTML for the errors Jetty answers by itself."
  (:import [java.io OutputStream]
           [java.nio ByteBuffer]
           [java.nio.charset StandardCharsets]
           [javax.servlet.http HttpServletRequest HttpServletResponse]
           [org.eclipse.jetty.http HttpFields HttpHeader]
           [org.eclipse.jetty.io EndPoint]
           [org.eclipse.jetty.server Request Server]
           [org.eclipse.jetty.server.handler ErrorHandler HandlerWrapper]
           [org.eclipse.jetty.util BufferUtil]))

(set! *warn-on-reflection* true)

(def ^:private ^ThreadLocal current-request (ThreadLocal.))

(defn endpoint
  "The connection of the request being handled on this thread (only inside the handler)."
  ^EndPoint []
  (.getEndPoint (.getHttpChannel ^Request (.get current-request))))

(defn output
  "The response body stream of the request being handled on this thread. Ring hands a body a
  FilterOutputStream around it, which writes an array one byte at a time."
  ^OutputStream []
  (.getOutputStream (.getResponse ^Request (.get current-request))))

(defn peer-closed?
  "True once the client has closed its side. Jetty reads nothing while a response is open, so
  without this a client that hangs up shows only when a later write fails."
  [^EndPoint endpoint]
  (try
    (neg? (.fill endpoint (BufferUtil/allocate 1)))
    (catch java.io.IOException _ true)))

(defn- error-json ^String [message]
  (str "{\"error\":\"" (.replace (str message) "\"" "'") "\"}"))

(defn- json-errors
  "Jetty's own answers (a malformed request, headers too large) as {\"error\": ...}."
  ^ErrorHandler []
  (proxy [ErrorHandler] []
    (badMessageError [status reason ^HttpFields fields]
      (.put fields HttpHeader/CONTENT_TYPE "application/json")
      (ByteBuffer/wrap (.getBytes (error-json (or reason "bad request")) StandardCharsets/UTF_8)))
    (generateAcceptableResponse
      ([base-request request ^HttpServletResponse response code message]
       (.setContentType response "application/json")
       (.write (.getWriter response) (error-json (or message "error"))))
      ([base-request request ^HttpServletResponse response code message _mime-type]
       (.setContentType response "application/json")
       (.write (.getWriter response) (error-json (or message "error")))))))

(defn configure
  "A :configurator for ring's run-jetty: keeps each request's Jetty Request at hand for
  `endpoint`, and answers Jetty's own errors in JSON."
  [^Server server]
  (let [ring-handler (.getHandler server)]
    (.setHandler server
                 (doto (proxy [HandlerWrapper] []
                         (handle [^String target ^Request base-request ^HttpServletRequest request ^HttpServletResponse response]
                           (.set current-request base-request)
                           ;; the wrapped handler itself, not proxy-super (which is not thread-safe)
                           (try
                             (.handle (.getHandler ^HandlerWrapper this) target base-request request response)
                             (finally (.remove current-request)))))
                   (.setHandler ring-handler))))
  (.setErrorHandler server (json-errors)))
