// sse-server: a Server-Sent Events server on Akka HTTP.
package com.example.sse

import akka.NotUsed
import akka.actor.ActorSystem
import akka.event.LoggingAdapter
import akka.http.scaladsl.Http
import akka.http.scaladsl.model._
import akka.http.scaladsl.model.headers._
import akka.http.scaladsl.server.Directives._
import akka.http.scaladsl.server.{Directive0, Route}
import akka.http.scaladsl.settings.ServerSettings
import akka.stream.{BoundedSourceQueue, KillSwitches, OverflowStrategy, QueueOfferResult}
import akka.stream.scaladsl.{BidiFlow, Flow, Keep, Sink, Source, TLSPlacebo, Tcp}
import akka.util.ByteString
import java.nio.ByteBuffer
import java.nio.charset.{CharacterCodingException, StandardCharsets}
import java.security.MessageDigest
import java.security.SecureRandom
import java.time.{Instant, ZoneOffset}
import java.time.format.DateTimeFormatter
import java.util.concurrent.atomic.{AtomicBoolean, AtomicLong}
import scala.collection.mutable
import scala.concurrent.Await
import scala.concurrent.Future
import scala.concurrent.duration._
import scala.util.{Failure, Success}
import spray.json.{JsObject, JsString, JsonParser, JsonParserSettings, ParserInput}

/** How a connection ends when its client closes it: any response still streaming stops. */
object HungUp extends RuntimeException("the client closed the connection", null, false, false)

/** How a stream ends when its client stopped reading and over 1 MiB is waiting for it. */
object TooFarBehind
    extends RuntimeException("dropped a client that stopped reading (over 1 MiB queued)", null, false, false)

/** Requests Akka HTTP cannot parse (a malformed query string, say) get a JSON error too. */
object JsonParsingErrors extends akka.http.ParsingErrorHandler {
  def handle(
      status: StatusCode,
      info: ErrorInfo,
      log: LoggingAdapter,
      settings: ServerSettings
  ): akka.http.javadsl.model.HttpResponse =
    Main.error(status, info.summary)
}

object Main {
  // The spec's values, one a line whatever their length: scalafmt leaves them as written.
  // format: off
  val SERVER_NAME = "sse-server"
  val DEFAULT_PORT = 3011
  val STREAM_PATH = "/events"
  val RETRY_MS = 3000
  val HEARTBEAT_SECONDS = 15
  val HISTORY_SIZE = 100
  val MAX_CLIENTS = 10000

  /** Events with `every` > 0: one timer each for the whole server; data gains a "timestamp". */
  final case class TimedEvent(name: String, every: FiniteDuration, dataJson: String)

  val TIMED_EVENTS: List[TimedEvent] = List(
    TimedEvent("clock", 1000.millis, "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
    TimedEvent("stock-price", 2000.millis, "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}")
  )
  // format: on

  val MAX_QUEUE_BYTES: Long = 1L << 20
  val QUEUE_EVENTS = 4096
  val HEADER_TIMEOUT: FiniteDuration = 15.seconds
  val MAX_BODY_BYTES = 64 * 1024
  val MAX_EVENT_NAME = 64
  val MAX_JSON_DEPTH = 64
  private val Timestamp = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC)

  // Frames are written as bytes: Akka's ServerSentEvent sends its heartbeat as an empty data
  // event and a retry with an empty data line, which browsers see as empty messages.
  val EventStream: ContentType = ContentType(MediaTypes.`text/event-stream`)
  val Hello: ByteString = ByteString(s"retry: $RETRY_MS\n\n")
  val Heartbeat: ByteString = ByteString(": heartbeat\n\n")
  private val LineBreak = "\r\n|\r|\n"

  /** One event: every line of data (split on CRLF, CR or LF) gets its own "data: ". */
  def frame(id: Long, event: String, data: String): ByteString = {
    val b = new StringBuilder(s"id: $id\nevent: $event\n")
    data.split(LineBreak, -1).foreach(line => b.append("data: ").append(line).append('\n'))
    ByteString(b.append('\n').toString)
  }

  /** One open stream: its queue is bounded (QUEUE_EVENTS, and MAX_QUEUE_BYTES), so publishing never waits for it. */
  final class Client(queue: BoundedSourceQueue[ByteString]) {
    private val queuedBytes = new AtomicLong

