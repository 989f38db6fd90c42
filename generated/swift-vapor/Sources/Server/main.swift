// sse-server: a Server-Sent Events server on Vapor 4.
//
// Vapor has no SSE helper: frames are written by hand to a streamed response body.
import Foundation
import Vapor

let serverName = "sse-server"
let defaultPort = 3016
let streamPath = "/events"
let retryMs = 3000
let heartbeatSeconds = 15
let historySize = 100
let maxClients = 10000
let maxQueueBytes = 1 << 20
let maxBodyBytes = 64 << 10
let maxEventName = 64
let maxJSONDepth = 64
// Vapor 4 only notices that a client went away when a write to it fails, so every stream
// gets a one-byte comment line this often: a gone client is forgotten within seconds.
let livenessProbeSeconds = 1
// Each timed event gets one timer for the whole server; data gains a "timestamp".
let timedEvents: [(name: String, everyMs: Int, data: String)] = [
    (name: "clock", everyMs: 1000, data: "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
    (name: "stock-price", everyMs: 2000, data: "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"),
]

func env(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

// Lines go out as they are printed, also when stdout is a pipe.
setvbuf(stdout, nil, _IOLBF, 0)

// Tokens come from the environment only (an empty variable counts as unset).
let streamToken = env("SSE_TOKEN") // nil: the stream is open to anyone
let publishToken: String = env("SSE_PUBLISH_TOKEN") ?? {
    // 128 bits from the system CSPRNG, logged once so the operator can publish.
    var generator = SystemRandomNumberGenerator()
    let token = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    print("publish token: \(token) (set SSE_PUBLISH_TOKEN to choose your own)")
    return token
}()

struct DroppedError: Error {}

extension NSLock {
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A connected stream. Its fields are guarded by the hub's lock.
final class Client: @unchecked Sendable {
    let frames: AsyncStream<ByteBuffer>
    let continuation: AsyncStream<ByteBuffer>.Continuation
    var queuedBytes = 0
    var dropped = false
    var writer: (any AsyncBodyStreamWriter)?

    init() {
        (frames, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
    }
}

/// The hub: the id counter, the history and the set of clients, behind one lock.
final class Hub: @unchecked Sendable {
    private let lock = NSLock()
    private var lastID = 0
    private var history: [(id: Int, frame: ByteBuffer)] = []
    private var clients: [ObjectIdentifier: Client] = [:]
    private var closed = false

    /// Joins the broadcast and queues the replay in one step, so an event published in between
    /// is neither lost nor sent twice. Nil when the server is full or stopping.
    func subscribe(lastEventID: Int?) -> Client? {
        lock.locked {
            guard !closed, clients.count < maxClients else { return nil }
            let client = Client()
            _ = offer(ByteBuffer(string: "retry: \(retryMs)\n\n"), to: client)
            if let after = lastEventID {
                for event in history where event.id > after {
                    _ = offer(event.frame, to: client)
                }
            }
            clients[ObjectIdentifier(client)] = client
            return client
        }
    }

    /// Hands the hub the client's body writer, so a drop can close its connection.
    /// False when the client was dropped before its stream began.
    func attach(_ client: Client, writer: any AsyncBodyStreamWriter) -> Bool {
        lock.locked {
            client.writer = writer
            return !client.dropped
        }
    }

    func sent(_ client: Client, bytes: Int) {
        lock.locked { client.queuedBytes -= bytes }
    }

    func wasDropped(_ client: Client) -> Bool {
        lock.locked { client.dropped }
    }

    func unsubscribe(_ client: Client) {
        lock.locked { _ = clients.removeValue(forKey: ObjectIdentifier(client)) }
    }

    func count() -> Int {
        lock.locked { clients.count }
    }

    /// Assigns the next id, keeps the event and queues it for every client; returns the id.
    func publish(event name: String, data: String) -> Int {
        lock.locked {
            lastID += 1
            let frame = ByteBuffer(string: makeFrame(id: lastID, event: name, data: data))
            history.append((id: lastID, frame: frame))
            if history.count > historySize { history.removeFirst() }
            broadcast(frame)
            return lastID
        }
    }

    /// Sends a comment to every stream (the heartbeat, and the liveness probe).
    func comment(_ text: String) {
        lock.locked { broadcast(ByteBuffer(string: text)) }
    }

    /// Ends every open stream (shutdown).
    func close() {
        lock.locked {
            closed = true
            for client in clients.values { client.continuation.finish() }
            clients.removeAll()
        }
    }

    private func broadcast(_ frame: ByteBuffer) {
        for (id, client) in clients where !offer(frame, to: client) {
            clients.removeValue(forKey: id)
        }
    }

    /// Queues a frame without ever waiting; past maxQueueBytes the client is dropped and its
    /// connection closed (an error on the body makes Vapor close the channel, which also ends
    /// a write stuck on a client that stopped reading).
    private func offer(_ frame: ByteBuffer, to client: Client) -> Bool {
        guard client.queuedBytes + frame.readableBytes <= maxQueueBytes else {
            client.dropped = true
            client.continuation.finish()
            if let writer = client.writer {
                Task { try? await writer.write(.error(DroppedError())) }
            }
            return false
        }
        client.queuedBytes += frame.readableBytes
        client.continuation.yield(frame)
        return true
    }
}

/// One event; every line of data (split on CRLF, CR or LF) gets its own "data: ".
func makeFrame(id: Int, event: String, data: String) -> String {
    let lines = data.replacingOccurrences(of: "\r\n", with: "\n")
        .replacingOccurrences(of: "\r", with: "\n")
        .split(separator: "\n", omittingEmptySubsequences: false)
    return "id: \(id)\nevent: \(event)\n" + lines.map { "data: \($0)\n" }.joined() + "\n"
}

/// "Authorization: Bearer <token>", the scheme in any case.
func bearerToken(_ req: Request) -> String? {
    guard let header = req.headers.first(name: .authorization),
          let space = header.firstIndex(of: " "),
          header[..<space].lowercased() == "bearer" else { return nil }
    return String(header[space...].drop(while: { $0 == " " }))
}

/// Compares every byte whatever the first difference, so timing tells nothing about the token.
func sameToken(_ given: String?, _ want: String) -> Bool {
    guard let given else { return false }
    let a = Array(given.utf8), b = Array(want.utf8)
    var difference: UInt8 = a.count == b.count ? 0 : 1
    for i in 0..<b.count {
        difference |= (i < a.count ? a[i] : 0) ^ b[i]
    }
    return difference == 0
}

/// With SSE_TOKEN set: the token as a Bearer header or as ?token= (either place is enough).
func streamAuthorized(_ req: Request) -> Bool {
    guard let streamToken else { return true }
    return sameToken(bearerToken(req), streamToken) || sameToken(req.query[String.self, at: "token"], streamToken)
}

func publishAuthorized(_ req: Request) -> Bool {
    sameToken(bearerToken(req), publishToken)
}

/// Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, anything else is ignored.
func lastEventID(_ req: Request) -> Int? {
    let value = req.headers.first(name: "Last-Event-ID") ?? req.query[String.self, at: "lastEventId"] ?? ""
    guard (1...1024).contains(value.utf8.count), value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
    // More digits than an Int holds: later than any id this server will send.
    return Int(value) ?? Int.max
}

func jsonResponse(_ status: HTTPStatus, _ body: String, headers: HTTPHeaders = [:]) -> Response {
    var headers = headers
    headers.replaceOrAdd(name: .contentType, value: "application/json")
    return Response(status: status, headers: headers, body: .init(string: body))
}

func errorResponse(_ status: HTTPStatus, _ message: String, headers: HTTPHeaders = [:]) -> Response {
    let body = try! JSONSerialization.data(withJSONObject: ["error": message], options: [.withoutEscapingSlashes])
    return jsonResponse(status, String(decoding: body, as: UTF8.self), headers: headers)
}

func unauthorized() -> Response {
    errorResponse(.unauthorized, "missing or wrong token", headers: ["WWW-Authenticate": "Bearer"])
}

func preflight(_ req: Request) -> Response {
    Response(status: .noContent, headers: [
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control, Content-Type, Authorization",
        "Access-Control-Max-Age": "86400",
    ])
}

/// Replaces Vapor's error middleware: every error is {"error": "..."}, a known path with the
/// wrong method gets 405 with Allow (Vapor's router answers 404), and CORS headers go on every
/// answer, errors included.
struct ContractMiddleware: AsyncMiddleware {
    let allowedMethods: [String: [HTTPMethod]]

    func respond(to req: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response: Response
        if let allowed = allowedMethods[req.url.path], !allowed.contains(req.method) {
            response = errorResponse(.methodNotAllowed, "method not allowed",
                                     headers: ["Allow": allowed.map(\.rawValue).joined(separator: ", ")])
        } else {
            do {
                response = try await next.respond(to: req)
            } catch let abort as any AbortError {
                response = errorResponse(abort.status, abort.status == .notFound ? "not found" : abort.reason)
            } catch {
                req.logger.report(error: error)
                response = errorResponse(.internalServerError, "internal error")
            }
        }
        response.headers.replaceOrAdd(name: .accessControlAllowOrigin, value: "*")
        return response
    }
}

let hub = Hub()

func stream(_ req: Request) async throws -> Response {
    guard streamAuthorized(req) else { return unauthorized() }
    guard let client = hub.subscribe(lastEventID: lastEventID(req)) else {
        return errorResponse(.serviceUnavailable, "too many clients", headers: ["Retry-After": "1"])
    }
    let headers: HTTPHeaders = [
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
    ]
    // Each write is flushed by Vapor as it is made.
    return Response(status: .ok, headers: headers, body: .init(asyncStream: { writer in
        guard hub.attach(client, writer: writer) else {
            try? await writer.write(.error(DroppedError()))
            return
        }
        do {
            for await frame in client.frames {
                try await writer.write(.buffer(frame))
                hub.sent(client, bytes: frame.readableBytes)
            }
        } catch {
            // The client went away: the write failed.
            hub.unsubscribe(client)
            try? await writer.write(.error(error))
            return
        }
        hub.unsubscribe(client)
        // The queue ended: shutdown ends the response, a drop closes the connection.
        try? await writer.write(hub.wasDropped(client) ? .error(DroppedError()) : .end)
    }))
}

/// Checks, in order: token (401), Content-Type (415), size (413), body (400). The body is read
/// as it arrives (the route streams it), so the cap holds for chunked bodies too.
func publish(_ req: Request) async throws -> Response {
    guard publishAuthorized(req) else { return unauthorized() }
    let mediaType = req.headers.first(name: .contentType)?
        .split(separator: ";", maxSplits: 1).first?
        .trimmingCharacters(in: .whitespaces).lowercased()
    guard mediaType == "application/json" else {
        return errorResponse(.unsupportedMediaType, "Content-Type must be application/json")
    }
    let tooLarge = errorResponse(.payloadTooLarge, "body over 64 KiB", headers: ["Connection": "close"])
    if let length = req.headers.first(name: .contentLength).flatMap({ Int($0) }), length > maxBodyBytes {
        return tooLarge
    }
    var body = ByteBuffer()
    for try await chunk in req.body {
        var chunk = chunk
        body.writeBuffer(&chunk)
        if body.readableBytes > maxBodyBytes { return tooLarge }
    }
    switch parsePublish(Data(body.readableBytesView)) {
    case .failure(let problem):
        return errorResponse(.badRequest, problem.message)
    case .success(let (name, data)):
        return jsonResponse(.accepted, "{\"id\":\(hub.publish(event: name, data: data))}")
    }
}

struct PublishProblem: Error {
    let message: String
}

/// {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else
/// as compact JSON.
func parsePublish(_ body: Data) -> Result<(String, String), PublishProblem> {
    guard String(data: body, encoding: .utf8) != nil else {
        return .failure(PublishProblem(message: "body is not valid UTF-8"))
    }
    guard !tooDeep(body) else {
        return .failure(PublishProblem(message: "body nests deeper than 64 levels"))
    }
    guard let parsed = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) else {
        return .failure(PublishProblem(message: "body is not JSON"))
    }
    guard let message = parsed as? [String: Any] else {
        return .failure(PublishProblem(message: "body must be a JSON object"))
    }
    var name = "message"
    if let event = message["event"] {
        guard let event = event as? String else {
            return .failure(PublishProblem(message: "event must be a string"))
        }
        guard !event.isEmpty, event.unicodeScalars.count <= maxEventName,
              !event.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else {
            return .failure(PublishProblem(message: "event must be 1-64 characters without line breaks"))
        }
        name = event
    }
    guard let value = message["data"], !(value is NSNull) else {
        return .success((name, "null"))
    }
    if let text = value as? String {
        return .success((name, text))
    }
    let json = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data()
    return .success((name, String(decoding: json, as: UTF8.self)))
}

/// Whether arrays and objects nest deeper than maxJSONDepth.
func tooDeep(_ body: Data) -> Bool {
    var depth = 0, inString = false, escaped = false
    for byte in body {
        if escaped {
            escaped = false
        } else if inString && byte == UInt8(ascii: "\\") {
            escaped = true
        } else if byte == UInt8(ascii: "\"") {
            inString.toggle()
        } else if inString {
            continue
        } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
            depth += 1
            if depth > maxJSONDepth { return true }
        } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
            depth -= 1
        }
    }
    return false
}

/// The spec's JSON object with "timestamp" spliced in, keeping the spec's key order.
func withTimestamp(_ data: String) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let head = String(data.dropLast())
    return head + (head == "{" ? "" : ",") + "\"timestamp\":\"\(formatter.string(from: Date()))\"}"
}

