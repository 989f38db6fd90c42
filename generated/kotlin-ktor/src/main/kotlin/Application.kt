// sse-server: a Server-Sent Events server on Ktor (Netty engine).
package com.example.sse

import io.ktor.http.ContentType
import io.ktor.http.HttpHeaders
import io.ktor.http.HttpMethod
import io.ktor.http.HttpStatusCode
import io.ktor.server.application.Application
import io.ktor.server.application.ApplicationCall
import io.ktor.server.application.createApplicationPlugin
import io.ktor.server.application.install
import io.ktor.server.engine.connector
import io.ktor.server.engine.embeddedServer
import io.ktor.server.netty.Netty
import io.ktor.server.netty.NettyApplicationCall
import io.ktor.server.plugins.BadRequestException
import io.ktor.server.plugins.statuspages.StatusPages
import io.ktor.server.request.httpMethod
import io.ktor.server.request.path
import io.ktor.server.request.receiveChannel
import io.ktor.server.response.header
import io.ktor.server.response.respond
import io.ktor.server.response.respondBytesWriter
import io.ktor.server.response.respondText
import io.ktor.server.routing.get
import io.ktor.server.routing.post
import io.ktor.server.routing.route
import io.ktor.server.routing.routing
import io.ktor.sse.ServerSentEvent
import io.ktor.utils.io.ByteReadChannel
import io.ktor.utils.io.ByteWriteChannel
import io.ktor.utils.io.discard
import io.ktor.utils.io.readRemaining
import io.ktor.utils.io.writeFully
import io.netty.channel.ChannelDuplexHandler
import io.netty.channel.ChannelHandlerContext
import io.netty.channel.ChannelPromise
import io.netty.handler.codec.http.HttpRequest
import io.netty.handler.codec.http.LastHttpContent
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.io.readByteArray
import kotlinx.serialization.SerializationException
import kotlinx.serialization.json.Json
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject
import kotlinx.serialization.json.put
import org.slf4j.LoggerFactory
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.security.MessageDigest
import java.security.SecureRandom
import java.time.Instant
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter
import java.util.concurrent.ScheduledFuture
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import io.netty.channel.Channel as Connection

const val SERVER_NAME = "sse-server"
const val DEFAULT_PORT = 3010
const val STREAM_PATH = "/events"
const val RETRY_MS = 3000L
const val HEARTBEAT_SECONDS = 15
const val HISTORY_SIZE = 100
const val MAX_CLIENTS = 10000
const val MAX_QUEUE_BYTES = 1L shl 20
const val QUEUE_EVENTS = 4096
const val HEADER_TIMEOUT_SECONDS = 15L
const val MAX_BODY_BYTES = 64 * 1024
const val MAX_EVENT_NAME = 64
const val MAX_JSON_DEPTH = 64
const val MAX_DISCARD_BYTES = 1L shl 20

/**
 * Events with `every` > 0: one timer each for the whole server. Their data is JSON text with the
 * spec's keys in order; each tick adds a "timestamp" as the last field.
 */
class TimedEvent(val name: String, val every: Duration, val data: String)

val TIMED_EVENTS = listOf(
    TimedEvent("clock", 1000.milliseconds, "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
    TimedEvent("stock-price", 2000.milliseconds, "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"),
)

private val TIMESTAMP = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC)

private val log = LoggerFactory.getLogger(SERVER_NAME)

/** An environment variable, null when unset or empty. */
fun env(name: String): String? = System.getenv(name)?.takeIf { it.isNotEmpty() }

val streamToken: String? = env("SSE_TOKEN")
lateinit var publishToken: String

/** An event's frame, encoded once (by Ktor's `ServerSentEvent`) for every stream that gets it. */
fun frame(sse: ServerSentEvent): ByteArray = (sse.toString() + "\r\n").toByteArray()

/** One event as every stream writes it: its frame, encoded once. */
class Event(val id: Long, val frame: ByteArray)

/** Every stream's first frame. */
val HELLO = frame(ServerSentEvent(retry = RETRY_MS))

/** ": heartbeat", queued for every client every HEARTBEAT_SECONDS by one ticker. */
val HEARTBEAT = Event(0, frame(ServerSentEvent(comments = "heartbeat")))

/** One open stream. Its queue is bounded (QUEUE_EVENTS, and MAX_QUEUE_BYTES), so a slow client never suspends the broadcaster. */
class Client(val replay: List<ByteArray>, private val connection: Connection) {
    val queue = Channel<Event>(QUEUE_EVENTS)
    private val queuedBytes = AtomicLong()

