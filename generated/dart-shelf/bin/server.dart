// sse-server: a Server-Sent Events server on Shelf (dart:io) with shelf_router.
import 'dart:async';
import 'dart:convert';
import 'dart:io';
import 'dart:math';
import 'dart:typed_data';

import 'package:shelf/shelf.dart';
import 'package:shelf/shelf_io.dart' as shelf_io;
import 'package:shelf_router/shelf_router.dart';

const serverName = "sse-server";
const defaultPort = 3015;
const streamPath = "/events";
const retryMs = 3000;
const heartbeatSeconds = 15;
const historySize = 100;
const maxClients = 10000;
const maxQueueBytes = 1 << 20;
const maxBodyBytes = 64 << 10;
const maxEventName = 64;
const maxJsonDepth = 64;

/// Each timed event gets one timer for the whole server; data gains a "timestamp".
const timedEvents = [
  (name: "clock", everyMs: 1000, data: "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
  (name: "stock-price", everyMs: 2000, data: "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"),
];

/// Tokens come from the environment only (an empty variable counts as unset).
String? env(String name) {
  final value = Platform.environment[name];
  return value == null || value.isEmpty ? null : value;
}

final streamToken = env('SSE_TOKEN'); // null: the stream is open to anyone
late final String publishToken;

final hub = Hub();

/// A connected stream. Frames wait in [_queue] (bounded in bytes) until the socket has taken
/// the previous batch: dart:io's own socket buffer would grow without limit.
class Client {
  Socket? _socket;
  final _queue = <List<int>>[];
  int queuedBytes = 0;
  bool _flushing = false;
  bool _closed = false;

  /// Queues a frame without waiting; false when that would pass [maxQueueBytes].
  bool offer(List<int> frame) {
    if (_closed || queuedBytes + frame.length > maxQueueBytes) return false;
    queuedBytes += frame.length;
    _queue.add(frame);
    _pump();
    return true;
  }

  /// Starts writing to the hijacked socket: the response head first, then the queue.
  void attach(Socket socket, List<int> head) {
    if (_closed) {
      socket.destroy();
      return;
    }
    _socket = socket;
    socket.add(head);
    _pump();
  }

  Future<void> _pump() async {
    final socket = _socket;
    if (socket == null || _flushing) return;
    _flushing = true;
    try {
      while (_queue.isNotEmpty && !_closed) {
        final batch = List.of(_queue);
        _queue.clear();
        batch.forEach(socket.add);
        // Completes once the operating system has taken the bytes: a client that stops
        // reading keeps its frames counted in queuedBytes.
        await socket.flush();
        for (final frame in batch) {
          queuedBytes -= frame.length;
        }
      }
    } catch (_) {
      hub.unsubscribe(this);
    } finally {
      _flushing = false;
    }
  }

  /// Closes the connection (shutdown, dropped, or the client went away).
  void close() {
    if (_closed) return;
    _closed = true;
    _socket?.destroy();
  }
}

/// The hub: the id counter, the history and the set of clients. Dart runs this isolate's code
/// one event at a time, so each method is atomic without a lock.
class Hub {
  int _lastId = 0;
  final _history = <({int id, List<int> frame})>[];
  final _clients = <Client>{};
  bool _closed = false;

  /// Joins the broadcast and queues the replay in one step. Null when full or stopping.
  Client? subscribe(int? lastEventId) {
    if (_closed || _clients.length >= maxClients) return null;
    final client = Client();
    client.offer(utf8.encode('retry: $retryMs\n\n'));
    if (lastEventId != null) {
      for (final event in _history) {
        if (event.id > lastEventId) client.offer(event.frame);
      }
    }
    _clients.add(client);
    return client;
  }

  void unsubscribe(Client client) {
    _clients.remove(client);
    client.close();
  }

  int count() => _clients.length;

  /// Assigns the next id, keeps the event and queues it for every client; returns the id.
  int publish(String name, String data) {
    final id = ++_lastId;
    final f = frame(id, name, data);
    _history.add((id: id, frame: f));
    if (_history.length > historySize) _history.removeAt(0);
    _broadcast(f);
    return id;
  }

  void comment(String text) => _broadcast(utf8.encode(text));

  /// Ends every open stream (shutdown).
  void close() {
    _closed = true;
    for (final client in _clients) {
      client.close();
    }
    _clients.clear();
  }

  /// A client whose queue is full is dropped and its connection closed.
  void _broadcast(List<int> frame) {
    for (final client in _clients.where((c) => !c.offer(frame)).toList()) {
      unsubscribe(client);
    }
  }
}

/// One event; every line of data (split on CRLF, CR or LF) gets its own "data: ".
Uint8List frame(int id, String name, String data) {
  final out = StringBuffer('id: $id\nevent: $name\n');
  for (final line in data.split(RegExp('\r\n|\r|\n'))) {
    out.write('data: $line\n');
  }
  out.write('\n');
  return utf8.encode(out.toString());
}

/// "Authorization: Bearer <token>", the scheme in any case.
String? bearerToken(Request request) {
  final header = request.headers['authorization'];
  if (header == null) return null;
  final space = header.indexOf(' ');
  if (space < 0 || header.substring(0, space).toLowerCase() != 'bearer') return null;
  return header.substring(space + 1).trimLeft();
}

/// Compares every byte whatever the first difference, so timing tells nothing about the token.
bool sameToken(String? given, String want) {
  if (given == null) return false;
  final a = utf8.encode(given), b = utf8.encode(want);
  var difference = a.length == b.length ? 0 : 1;
  for (var i = 0; i < b.length; i++) {
    difference |= (i < a.length ? a[i] : 0) ^ b[i];
  }
  return difference == 0;
}

/// The first value of a query parameter; null when absent or not decodable.
String? queryParameter(Request request, String name) {
  try {
    return request.url.queryParametersAll[name]?.first;
  } on FormatException {
    return null;
  } on ArgumentError {
    return null;
  }
}

/// With SSE_TOKEN set: the token as a Bearer header or as ?token= (either place is enough).
bool streamAuthorized(Request request) {
  final token = streamToken;
  if (token == null) return true;
  return sameToken(bearerToken(request), token) || sameToken(queryParameter(request, 'token'), token);
}

bool publishAuthorized(Request request) => sameToken(bearerToken(request), publishToken);

/// Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, anything else is ignored.
int? lastEventId(Request request) {
  final value = request.headers['last-event-id'] ?? queryParameter(request, 'lastEventId');
  if (value == null || !RegExp(r'^[0-9]{1,1024}$').hasMatch(value)) return null;
  // More digits than an int holds: later than any id this server will send.
  return int.tryParse(value) ?? (1 << 62);
}

/// CORS headers for this request's origin; every response carries them, errors included.
Map<String, String> corsHeaders(Request request) {
  return {'access-control-allow-origin': '*'};
}

Response jsonResponse(int status, Object body, [Map<String, String> headers = const {}]) =>
    Response(status, body: jsonEncode(body), headers: {...headers, 'content-type': 'application/json'});

Response errorResponse(int status, String message, [Map<String, String> headers = const {}]) =>
    jsonResponse(status, {'error': message}, headers);

Response unauthorized() => errorResponse(401, 'missing or wrong token', {'www-authenticate': 'Bearer'});

Response preflight(Request request) => Response(204, headers: {
      'access-control-allow-methods': 'GET, POST, OPTIONS',
      'access-control-allow-headers': 'Last-Event-ID, Cache-Control, Content-Type, Authorization',
      'access-control-max-age': '86400',
    });

Handler methodNotAllowed(String allow) =>
    (Request request) => errorResponse(405, 'method not allowed', {'allow': allow});

/// The stream takes over the socket (Shelf's hijack): dart:io never tells a streamed
/// response that its client went away, but the socket's own stream ends when it does.
Response stream(Request request) {
  if (!streamAuthorized(request)) return unauthorized();
  final client = hub.subscribe(lastEventId(request));
  if (client == null) return errorResponse(503, 'too many clients', {'retry-after': '1'});
  final head = StringBuffer('HTTP/1.1 200 OK\r\n')
    ..write('content-type: text/event-stream; charset=utf-8\r\n')
    ..write('cache-control: no-store\r\n')
    ..write('x-accel-buffering: no\r\n')
    // The body runs until the connection closes: no length, no chunked framing.
    ..write('connection: close\r\n');
  corsHeaders(request).forEach((name, value) => head.write('$name: $value\r\n'));
  head.write('\r\n');
  request.hijack((channel) {
    // shelf_io hands over the dart:io Socket itself as the channel's sink.
    final socket = channel.sink as Socket;
    channel.stream.listen((_) {}, onDone: () => hub.unsubscribe(client), onError: (_) => hub.unsubscribe(client), cancelOnError: true);
    client.attach(socket, utf8.encode(head.toString()));
  });
}

/// Checks, in order: token (401), Content-Type (415), size (413), body (400).
Future<Response> publish(Request request) async {
  if (!publishAuthorized(request)) return unauthorized();
  final mediaType = request.headers['content-type']?.split(';').first.trim().toLowerCase();
  if (mediaType != 'application/json') {
    return errorResponse(415, 'Content-Type must be application/json');
  }
  // The rest of a refused body is not read: close the connection rather than drain it.
  final tooLarge = errorResponse(413, 'body over 64 KiB', {'connection': 'close'});
  final length = request.contentLength;
  if (length != null && length > maxBodyBytes) return tooLarge;
  // Chunked bodies have no length up front: count as they arrive, stop past the cap.
  final body = BytesBuilder(copy: false);
  await for (final chunk in request.read()) {
    body.add(chunk);
    if (body.length > maxBodyBytes) return tooLarge;
  }
  final (name, data, problem) = parsePublish(body.takeBytes());
  if (problem != null) return errorResponse(400, problem);
  return jsonResponse(202, {'id': hub.publish(name, data)});
}

/// {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else
/// as compact JSON.
(String, String, String?) parsePublish(List<int> body) {
  final String text;
  try {
    text = utf8.decode(body);
  } on FormatException {
    return ('', '', 'body is not valid UTF-8');
  }
  if (tooDeep(text)) return ('', '', 'body nests deeper than 64 levels');
  final Object? message;
  try {
    message = jsonDecode(text);
  } on FormatException {
    return ('', '', 'body is not JSON');
  }
  if (message is! Map<String, dynamic>) return ('', '', 'body must be a JSON object');
  var name = 'message';
  if (message.containsKey('event')) {
    final event = message['event'];
    if (event is! String) return ('', '', 'event must be a string');
    if (event.isEmpty || event.runes.length > maxEventName || event.contains(RegExp('[\r\n]'))) {
      return ('', '', 'event must be 1-64 characters without line breaks');
    }
    name = event;
  }
  final data = message['data'];
  return (name, data is String ? data : jsonEncode(data), null);
}

/// Whether arrays and objects nest deeper than [maxJsonDepth].
bool tooDeep(String body) {
  var depth = 0;
  var inString = false, escaped = false;
  for (final c in body.codeUnits) {
    if (escaped) {
      escaped = false;
    } else if (inString && c == 0x5c) {
      escaped = true;
    } else if (c == 0x22) {
      inString = !inString;
    } else if (inString) {
      continue;
    } else if (c == 0x7b || c == 0x5b) {
      if (++depth > maxJsonDepth) return true;
    } else if (c == 0x7d || c == 0x5d) {
      depth--;
    }
  }
  return false;
}

/// The spec's JSON object with "timestamp" (ISO-8601 UTC, milliseconds) spliced in before its
/// closing brace: its text is not parsed, and keeps the spec's key order.
String withTimestamp(String dataJson) {
  final now = DateTime.now().toUtc().toIso8601String();
  final head = dataJson == '{}' ? '{' : '${dataJson.substring(0, dataJson.length - 1)},';
  return '$head"timestamp":"${now.substring(0, 23)}Z"}';
}

Future<void> main() async {
  publishToken = env('SSE_PUBLISH_TOKEN') ?? () {
    final random = Random.secure();
    final token = List.generate(16, (_) => random.nextInt(256).toRadixString(16).padLeft(2, '0')).join();
    print('publish token: $token (set SSE_PUBLISH_TOKEN to choose your own)');
    return token;
  }();

  // Known paths answer other methods with 405 (routes match in the order they are added).
  final router = Router(notFoundHandler: (Request request) => errorResponse(404, 'not found'))
    ..get(streamPath, stream)
    ..options(streamPath, preflight)
    ..all(streamPath, methodNotAllowed('GET, OPTIONS'))
    ..post('/publish', publish)
    ..options('/publish', preflight)
    ..all('/publish', methodNotAllowed('POST, OPTIONS'))
    ..get('/health', (Request request) => jsonResponse(200, {'status': 'ok', 'clients': hub.count()}))
    ..all('/health', methodNotAllowed('GET'));

  final handler = const Pipeline().addMiddleware((inner) => (request) async {
        final response = await inner(request);
        return response.change(headers: corsHeaders(request));
      }).addHandler(router.call);

  final host = env('HOST') ?? '0.0.0.0';
  final port = int.tryParse(env('PORT') ?? '') ?? defaultPort;
  final server = await shelf_io.serve(handler, host, port, poweredByHeader: null);
  // dart:io counts a connection still sending its request headers as idle: it is closed
  // within one to two idle periods (7-14 s). Streams are hijacked, so this never cuts them.
  server.idleTimeout = const Duration(seconds: 7);
  print('$serverName listening on http://$host:$port');

  for (final event in timedEvents) {
    Timer.periodic(Duration(milliseconds: event.everyMs), (_) => hub.publish(event.name, withTimestamp(event.data)));
  }
  Timer.periodic(const Duration(seconds: heartbeatSeconds), (_) => hub.comment(': heartbeat\n\n'));

  for (final signal in [ProcessSignal.sigterm, ProcessSignal.sigint]) {
    signal.watch().listen((_) async {
      hub.close();
      await server.close(force: true);
      exit(0);
    });
  }
}
