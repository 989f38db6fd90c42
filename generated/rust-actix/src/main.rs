//! sse-server: a Server-Sent Events server on Actix Web 4.

use std::{
    collections::{HashMap, VecDeque},
    env,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer, Responder,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::{Next, from_fn},
    rt, web,
};
use actix_web_lab::sse;
use chrono::{SecondsFormat, Utc};
use futures_util::{Stream, StreamExt as _, stream};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time};
use tokio_stream::wrappers::{IntervalStream, UnboundedReceiverStream};
use tokio_util::sync::CancellationToken;

const SERVER_NAME: &str = "sse-server";
const DEFAULT_PORT: u16 = 3007;
const STREAM_PATH: &str = "/events";
const RETRY_MS: u64 = 3000;
const HEARTBEAT_SECONDS: u64 = 15;
const HISTORY_SIZE: usize = 100;
const MAX_CLIENTS: usize = 10000;
/// A client with more than this many bytes of frames waiting is dropped.
const MAX_QUEUE_BYTES: usize = 1 << 20;
const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_EVENT_NAME: usize = 64;
const MAX_JSON_DEPTH: usize = 64;
/// Unacknowledged data (or a zero window) older than this makes the kernel reset the connection.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(5);

struct TimedEvent {
    name: &'static str,
    every_ms: u64,
    /// a JSON object, keys in the spec's order; each event adds a "timestamp"
    data: &'static str,
}

/// One timer per event for the whole server.
const TIMED_EVENTS: &[TimedEvent] = &[
    TimedEvent {
        name: "clock",
        every_ms: 1000,
        data: "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}",
    },
    TimedEvent {
        name: "stock-price",
        every_ms: 2000,
        data: "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}",
    },
];

/// Ids, history and the clients' queues, shared by every worker.
struct Hub {
    state: Mutex<State>,
    stream_token: Option<String>,
    publish_token: String,
    shutdown: CancellationToken,
}

struct State {
    last_id: u64,
    history: VecDeque<(u64, sse::Data)>,
    next_client: u64,
    clients: HashMap<u64, Client>,
}

/// The sending half of one stream's queue.
struct Client {
    queue: mpsc::UnboundedSender<(sse::Data, usize)>,
    /// bytes of frames waiting in `queue`
    queued: Arc<AtomicUsize>,
}

impl Client {
    /// Never waits: false when the queue would pass MAX_QUEUE_BYTES (or its stream is gone).
    fn offer(&self, frame: &sse::Data, size: usize) -> bool {
        self.queued.fetch_add(size, Ordering::Relaxed) + size <= MAX_QUEUE_BYTES
            && self.queue.send((frame.clone(), size)).is_ok()
    }
}

/// Frees the client's slot when Actix drops its response: the client left, or was dropped.
struct Subscription {
    hub: web::Data<Hub>,
    client: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.client);
    }
}

impl Hub {
    fn new(stream_token: Option<String>, publish_token: String) -> Self {
        Self {
            state: Mutex::new(State {
                last_id: 0,
                history: VecDeque::with_capacity(HISTORY_SIZE),
                next_client: 0,
                clients: HashMap::new(),
            }),
            stream_token,
            publish_token,
            shutdown: CancellationToken::new(),
        }
    }

    fn count(&self) -> usize {
        self.state.lock().unwrap().clients.len()
    }

    fn publish(&self, event: &str, data: String) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.last_id += 1;
        let id = state.last_id;
        let (frame, size) = frame(id, event, data);
        if state.history.len() == HISTORY_SIZE {
            state.history.pop_front();
        }
        state.history.push_back((id, frame.clone()));
        // A client that cannot take the event is too slow: dropping its sender ends its
        // stream (and main's TCP_USER_TIMEOUT closes a connection nobody reads).
        state.clients.retain(|_, client| client.offer(&frame, size));
        id
    }

    /// The events after `last_event_id` and a queue for the live ones, taken under one lock
    /// so that nothing published in between is lost or sent twice. `None` when full.
    fn subscribe(
        hub: &web::Data<Hub>,
        last_event_id: Option<u64>,
    ) -> Option<(Vec<sse::Data>, impl Stream<Item = sse::Data> + use<>)> {
        let mut state = hub.state.lock().unwrap();
        if state.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let replay = match last_event_id {
            Some(last) => state
                .history
                .iter()
                .filter(|(id, _)| *id > last)
                .map(|(_, frame)| frame.clone())
                .collect(),
            None => Vec::new(),
        };
        let (queue, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        state.next_client += 1;
        let client = state.next_client;
        state.clients.insert(
            client,
            Client {
                queue,
                queued: queued.clone(),
            },
        );
        let subscription = Subscription {
            hub: hub.clone(),
            client,
        };
        let live = UnboundedReceiverStream::new(rx).map(move |(frame, size)| {
            let _ = &subscription;
            queued.fetch_sub(size, Ordering::Relaxed);
            frame
        });
        Some((replay, live))
    }

    fn unsubscribe(&self, client: u64) {
        self.state.lock().unwrap().clients.remove(&client);
    }
}