    /** Called under the hub's lock; false when the client is too far behind or gone. */
    fun offer(event: Event): Boolean {
        if (queuedBytes.get() + event.frame.size > MAX_QUEUE_BYTES) return false
        queuedBytes.addAndGet(event.frame.size.toLong())
        return queue.trySend(event).isSuccess
    }

    fun taken(event: Event) {
        queuedBytes.addAndGet(-event.frame.size.toLong())
    }

    /** Closes the connection at once, even while a write to it is stuck. */
    fun drop() {
        queue.close()
        connection.close()
    }
}

/** The shared state: the id counter, the history and the set of connected clients. */
class Hub {
    private var lastId = 0L
    private val history = ArrayDeque<Event>()
    private val clients = LinkedHashSet<Client>()
    private var open = true

    /**
     * Joins the broadcast and takes the replay (events after lastEventId) under one lock, so no
     * event is lost or sent twice in between. Null when the server is full.
     */
    @Synchronized
    fun subscribe(lastEventId: Long?, connection: Connection): Client? {
        if (!open || clients.size >= MAX_CLIENTS) return null
        val replay = listOf(HELLO) + history.filter { lastEventId != null && it.id > lastEventId }.map { it.frame }
        return Client(replay, connection).also { clients.add(it) }
    }

    @Synchronized
    fun unsubscribe(client: Client) {
        clients.remove(client)
    }

    @Synchronized
    fun count(): Int = clients.size

    /** Assigns the next id, keeps the event and queues it for every client; returns the id. */
    @Synchronized
    fun publish(event: String, data: String): Long {
        val e = Event(++lastId, frame(ServerSentEvent(data = data, event = event, id = (lastId).toString())))
        history.addLast(e)
        if (history.size > HISTORY_SIZE) history.removeFirst()
        drop(clients.filter { !it.offer(e) })
        return e.id
    }

    @Synchronized
    fun heartbeat() {
        drop(clients.filter { !it.offer(HEARTBEAT) })
    }

    private fun drop(dropped: List<Client>) {
        dropped.forEach { it.drop() }
        clients.removeAll(dropped.toSet())
    }

    /** Ends every open stream (at shutdown). */
    @Synchronized
    fun close() {
        open = false
        clients.forEach { it.queue.close() }
        clients.clear()
    }
}

val hub = Hub()

/** Writes a stream: the replay, then its queue; what is queued at once goes out in one flush. */
suspend fun ByteWriteChannel.stream(client: Client) {
    client.replay.forEach { writeFully(it) }
    flush()
    for (first in client.queue) {
        var event: Event? = first
        while (event != null) {
            client.taken(event)
            writeFully(event.frame)
            event = client.queue.tryReceive().getOrNull()
        }
        flush()
    }
}

fun ApplicationCall.bearer(): String? {
    val header = request.headers[HttpHeaders.Authorization] ?: return null
    return Regex("(?i)bearer +(.*)").matchEntire(header)?.groupValues?.get(1)
}

/** Constant-time comparison. */
fun same(given: String?, expected: String): Boolean = given != null && MessageDigest.isEqual(given.toByteArray(), expected.toByteArray())

fun streamAuthorized(call: ApplicationCall, token: String): Boolean = same(call.bearer(), token) || same(call.request.queryParameters["token"], token)

fun publishAuthorized(call: ApplicationCall): Boolean = same(call.bearer(), publishToken)

/** Last-Event-ID (or ?lastEventId=) when it is 1-1024 ASCII digits, else null (no replay). */
fun lastEventId(call: ApplicationCall): Long? {
    val value = call.request.headers["Last-Event-ID"] ?: call.request.queryParameters["lastEventId"] ?: return null
    if (value.isEmpty() || value.length > 1024 || !value.all { it in '0'..'9' }) return null
    return value.toLongOrNull() // null: more digits than any id this server will reach
}

suspend fun ApplicationCall.respondError(status: HttpStatusCode, message: String) {
    respondText(buildJsonObject { put("error", message) }.toString(), ContentType.Application.Json, status)
}

suspend fun ApplicationCall.unauthorized() {
    response.header(HttpHeaders.WWWAuthenticate, "Bearer")
    respondError(HttpStatusCode.Unauthorized, "unauthorized")
}

/**
 * 413, then a little more of the body is read and thrown away before the connection closes:
 * closing on unread bytes resets it, and the client could lose the answer before reading it.
 */
suspend fun ApplicationCall.tooLarge(body: ByteReadChannel) {
    respondError(HttpStatusCode.PayloadTooLarge, "body over 64 KiB")
    withTimeoutOrNull(2000) { body.discard(MAX_DISCARD_BYTES) }
}

