package com.example.sse;

import static java.nio.charset.StandardCharsets.UTF_8;

import org.springframework.context.SmartLifecycle;
import org.springframework.stereotype.Component;

import reactor.core.Disposable;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Sinks;

import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;

/** The shared state: the id counter, the history and the set of connected clients. */
@Component
public class Hub implements SmartLifecycle {
    static final int RETRY_MS = 3000;
    static final int HEARTBEAT_SECONDS = 15;
    static final int HISTORY_SIZE = 100;
    static final int MAX_CLIENTS = 10000;
    static final long MAX_QUEUE_BYTES = 1 << 20;

    /**
     * Events with `every` > 0: one timer each for the whole server. Their data is JSON text with
     * the spec's keys in order; each tick adds a "timestamp" as the last field.
     */
    record TimedEvent(String name, Duration every, String data) {}

    static final List<TimedEvent> TIMED_EVENTS =
            List.of(
                    new TimedEvent(
                            "clock", // every 1000 ms
                            Duration.ofMillis(1000),
                            "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
                    new TimedEvent(
                            "stock-price", // every 2000 ms
                            Duration.ofMillis(2000),
                            "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"));

    private static final Pattern LINE_BREAK = Pattern.compile("\r\n|\r|\n");
    private static final DateTimeFormatter TIMESTAMP =
            DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    /** The first frame of every stream, flushed at once. */
    private static final byte[] HELLO = ("retry: " + RETRY_MS + "\n\n").getBytes(UTF_8);

    private static final byte[] HEARTBEAT = ": heartbeat\n\n".getBytes(UTF_8);

    private record Event(long id, byte[] frame) {}

    private final Deque<Event> history = new ArrayDeque<>();
    private final Set<Client> clients = new HashSet<>();
    private final List<Disposable> timers = new ArrayList<>();
    private long lastId;
    private boolean running;

    /**
     * Joins the broadcast and takes the replay (events after lastEventId) under one lock, so no
     * event is lost or sent twice in between. Null when the server is full.
     */
    synchronized Client subscribe(long lastEventId) {
        if (!running || clients.size() >= MAX_CLIENTS) {
            return null;
        }
        List<byte[]> replay = new ArrayList<>();
        replay.add(HELLO);
        if (lastEventId >= 0) {
            for (Event e : history) {
                if (e.id() > lastEventId) {
                    replay.add(e.frame());
                }
            }
        }
        Client client = new Client(replay);
        clients.add(client);
        return client;
    }

    synchronized void unsubscribe(Client client) {
        clients.remove(client);
    }

    synchronized int count() {
        return clients.size();
    }

    /** Assigns the next id, keeps the event and queues it for every client; returns the id. */
    synchronized long publish(String event, String data) {
        lastId++;
        byte[] frame = frame(lastId, event, data);
        history.addLast(new Event(lastId, frame));
        if (history.size() > HISTORY_SIZE) {
            history.removeFirst();
        }
        broadcast(frame);
        return lastId;
    }

    /** Queues a frame for every client without waiting: a client whose queue is full is dropped. */
    private void broadcast(byte[] frame) {
        for (Iterator<Client> it = clients.iterator(); it.hasNext(); ) {
            Client client = it.next();
            if (!client.offer(frame)) {
                it.remove();
                client.end.tryEmitError(new SlowClientException());
            }
        }
    }

    /** One event: every line of data (split on CRLF, CR or LF) gets its own "data: ". */
    static byte[] frame(long id, String event, String data) {
        StringBuilder b = new StringBuilder();
        b.append("id: ").append(id).append("\nevent: ").append(event).append('\n');
        for (String line : LINE_BREAK.split(data, -1)) {
            b.append("data: ").append(line).append('\n');
        }
        return b.append('\n').toString().getBytes(UTF_8);
    }

    private void publishTimed(TimedEvent event) {
        String fields = event.data().substring(0, event.data().length() - 1);
        String separator = fields.equals("{") ? "" : ",";
        String timestamp = "\"timestamp\":\"" + TIMESTAMP.format(Instant.now()) + "\"}";
        publish(event.name(), fields + separator + timestamp);
    }

    @Override
    public synchronized void start() {
        running = true;
        for (TimedEvent event : TIMED_EVENTS) {
            timers.add(Flux.interval(event.every()).subscribe(tick -> publishTimed(event)));
        }
        timers.add(
                Flux.interval(Duration.ofSeconds(HEARTBEAT_SECONDS))
                        .subscribe(tick -> heartbeat()));
    }

    /** One ticker for all streams: ": heartbeat" every HEARTBEAT_SECONDS, events or not. */
    private synchronized void heartbeat() {
        broadcast(HEARTBEAT);
    }

    /** Runs before the web server stops: ends every open stream. */
    @Override
    public synchronized void stop() {
        running = false;
        timers.forEach(Disposable::dispose);
        timers.clear();
        List<Client> open = new ArrayList<>(clients);
        clients.clear();
        open.forEach(client -> client.end.tryEmitEmpty());
    }

    @Override
    public synchronized boolean isRunning() {
        return running;
    }

    /** One open stream: what it must still be sent, bounded in bytes. */
    static final class Client {
        private final List<byte[]> replay;
        private final Sinks.Many<byte[]> queue = Sinks.many().unicast().onBackpressureBuffer();
        private final AtomicLong queuedBytes = new AtomicLong();

        /** completes at shutdown; fails when the client is dropped, which closes its connection */
        private final Sinks.Empty<Void> end = Sinks.empty();

        private Client(List<byte[]> replay) {
            this.replay = replay;
        }

        /** Called under the hub's lock; false when the client is too far behind or gone. */
        private boolean offer(byte[] frame) {
            if (queuedBytes.get() + frame.length > MAX_QUEUE_BYTES) {
                return false;
            }
            queuedBytes.addAndGet(frame.length);
            return queue.tryEmitNext(frame).isSuccess();
        }

        /** The first frame and the replay, then live frames as the connection takes them. */
        Flux<byte[]> frames() {
            Flux<byte[]> live =
                    queue.asFlux().doOnNext(frame -> queuedBytes.addAndGet(-frame.length));
            return Flux.concat(Flux.fromIterable(replay), live).takeUntilOther(end.asMono());
        }
    }

    /** Ends the stream of a client that stopped reading. */
    static final class SlowClientException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        SlowClientException() {
            super("dropped a client that stopped reading (over 1 MiB queued)", null, false, false);
        }
    }
}
