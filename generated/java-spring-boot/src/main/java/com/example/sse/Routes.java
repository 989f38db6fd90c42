package com.example.sse;

import static org.springframework.web.reactive.function.server.RequestPredicates.path;

import static java.nio.charset.StandardCharsets.UTF_8;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.JsonNodeFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;

import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.io.buffer.DataBuffer;
import org.springframework.core.io.buffer.DataBufferLimitException;
import org.springframework.core.io.buffer.DataBufferUtils;
import org.springframework.core.io.buffer.DefaultDataBufferFactory;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatus;
import org.springframework.http.MediaType;
import org.springframework.http.server.reactive.ServerHttpRequestDecorator;
import org.springframework.web.reactive.function.BodyExtractors;
import org.springframework.web.reactive.function.BodyInserters;
import org.springframework.web.reactive.function.server.RouterFunction;
import org.springframework.web.reactive.function.server.RouterFunctions;
import org.springframework.web.reactive.function.server.ServerRequest;
import org.springframework.web.reactive.function.server.ServerResponse;

import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import reactor.netty.Connection;
import reactor.netty.http.server.HttpServerRequest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** GET STREAM_PATH, POST /publish, GET /health; 404 and 405 as JSON for the rest. */
@Configuration
public class Routes {
    static final String STREAM_PATH =
            // the spec's path, on a line of its own so that any length is formatted alike
            "/events";
    static final int MAX_BODY_BYTES = 64 * 1024;
    static final int MAX_EVENT_NAME = 64;
    static final int MAX_JSON_DEPTH = 64;

    private static final Pattern BEARER = Pattern.compile("(?i)bearer +(.*)");
    private static final MediaType EVENT_STREAM = new MediaType("text", "event-stream", UTF_8);

    /** Refuses deep nesting while parsing; keeps numbers as written (no double rounding). */
    private static final ObjectMapper PUBLISH_JSON =
            JsonMapper.builder(
                            JsonFactory.builder()
                                    .streamReadConstraints(
                                            StreamReadConstraints.builder()
                                                    .maxNestingDepth(MAX_JSON_DEPTH)
                                                    .build())
                                    .build())
                    .enable(
                            DeserializationFeature.FAIL_ON_TRAILING_TOKENS,
                            DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
                    .disable(JsonNodeFeature.STRIP_TRAILING_BIGDECIMAL_ZEROES)
                    .build();

    private final Hub hub;
    private final SseServerApplication.Tokens tokens;

    Routes(Hub hub, SseServerApplication.Tokens tokens) {
        this.hub = hub;
        this.tokens = tokens;
    }

    @Bean
    RouterFunction<ServerResponse> router() {
        // OPTIONS (preflight) is answered by the Cors filter before routing.
        return RouterFunctions.route()
                .GET(STREAM_PATH, this::stream)
                .POST("/publish", this::publish)
                .GET("/health", this::health)
                .route(path(STREAM_PATH), request -> methodNotAllowed("GET, OPTIONS"))
                .route(path("/publish"), request -> methodNotAllowed("POST, OPTIONS"))
                .route(path("/health"), request -> methodNotAllowed("GET"))
                .route(request -> true, request -> error(HttpStatus.NOT_FOUND, "not found"))
                .build();
    }

    private Mono<ServerResponse> stream(ServerRequest request) {
        if (tokens.streamToken() != null && !streamAuthorized(request)) {
            return unauthorized();
        }
        Hub.Client client = hub.subscribe(lastEventId(request));
        if (client == null) {
            return ServerResponse.status(HttpStatus.SERVICE_UNAVAILABLE)
                    .header(HttpHeaders.RETRY_AFTER, "1")
                    .contentType(MediaType.APPLICATION_JSON)
                    .bodyValue(new ErrorBody("too many clients"));
        }
        HttpServerRequest connection =
                ServerHttpRequestDecorator.getNativeRequest(request.exchange().getRequest());
        // Raw bytes, not ServerSentEvent: Spring writes "data:" without the space (a data line
        // that starts with a space would lose it) and splits data on LF only, never on CR.
        // Reactor Netty flushes as soon as no further frame is waiting, and notices a closed
        // connection at once: it cancels this Flux, which unsubscribes the client.
        // An error reaches the socket only after the frames queued before it, never for a client
        // that stopped reading: a dropped one is closed here.
        Flux<DataBuffer> body =
                client.frames()
                        .<DataBuffer>map(DefaultDataBufferFactory.sharedInstance::wrap)
                        .doOnError(
                                Hub.SlowClientException.class,
                                e -> connection.withConnection(Connection::dispose))
                        .doFinally(signal -> hub.unsubscribe(client));
        return ServerResponse.ok()
                .contentType(EVENT_STREAM)
                .header(HttpHeaders.CACHE_CONTROL, "no-store")
                .header("X-Accel-Buffering", "no")
                .body(BodyInserters.fromDataBuffers(body));
    }

    private boolean streamAuthorized(ServerRequest request) {
        return same(bearer(request), tokens.streamToken())
                || same(request.queryParam("token").orElse(null), tokens.streamToken());
    }

    /** Last-Event-ID (or ?lastEventId=) when it is 1-1024 ASCII digits, else -1 (no replay). */
    static long lastEventId(ServerRequest request) {
        String value = request.headers().firstHeader("Last-Event-ID");
        if (value == null) {
            value = request.queryParam("lastEventId").orElse("");
        }
        if (value.isEmpty()
                || value.length() > 1024
                || !value.chars().allMatch(c -> c >= '0' && c <= '9')) {
            return -1;
        }
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) { // more digits than any id this server will reach
            return -1;
        }
    }