suspend fun ApplicationCall.methodNotAllowed(allow: String) {
    response.header(HttpHeaders.Allow, allow)
    respondError(HttpStatusCode.MethodNotAllowed, "method not allowed")
}

class BadRequest(message: String) : Exception(message)

/** {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else as compact JSON. */
fun parsePublish(body: ByteArray): Pair<String, String> {
    val text = try {
        Charsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(body)).toString() // refuses invalid UTF-8
    } catch (e: CharacterCodingException) {
        throw BadRequest("body must be UTF-8")
    }
    if (nesting(text) > MAX_JSON_DEPTH) throw BadRequest("JSON nested deeper than $MAX_JSON_DEPTH levels")
    val message = try {
        Json.parseToJsonElement(text)
    } catch (e: SerializationException) {
        throw BadRequest("body must be JSON")
    }
    if (message !is JsonObject) throw BadRequest("body must be a JSON object")
    var event = "message"
    message["event"]?.let { name ->
        if (name !is JsonPrimitive || !name.isString) throw BadRequest("event must be a string")
        event = name.content
        if (event.isEmpty() || event.codePointCount(0, event.length) > MAX_EVENT_NAME || '\r' in event || '\n' in event) {
            throw BadRequest("event must be 1-64 characters without line breaks")
        }
    }
    val data = message["data"]
    return event to when {
        data == null -> "null"
        data is JsonPrimitive && data.isString -> data.content
        else -> data.toString()
    }
}

/** How deep arrays and objects nest, counted before parsing (the parser itself has no limit). */
fun nesting(text: String): Int {
    var depth = 0
    var deepest = 0
    var inString = false
    var escaped = false
    for (c in text) {
        when {
            escaped -> escaped = false
            inString && c == '\\' -> escaped = true
            c == '"' -> inString = !inString
            inString -> {}
            c == '[' || c == '{' -> deepest = maxOf(deepest, ++depth)
            c == ']' || c == '}' -> depth--
        }
    }
    return deepest
}

/** CORS headers on every answer (errors too), and the preflight answer for the two endpoints. */
val Cors = createApplicationPlugin("Cors") {
    onCall { call ->
        call.response.header(HttpHeaders.AccessControlAllowOrigin, "*")
        val path = call.request.path()
        if (call.request.httpMethod == HttpMethod.Options && (path == STREAM_PATH || path == "/publish")) {
            call.response.header(HttpHeaders.AccessControlAllowMethods, "GET, POST, OPTIONS")
            call.response.header(HttpHeaders.AccessControlAllowHeaders, "Last-Event-ID, Cache-Control, Content-Type, Authorization")
            call.response.header(HttpHeaders.AccessControlMaxAge, "86400")
            call.respond(HttpStatusCode.NoContent)
        }
    }
}

/**
 * Closes a connection whose request headers are not complete within HEADER_TIMEOUT_SECONDS (and
 * one idle that long between requests). Ktor's requestReadTimeoutSeconds would also end every
 * stream whose client has been quiet that long.
 */
class HeaderTimeout : ChannelDuplexHandler() {
    private var timer: ScheduledFuture<*>? = null

    private fun arm(ctx: ChannelHandlerContext) {
        timer?.cancel(false)
        timer = ctx.executor().schedule({ ctx.close() }, HEADER_TIMEOUT_SECONDS, TimeUnit.SECONDS)
    }

    override fun handlerAdded(ctx: ChannelHandlerContext) = arm(ctx)

    override fun channelRead(ctx: ChannelHandlerContext, msg: Any) {
        if (msg is HttpRequest) timer?.cancel(false)
        ctx.fireChannelRead(msg)
    }

    override fun write(ctx: ChannelHandlerContext, msg: Any, promise: ChannelPromise) {
        if (msg is LastHttpContent) arm(ctx)
        ctx.write(msg, promise)
    }

    override fun handlerRemoved(ctx: ChannelHandlerContext) {
        timer?.cancel(false)
    }
}

