(ns sse-server.hub
  "The hub: the id counter, the history and the set of clients. Every change happens under
  one lock, so taking the replay and joining the broadcast is one step, and every client
  gets the events in id order."
  (:import [java.nio.charset StandardCharsets]
           [java.util.concurrent LinkedBlockingQueue TimeUnit]
           [java.util.concurrent.atomic AtomicLong]))

(set! *warn-on-reflection* true)

(def history-size 100)
(def max-clients 10000)
(def max-queue-bytes (* 1024 1024))

;; queue: frames (byte arrays) waiting for the client's writer, then ::closed;
;; queued: their size in bytes; close-connection: ends the client's TCP connection.
(defrecord Client [^LinkedBlockingQueue queue ^AtomicLong queued close-connection])

(def ^:private lock (Object.))
(def ^:private state (atom {:last-id 0 :history [] :clients #{}}))

(defn frame
  "One event; every line of data (split on CRLF, CR or LF) gets its own `data: `."
  ^bytes [id event ^String data]
  (let [sb (StringBuilder.)]
    (.append sb (str "id: " id "\nevent: " event "\n"))
    (doseq [line (.split (-> data (.replace "\r\n" "\n") (.replace "\r" "\n")) "\n" -1)]
      (.append sb "data: ")
      (.append sb ^String line)
      (.append sb "\n"))
    (.append sb "\n")
    (.getBytes (.toString sb) StandardCharsets/UTF_8)))

(defn subscribe!
  "Joins the broadcast; returns [client replay] (replay: the kept frames after
  last-event-id, nil for none), or nil when the server is full."
  [last-event-id close-connection]
  (locking lock
    (let [{:keys [history clients]} @state]
      (when (< (count clients) max-clients)
        (let [client (->Client (LinkedBlockingQueue.) (AtomicLong.) close-connection)]
          (swap! state update :clients conj client)
          [client (when last-event-id
                    (for [[id frame] history :when (> id last-event-id)] frame))])))))

(defn- close! [^Client client]
  (.put ^LinkedBlockingQueue (:queue client) ::closed)
  ((:close-connection client)))

(defn unsubscribe! [client]
  (locking lock
    (swap! state update :clients disj client))
  (close! client))

(defn client-count []
  (count (:clients @state)))

(defn- offer!
  "Queues a frame for a client; false when its queue would pass max-queue-bytes."
  [^Client client ^bytes frame]
  (let [^AtomicLong queued (:queued client)
        size (alength frame)]
    (if (> (+ (.get queued) size) max-queue-bytes)
      false
      (do (.addAndGet queued size)
          (.put ^LinkedBlockingQueue (:queue client) frame)
          true))))

(defn publish!
  "Assigns the next id, keeps the event and queues it for every client, never waiting for
  one: a client that is too far behind is dropped and its connection closed. Returns the id."
  [event data]
  (locking lock
    (let [{:keys [last-id clients]} @state
          id (inc last-id)
          frame (frame id event data)
          dropped (doall (remove #(offer! % frame) clients))]
      (swap! state (fn [s]
                     (-> s
                         (assoc :last-id id)
                         (update :history #(vec (take-last history-size (conj % [id frame]))))
                         (update :clients #(reduce disj % dropped)))))
      (run! close! dropped)
      id)))

(defn take!
  "The client's next frame, ::closed once it is dropped, or nil after wait-ms with nothing."
  [^Client client wait-ms]
  (let [item (.poll ^LinkedBlockingQueue (:queue client) (long wait-ms) TimeUnit/MILLISECONDS)]
    (when (bytes? item)
      (.addAndGet ^AtomicLong (:queued client) (- (alength ^bytes item))))
    item))

(defn close-all!
  "Ends every stream (at shutdown)."
  []
  (let [clients (locking lock
                  (let [clients (:clients @state)]
                    (swap! state assoc :clients #{})
                    clients))]
    (run! close! clients)))