    /** Checked in order: token (401), Content-Type (415), size (413), then the body (400). */
    private Mono<ServerResponse> publish(ServerRequest request) {
        if (!publishAuthorized(request)) {
            return unauthorized();
        }
        String contentType = request.headers().firstHeader(HttpHeaders.CONTENT_TYPE);
        String mediaType = contentType == null ? "" : contentType.split(";", 2)[0].strip();
        if (!mediaType.toLowerCase(Locale.ROOT).equals("application/json")) {
            return error(
                    HttpStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
        }
        if (request.headers().contentLength().orElse(0) > MAX_BODY_BYTES) {
            return error(HttpStatus.PAYLOAD_TOO_LARGE, "body over 64 KiB");
        }
        // join() fails as soon as the bytes read pass the cap, while a chunked body still arrives.
        return DataBufferUtils.join(request.body(BodyExtractors.toDataBuffers()), MAX_BODY_BYTES)
                .map(Routes::bytes)
                .defaultIfEmpty(new byte[0])
                .flatMap(this::accept)
                .onErrorResume(
                        DataBufferLimitException.class,
                        e -> error(HttpStatus.PAYLOAD_TOO_LARGE, "body over 64 KiB"));
    }

    private Mono<ServerResponse> accept(byte[] body) {
        Publication p;
        try {
            p = Publication.parse(body);
        } catch (BadRequest e) {
            return error(HttpStatus.BAD_REQUEST, e.getMessage());
        }
        return ServerResponse.accepted()
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(new Published(hub.publish(p.event(), p.data())));
    }

    private boolean publishAuthorized(ServerRequest request) {
        return same(bearer(request), tokens.publishToken());
    }

    /**
     * {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else as
     * compact JSON.
     */
    record Publication(String event, String data) {
        static Publication parse(byte[] body) throws BadRequest {
            JsonNode message;
            try {
                // A strict decoder: invalid UTF-8 is refused rather than replaced.
                String text = UTF_8.newDecoder().decode(ByteBuffer.wrap(body)).toString();
                message = PUBLISH_JSON.readTree(text);
            } catch (IOException e) {
                throw new BadRequest(
                        "body must be a JSON object (UTF-8, nested at most 64 levels)");
            }
            if (message == null || !message.isObject()) {
                throw new BadRequest("body must be a JSON object");
            }
            String event = "message";
            JsonNode name = message.get("event");
            if (name != null) {
                if (!name.isTextual()) {
                    throw new BadRequest("event must be a string");
                }
                event = name.textValue();
                if (event.isEmpty()
                        || event.codePointCount(0, event.length()) > MAX_EVENT_NAME
                        || event.indexOf('\r') >= 0
                        || event.indexOf('\n') >= 0) {
                    throw new BadRequest("event must be 1-64 characters without line breaks");
                }
            }
            JsonNode data = message.get("data");
            if (data == null) {
                return new Publication(event, "null");
            }
            return new Publication(event, data.isTextual() ? data.textValue() : data.toString());
        }
    }

    static final class BadRequest extends Exception {
        private static final long serialVersionUID = 1L;

        BadRequest(String message) {
            super(message, null, false, false);
        }
    }

    record Published(long id) {}

    private static byte[] bytes(DataBuffer buffer) {
        byte[] bytes = new byte[buffer.readableByteCount()];
        buffer.read(bytes);
        DataBufferUtils.release(buffer);
        return bytes;
    }

    private Mono<ServerResponse> health(ServerRequest request) {
        return ServerResponse.ok()
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(new Health("ok", hub.count()));
    }

    record Health(String status, int clients) {}

    record ErrorBody(String error) {}

    /** The token after "Bearer " (the scheme in any case), or null. */
    private static String bearer(ServerRequest request) {
        String header = request.headers().firstHeader(HttpHeaders.AUTHORIZATION);
        if (header == null) {
            return null;
        }
        Matcher m = BEARER.matcher(header);
        return m.matches() ? m.group(1) : null;
    }

    /** Constant-time comparison. */
    private static boolean same(String given, String expected) {
        return given != null
                && MessageDigest.isEqual(given.getBytes(UTF_8), expected.getBytes(UTF_8));
    }

    private static Mono<ServerResponse> unauthorized() {
        return ServerResponse.status(HttpStatus.UNAUTHORIZED)
                .header(HttpHeaders.WWW_AUTHENTICATE, "Bearer")
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(new ErrorBody("unauthorized"));
    }

    private static Mono<ServerResponse> methodNotAllowed(String allow) {
        return ServerResponse.status(HttpStatus.METHOD_NOT_ALLOWED)
                .header(HttpHeaders.ALLOW, allow)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(new ErrorBody("method not allowed"));
    }

    static Mono<ServerResponse> error(HttpStatus status, String message) {
        return ServerResponse.status(status)
                .contentType(MediaType.APPLICATION_JSON)
                .bodyValue(new ErrorBody(message));
    }
}