/// One event and its size on the wire; actix-web-lab writes a `data:` line per line of data
/// (CRLF, CR and LF all split).
fn frame(id: u64, event: &str, data: String) -> (sse::Data, usize) {
    let size = data.len() + event.len() + 40;
    let frame = sse::Data::new(data)
        .id(id.to_string())
        .event(event.to_owned());
    (frame, size)
}

async fn stream_events(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    if !stream_authorized(&req, &hub) {
        return unauthorized();
    }
    let Some((replay, live)) = Hub::subscribe(&hub, last_event_id(&req)) else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(json!({ "error": "too many clients" }));
    };

    let first = replay.into_iter().map(sse::Event::Data);
    // `live` ends when the hub drops this client for falling behind; the error that follows
    // makes Actix close the connection instead of ending the response politely.
    let events = stream::iter(first)
        .chain(live.map(sse::Event::Data))
        .map(Ok)
        .chain(stream::once(async { Err("client too slow, dropped") }));
    // Not Sse::with_keep_alive: that writes `: keep-alive`, starting at once. The write
    // also reveals a client that vanished without closing its connection.
    let period = Duration::from_secs(HEARTBEAT_SECONDS);
    let heartbeat = IntervalStream::new(time::interval_at(time::Instant::now() + period, period))
        .map(|_| Ok(sse::Event::Comment("heartbeat".into())));
    let events = stream::select(events, heartbeat);
    let events = events.take_until(hub.shutdown.clone().cancelled_owned());

    let sse = sse::Sse::from_stream(events).with_retry_duration(Duration::from_millis(RETRY_MS));
    let mut res = sse.respond_to(&req);
    // Sse sends `Content-Encoding: identity` (to keep a Compress middleware away) and
    // `no-cache`; this server has no compression and wants no caching proxy to buffer.
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    res
}

/// Checks in the contract's order: token (401), Content-Type (415), size (413), body (400).
async fn publish(req: HttpRequest, mut body: web::Payload, hub: web::Data<Hub>) -> HttpResponse {
    if !publish_authorized(&req, &hub) {
        return unauthorized();
    }
    let media_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return HttpResponse::UnsupportedMediaType()
            .json(json!({ "error": "Content-Type must be application/json" }));
    }
    let too_large = || HttpResponse::PayloadTooLarge().json(json!({ "error": "body over 64 KiB" }));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    // web::Payload, not web::Bytes: the checks above come first, and a chunked body is
    // refused as soon as it passes the cap. Actix closes a connection whose body is unread.
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return bad_request("cannot read body");
        };
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return too_large();
        }
        bytes.extend_from_slice(&chunk);
    }
    match parse_publish(&bytes) {
        Ok((event, data)) => {
            HttpResponse::Accepted().json(json!({ "id": hub.publish(&event, data) }))
        }
        Err(problem) => bad_request(problem),
    }
}

/// `{"event": "<name>", "data": <any JSON>}`: a string data is sent as its text, anything
/// else as compact JSON.
fn parse_publish(body: &[u8]) -> Result<(String, String), &'static str> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err("body is not valid UTF-8");
    };
    if json_depth(text) > MAX_JSON_DEPTH {
        return Err("body is nested deeper than 64 levels");
    }
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err("body is not JSON");
    };
    let Value::Object(mut message) = value else {
        return Err("body must be a JSON object");
    };
    let event = match message.remove("event") {
        None => "message".to_owned(),
        Some(Value::String(name))
            if !name.is_empty()
                && name.chars().count() <= MAX_EVENT_NAME
                && !name.contains(['\r', '\n']) =>
        {
            name
        }
        Some(_) => return Err("event must be a string of 1-64 characters without line breaks"),
    };
    let data = match message.remove("data") {
        Some(Value::String(text)) => text,
        Some(value) => value.to_string(),
        None => "null".to_owned(),
    };
    Ok((event, data))
}

/// The deepest nesting of `[` and `{` outside strings (serde_json's own limit is 128).
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    deepest
}

async fn health(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "clients": hub.count() }))
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Last-Event-ID, Cache-Control, Content-Type, Authorization",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": "not found" }))
}

/// A resource's default service: its methods in `Allow`, a JSON body.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, allow))
            .json(json!({ "error": "method not allowed" }))
    })
}