    /** Called under the hub's lock; false when the client is too far behind or gone. */
    def offer(frame: ByteString): Boolean =
      queuedBytes.get + frame.size <= MAX_QUEUE_BYTES && {
        queuedBytes.addAndGet(frame.size.toLong)
        queue.offer(frame) == QueueOfferResult.Enqueued
      }

    def taken(frame: ByteString): ByteString = {
      queuedBytes.addAndGet(-frame.size.toLong)
      frame
    }

    /** Fails the stream: Akka HTTP then closes the connection at once, even mid-write. */
    def drop(): Unit = close(queue.fail(TooFarBehind))

    def end(): Unit = close(queue.complete())

    // Akka throws when the queue has ended already: the client hung up, and its stream is gone
    // but not yet unsubscribed. Left to escape, that would fail the publish and stop a timer.
    private def close(ending: => Unit): Unit =
      try ending
      catch { case _: IllegalStateException => () }
  }

  /** The shared state: the id counter, the history and the set of connected clients. */
  final class Hub {
    private var lastId = 0L
    private val history = mutable.Queue.empty[(Long, ByteString)]
    private val clients = mutable.LinkedHashSet.empty[Client]
    private var open = true

    /** Joins the broadcast and takes the replay (events after lastEventId) under one lock, so no event is lost or sent
      * twice in between. None when the server is full.
      */
    def subscribe(lastEventId: Option[Long], client: Client): Option[List[ByteString]] = synchronized {
      if (!open || clients.size >= MAX_CLIENTS) None
      else {
        clients += client
        Some(Hello :: lastEventId.toList.flatMap(last => history.collect { case (id, f) if id > last => f }))
      }
    }

    def unsubscribe(client: Client): Unit = synchronized { clients -= client }

    def count(): Int = synchronized { clients.size }

    /** Assigns the next id, keeps the event and queues it for every client; returns the id. */
    def publish(event: String, data: String): Long = synchronized {
      lastId += 1
      val f = frame(lastId, event, data)
      history.enqueue(lastId -> f)
      if (history.size > HISTORY_SIZE) history.dequeue()
      val dropped = clients.filterNot(_.offer(f))
      dropped.foreach(_.drop())
      clients --= dropped
      lastId
    }

    /** Ends every open stream (at shutdown). */
    def close(): Unit = synchronized {
      open = false
      clients.foreach(_.end())
      clients.clear()
    }
  }

  /** An environment variable, None when unset or empty. */
  def env(name: String): Option[String] = sys.env.get(name).filter(_.nonEmpty)

  val streamToken: Option[String] = env("SSE_TOKEN")
  val hub = new Hub

  def bearer(request: HttpRequest): Option[String] = {
    val Bearer = "(?i)bearer +(.*)".r
    request.headers.find(_.is("authorization")).map(_.value).collect { case Bearer(token) => token }
  }

  /** Constant-time comparison. */
  def same(candidate: Option[String], expected: String): Boolean =
    candidate.exists(g => MessageDigest.isEqual(g.getBytes("UTF-8"), expected.getBytes("UTF-8")))

  def streamAuthorized(request: HttpRequest, token: String): Boolean =
    same(bearer(request), token) || same(request.uri.query().get("token"), token)

  /** Last-Event-ID (or ?lastEventId=) when it is 1-1024 ASCII digits, else None (no replay). */
  def lastEventId(request: HttpRequest): Option[Long] =
    request.headers
      .find(_.is("last-event-id"))
      .map(_.value)
      .orElse(request.uri.query().get("lastEventId"))
      .filter(v => v.nonEmpty && v.length <= 1024 && v.forall(c => c >= '0' && c <= '9'))
      .flatMap(_.toLongOption) // None: more digits than any id this server will reach

  def error(status: StatusCode, message: String, extra: HttpHeader*): HttpResponse =
    HttpResponse(
      status,
      extra.toList,
      HttpEntity(ContentTypes.`application/json`, JsObject("error" -> JsString(message)).compactPrint)
    )

  val unauthorized: HttpResponse =
    error(StatusCodes.Unauthorized, "unauthorized", RawHeader("WWW-Authenticate", "Bearer"))

  def methodNotAllowed(allow: String): HttpResponse =
    error(StatusCodes.MethodNotAllowed, "method not allowed", RawHeader("Allow", allow))