fun Application.module() {
    install(Cors)
    install(StatusPages) {
        // Ktor's own answers (a query string it cannot decode, say) are plain text: JSON here.
        exception<BadRequestException> { call, cause -> call.respondError(HttpStatusCode.BadRequest, cause.message ?: "bad request") }
    }
    // One ticker for every stream: ": heartbeat" every HEARTBEAT_SECONDS, events or not.
    launch {
        while (true) {
            delay(HEARTBEAT_SECONDS.seconds)
            hub.heartbeat()
        }
    }
    for (timed in TIMED_EVENTS) {
        launch {
            while (true) {
                delay(timed.every)
                val fields = timed.data.removeSuffix("}")
                val separator = if (fields == "{") "" else ","
                hub.publish(timed.name, "$fields$separator\"timestamp\":\"${TIMESTAMP.format(Instant.now())}\"}")
            }
        }
    }
    routing {
        route(STREAM_PATH) {
            get {
                if (streamToken != null && !streamAuthorized(call, streamToken)) return@get call.unauthorized()
                // Joins before any header goes out, so an event published the moment the client
                // sees them reaches it. The sse("path") { } builder would answer 200 before
                // this handler could say 401 or 503.
                val connection = (call.pipelineCall.engineCall as NettyApplicationCall).context.channel()
                val client = hub.subscribe(lastEventId(call), connection)
                if (client == null) {
                    call.response.header(HttpHeaders.RetryAfter, "1")
                    return@get call.respondError(HttpStatusCode.ServiceUnavailable, "too many clients")
                }
                // Ends the stream as soon as its client hangs up, not at the next write; also when
                // that happened before this call began (which Ktor's HttpRequestLifecycle misses).
                val job = call.coroutineContext[Job]!!
                connection.closeFuture().addListener { job.cancel() }
                try {
                    call.response.header(HttpHeaders.CacheControl, "no-store")
                    call.response.header("X-Accel-Buffering", "no")
                    call.respondBytesWriter(ContentType.Text.EventStream) { stream(client) }
                } finally {
                    hub.unsubscribe(client)
                }
            }
            handle { call.methodNotAllowed("GET, OPTIONS") }
        }
        route("/publish") {
            // Checked in order: token (401), Content-Type (415), size (413), then the body (400).
            post {
                if (!publishAuthorized(call)) return@post call.unauthorized()
                val type = call.request.headers[HttpHeaders.ContentType]?.substringBefore(';')?.trim()
                if (!type.equals("application/json", ignoreCase = true)) {
                    return@post call.respondError(HttpStatusCode.UnsupportedMediaType, "Content-Type must be application/json")
                }
                val channel = call.receiveChannel()
                val length = call.request.headers[HttpHeaders.ContentLength]?.toLongOrNull()
                if (length != null && length > MAX_BODY_BYTES) return@post call.tooLarge(channel)
                // Reads at most one byte past the cap, while a chunked body is still arriving.
                val body = channel.readRemaining(MAX_BODY_BYTES + 1L).readByteArray()
                if (body.size > MAX_BODY_BYTES) return@post call.tooLarge(channel)
                val (event, data) = try {
                    parsePublish(body)
                } catch (e: BadRequest) {
                    return@post call.respondError(HttpStatusCode.BadRequest, e.message!!)
                }
                call.respondText("{\"id\":${hub.publish(event, data)}}", ContentType.Application.Json, HttpStatusCode.Accepted)
            }
            handle { call.methodNotAllowed("POST, OPTIONS") }
        }
        route("/health") {
            get { call.respondText("{\"status\":\"ok\",\"clients\":${hub.count()}}", ContentType.Application.Json) }
            handle { call.methodNotAllowed("GET") }
        }
        route("{...}") {
            handle { call.respondError(HttpStatusCode.NotFound, "not found") }
        }
    }
}

fun main() {
    publishToken = env("SSE_PUBLISH_TOKEN") ?: ByteArray(16).also { SecureRandom().nextBytes(it) }
        .joinToString("") { "%02x".format(it) }
        .also { log.info("publish token: {} (set SSE_PUBLISH_TOKEN to choose your own)", it) }
    val host = env("HOST") ?: "0.0.0.0"
    val port = env("PORT")?.toInt() ?: DEFAULT_PORT
    // Our own shutdown hook instead of Ktor's: end the streams, stop, then exit 0 (the JVM
    // would exit 143 after SIGTERM).
    System.setProperty("io.ktor.server.engine.ShutdownHook", "false")
    val server = embeddedServer(
        Netty,
        configure = {
            connector {
                this.host = host
                this.port = port
            }
            channelPipelineConfig = { addAfter("codec", "headerTimeout", HeaderTimeout()) }
        },
        module = Application::module,
    )
    Runtime.getRuntime().addShutdownHook(
        Thread {
            hub.close()
            server.stop(100, 2000)
            Runtime.getRuntime().halt(0)
        },
    )
    server.start(wait = false)
    log.info("{} listening on http://{}:{}", SERVER_NAME, host, port)
    Thread.currentThread().join()
}