/// CORS headers on every response, 404 and 405 included.
async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> actix_web::Result<ServiceResponse<impl MessageBody>> {
    let mut res = next.call(req).await?;
    res.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(res)
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
        .json(json!({ "error": "unauthorized" }))
}

fn bad_request(problem: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": problem }))
}

/// `Authorization: Bearer <token>` (the scheme in any case) or `?token=<token>`; either is enough.
fn stream_authorized(req: &HttpRequest, hub: &Hub) -> bool {
    let Some(token) = &hub.stream_token else {
        return true;
    };
    bearer(req).is_some_and(|given| same(given, token.as_bytes()))
        | query_param(req, "token").is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
}

fn publish_authorized(req: &HttpRequest, hub: &Hub) -> bool {
    bearer(req).is_some_and(|given| same(given, hub.publish_token.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header, the scheme in any case.
fn bearer(req: &HttpRequest) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    let token = rest.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"bearer") && token.len() < rest.len()).then_some(token)
}

/// Compares in constant time for a given length.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string()).ok()?;
    query
        .into_inner()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// `Last-Event-ID` (or `?lastEventId=`) when it is 1-1024 ASCII digits.
fn last_event_id(req: &HttpRequest) -> Option<u64> {
    let value = match req.headers().get("last-event-id") {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => query_param(req, "lastEventId")?,
    };
    let digits = (1..=1024).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit());
    // More digits than a u64 holds: newer than anything kept, so nothing to replay.
    digits.then(|| value.parse().unwrap_or(u64::MAX))
}

async fn timed_event(hub: web::Data<Hub>, event: &'static TimedEvent) {
    // The time goes in as the last field, by text: the spec reserves "timestamp".
    let fields = event
        .data
        .strip_suffix('}')
        .expect("event data is a JSON object");
    let separator = if fields == "{" { "" } else { "," };
    let mut timer = time::interval(Duration::from_millis(event.every_ms));
    timer.tick().await; // the first tick is immediate
    loop {
        timer.tick().await;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let data = format!(r#"{fields}{separator}"timestamp":"{now}"}}"#);
        hub.publish(event.name, data);
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// An environment variable, an empty one counting as unset.
fn env_var(key: &str) -> Option<String> {
    env::var(key).ok().filter(|value| !value.is_empty())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let host = env_var("HOST").unwrap_or_else(|| "0.0.0.0".to_owned());
    let port = match env_var("PORT") {
        Some(port) => port.parse().expect("PORT must be a port number"),
        None => DEFAULT_PORT,
    };
    let stream_token = env_var("SSE_TOKEN");
    let publish_token = env_var("SSE_PUBLISH_TOKEN").unwrap_or_else(|| {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("no random numbers from the OS");
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("publish token: {token} (set SSE_PUBLISH_TOKEN to choose your own)");
        token
    });
    let hub = web::Data::new(Hub::new(stream_token, publish_token));
    for event in TIMED_EVENTS {
        rt::spawn(timed_event(hub.clone(), event));
    }

    let app_hub = hub.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_hub.clone())
            .wrap(from_fn(cors))
            .service(
                web::resource(STREAM_PATH)
                    .route(web::get().to(stream_events))
                    .route(web::method(Method::OPTIONS).to(preflight))
                    .default_service(method_not_allowed("GET, OPTIONS")),
            )
            .service(
                web::resource("/publish")
                    .route(web::post().to(publish))
                    .route(web::method(Method::OPTIONS).to(preflight))
                    .default_service(method_not_allowed("POST, OPTIONS")),
            )
            .service(
                web::resource("/health")
                    .route(web::get().to(health))
                    .default_service(method_not_allowed("GET")),
            )
            .default_service(web::to(not_found))
    })
    // Actix stops polling a response body while the socket does not drain and has no write
    // timeout, so a client that stops reading would keep its connection (and fd) forever:
    // the kernel resets a connection whose data stays unacknowledged this long.
    .on_connect(|conn, _| {
        if let Some(tcp) = conn.downcast_ref::<rt::net::TcpStream>() {
            let _ = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
        }
    })
    // Request headers not complete in this time (the contract allows 15 s): 408 and the
    // connection is closed.
    .client_request_timeout(Duration::from_secs(10))
    // Actix's own signal handling would wait for open streams until shutdown_timeout:
    // take the signal here, end every stream, then stop.
    .disable_signals()
    .shutdown_timeout(3)
    // By default a client's EOF is not a disconnect (HTTP/1 half-close); for a stream it is.
    .h1_allow_half_closed(false)
    .bind((host.as_str(), port))?
    .run();
    println!("{SERVER_NAME} listening on http://{host}:{port}");

    let handle = server.handle();
    rt::spawn(async move {
        shutdown_signal().await;
        hub.shutdown.cancel();
        handle.stop(true).await;
    });
    server.await
}