  def stream(request: HttpRequest): HttpResponse = {
    if (streamToken.exists(token => !streamAuthorized(request, token))) return unauthorized
    if (hub.count() >= MAX_CLIENTS)
      return error(StatusCodes.ServiceUnavailable, "too many clients", RawHeader("Retry-After", "1"))
    val last = lastEventId(request)
    // The client joins when Akka HTTP runs the response body, which it does before the headers
    // go out: an event published the moment the client sees them reaches it. A client gone
    // before that never joins.
    val frames = Source.fromMaterializer { (materializer, _) =>
      val (queue, live) = Source.queue[ByteString](QUEUE_EVENTS).preMaterialize()(materializer)
      val client = new Client(queue)
      hub.subscribe(last, client) match {
        case None => Source.empty[ByteString] // filled up since the check above
        case Some(replay) =>
          Source(replay)
            .concat(live.map(client.taken))
            // One ticker per stream: ": heartbeat" every HEARTBEAT_SECONDS, events or not.
            .merge(Source.tick(HEARTBEAT_SECONDS.seconds, HEARTBEAT_SECONDS.seconds, Heartbeat), eagerComplete = true)
            .watchTermination() { (_, done) =>
              done.onComplete(_ => hub.unsubscribe(client))(materializer.executionContext)
              NotUsed
            }
      }
    }
    HttpResponse(
      headers = List(`Cache-Control`(CacheDirectives.`no-store`), RawHeader("X-Accel-Buffering", "no")),
      entity = HttpEntity.Chunked.fromData(EventStream, frames)
    )
  }

  @volatile private var publishToken = ""
  private val JsonSettings = JsonParserSettings.default.withMaxDepth(MAX_JSON_DEPTH)

  final class BadRequest(message: String) extends Exception(message)