func every(seconds: Double, _ job: @escaping @Sendable () -> Void) {
    Task.detached {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            job()
        }
    }
}

var environment = try Environment.detect()
try LoggingSystem.bootstrap(from: &environment)
let app = try await Application.make(environment)

let host = env("HOST") ?? "0.0.0.0"
let port = env("PORT").flatMap { Int($0) } ?? defaultPort
app.http.server.configuration.hostname = host
app.http.server.configuration.port = port
app.http.server.configuration.shutdownTimeout = .seconds(4)

app.middleware = Middlewares()
app.middleware.use(ContractMiddleware(allowedMethods: [
    streamPath: [.GET, .OPTIONS],
    "/publish": [.POST, .OPTIONS],
    "/health": [.GET],
]))

let streamRoute = streamPath.split(separator: "/").map { PathComponent(stringLiteral: String($0)) }
app.get(streamRoute, use: stream)
app.on(.OPTIONS, streamRoute, use: preflight)
app.on(.POST, "publish", body: .stream, use: publish)
app.on(.OPTIONS, "publish", use: preflight)
app.get("health") { _ in
    jsonResponse(.ok, "{\"status\":\"ok\",\"clients\":\(hub.count())}")
}

for event in timedEvents {
    every(seconds: Double(event.everyMs) / 1000) { _ = hub.publish(event: event.name, data: withTimestamp(event.data)) }
}
every(seconds: Double(heartbeatSeconds)) { hub.comment(": heartbeat\n\n") }
every(seconds: Double(livenessProbeSeconds)) { hub.comment(":\n") }

// Vapor's serve command stops the server on SIGTERM and SIGINT, but waits for open responses:
// end the streams first.
let signalSources = [SIGTERM, SIGINT].map { signalNumber in
    signal(signalNumber, SIG_IGN) // a dispatch source only sees signals whose default action is off
    let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
    source.setEventHandler { hub.close() }
    source.resume()
    return source
}

do {
    try await app.startup() // boots and starts the server; returns once it listens
    print("\(serverName) listening on http://\(host):\(port)")
    try await app.running?.onStop.get()
    try await app.asyncShutdown()
} catch {
    app.logger.report(error: error)
    try? await app.asyncShutdown()
    exit(1)
}
_ = signalSources