  /** {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else as compact JSON. */
  def parsePublish(body: ByteString): (String, String) = {
    val text =
      try StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(body.toArray)).toString // refuses invalid UTF-8
      catch { case _: CharacterCodingException => throw new BadRequest("body must be UTF-8") }
    val message =
      try JsonParser(ParserInput(text), JsonSettings)
      catch {
        case _: JsonParser.ParsingException => throw new BadRequest("body must be JSON, nested at most 64 levels")
      }
    val fields = message match {
      case JsObject(fields) => fields
      case _                => throw new BadRequest("body must be a JSON object")
    }
    val event = fields.get("event") match {
      case None => "message"
      case Some(JsString(name)) =>
        if (
          name.isEmpty || name.codePointCount(0, name.length) > MAX_EVENT_NAME || name
            .exists(c => c == '\r' || c == '\n')
        )
          throw new BadRequest("event must be 1-64 characters without line breaks")
        name
      case Some(_) => throw new BadRequest("event must be a string")
    }
    val data = fields.get("data") match {
      case None                   => "null"
      case Some(JsString(string)) => string
      case Some(value)            => value.compactPrint
    }
    (event, data)
  }

  /** Checked in order: token (401), Content-Type (415), size (413), then the body (400). */
  def publish(request: HttpRequest)(implicit system: ActorSystem): Future[HttpResponse] = {
    import system.dispatcher
    val tooLarge = error(StatusCodes.PayloadTooLarge, "body over 64 KiB")
    if (!same(bearer(request), publishToken)) Future.successful(unauthorized)
    else if (request.entity.contentType.mediaType != MediaTypes.`application/json`)
      Future.successful(error(StatusCodes.UnsupportedMediaType, "Content-Type must be application/json"))
    else if (request.entity.contentLengthOption.exists(_ > MAX_BODY_BYTES)) Future.successful(tooLarge)
    else
      // withSizeLimit fails the body stream as soon as it passes the cap, while a chunked body still arrives.
      request.entity.withSizeLimit(MAX_BODY_BYTES.toLong).dataBytes.runFold(ByteString.empty)(_ ++ _).transform {
        case Success(body) =>
          try {
            val (event, data) = parsePublish(body)
            Success(
              HttpResponse(
                StatusCodes.Accepted,
                entity = HttpEntity(ContentTypes.`application/json`, s"""{"id":${hub.publish(event, data)}}""")
              )
            )
          } catch { case e: BadRequest => Success(error(StatusCodes.BadRequest, e.getMessage)) }
        case Failure(_: EntityStreamSizeException) => Success(tooLarge)
        case Failure(_)                            => Success(error(StatusCodes.BadRequest, "could not read the body"))
      }
  }

  /** CORS headers on every answer (errors too). */
  val cors: Directive0 = optionalHeaderValueByName("Origin").flatMap { origin =>
    respondWithHeaders(RawHeader("Access-Control-Allow-Origin", "*"))
  }

  val preflight: HttpResponse = HttpResponse(
    StatusCodes.NoContent,
    List(
      RawHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
      RawHeader("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control, Content-Type, Authorization"),
      RawHeader("Access-Control-Max-Age", "86400")
    )
  )

  def routes(implicit system: ActorSystem): Route = cors {
    extractRequest { request =>
      concat(
        path(separateOnSlashes(STREAM_PATH.stripPrefix("/"))) {
          concat(
            get(complete(stream(request))),
            options(complete(preflight)),
            complete(methodNotAllowed("GET, OPTIONS"))
          )
        },
        path("publish") {
          concat(
            post(complete(publish(request))),
            options(complete(preflight)),
            complete(methodNotAllowed("POST, OPTIONS"))
          )
        },
        path("health") {
          concat(
            get(complete(HttpEntity(ContentTypes.`application/json`, s"""{"status":"ok","clients":${hub.count()}}"""))),
            complete(methodNotAllowed("GET"))
          )
        },
        complete(error(StatusCodes.NotFound, "not found"))
      )
    }
  }

  def main(args: Array[String]): Unit = {
    implicit val system: ActorSystem = ActorSystem("sse")
    publishToken = env("SSE_PUBLISH_TOKEN").getOrElse {
      val random = new Array[Byte](16)
      new SecureRandom().nextBytes(random)
      val token = random.map("%02x".format(_)).mkString
      system.log.info("publish token: {} (set SSE_PUBLISH_TOKEN to choose your own)", token)
      token
    }
    for (timed <- TIMED_EVENTS) {
      system.scheduler.scheduleAtFixedRate(timed.every, timed.every) { () =>
        val stamp = Timestamp.format(Instant.now())
        val fields = timed.dataJson.stripSuffix("}")
        hub.publish(timed.name, s"""$fields${if (fields == "{") "" else ","}"timestamp":"$stamp"}""")
      }(system.dispatcher)
    }
    val host = env("HOST").getOrElse("0.0.0.0")
    val port = env("PORT").map(_.toInt).getOrElse(DEFAULT_PORT)
    val handler = Route.toFunction(routes)
    // Akka HTTP reads a connection only while it waits for a request: a client that hangs up
    // while its stream runs shows only at the second write after that, and request headers
    // have no time limit (idle-timeout would also end quiet streams). So the server runs its
    // own accept loop: it reads every connection on (its end, once a request is in, is a
    // hang-up) and closes one whose first request has not arrived in 15 s.
    val readOn = BidiFlow.fromFlows(
      Flow[ByteString],
      Flow[ByteString]
        .buffer(4, OverflowStrategy.backpressure)
        .map(Some(_))
        .concat(Source.single(None))
        .map(_.getOrElse(throw HungUp))
    )
    val http = Http().serverLayer().atop(TLSPlacebo()).atop(readOn)
    val binding = Await.result(
      Tcp()
        .bind(host, port)
        .to(Sink.foreach { connection =>
          val started = new AtomicBoolean
          val requests = connection.handleWith(
            Flow[HttpRequest]
              .wireTap(_ => started.set(true))
              .viaMat(KillSwitches.single)(Keep.right)
              .mapAsync(1)(handler)
              .joinMat(http)(Keep.left)
          )
          system.scheduler.scheduleOnce(HEADER_TIMEOUT)(if (!started.get) requests.shutdown())(system.dispatcher)
        })
        .run(),
      10.seconds
    )
    system.log.info("{} listening on http://{}:{}", SERVER_NAME, host, binding.localAddress.getPort)
    // The JVM exits 143 after SIGTERM: end the streams, stop, then exit 0 (Akka's own hook is off
    // in application.conf).
    sys.addShutdownHook {
      hub.close()
      Await.ready(binding.unbind(), 2.seconds)
      Await.ready(system.terminate(), 2.seconds)
      Runtime.getRuntime.halt(0)
    }
  }
}
