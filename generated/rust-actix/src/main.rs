//! sse-server: a Server-Sent Events server on Actix Web 4.

use std::{
    collections::VecDeque,
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
use serde_json::{Map, Value, json};
use tokio::{
    sync::mpsc,
    time::{self, Instant},
};
use tokio_stream::wrappers::{IntervalStream, ReceiverStream};
use tokio_util::sync::CancellationToken;

const NAME: &str = "sse-server";
const DEFAULT_PORT: u16 = 3007;
const STREAM_PATH: &str = "/events";
const RETRY_MS: u64 = 3000;
const HEARTBEAT_SECS: u64 = 15;
const HISTORY: usize = 100;
const MAX_CLIENTS: usize = 10000;
/// A client that falls this many events (or bytes of data) behind is dropped.
const QUEUE: usize = 256;
const QUEUE_BYTES: usize = 1 << 20;
const MAX_PUBLISH: usize = 64 * 1024;
const MAX_EVENT_NAME: usize = 64;
/// `SSE_TOKEN` from the environment takes precedence.
const STREAM_TOKEN: Option<&str> = None;
const PUBLISH_TOKEN: Option<&str> = None;

struct TimedEvent {
    name: &'static str,
    every_ms: u64,
    /// a JSON object; each event adds a "timestamp"
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
    shutdown: CancellationToken,
}

struct State {
    last_id: u64,
    history: VecDeque<(u64, sse::Data)>,
    clients: Vec<Client>,
}

/// The sending half of one stream's queue.
struct Client {
    queue: mpsc::Sender<(sse::Data, usize)>,
    /// bytes of data waiting in `queue`
    queued: Arc<AtomicUsize>,
}

impl Client {
    /// Never waits: false when the queue is full (or its stream is gone).
    fn offer(&self, message: &sse::Data, size: usize) -> bool {
        self.queued.fetch_add(size, Ordering::Relaxed) + size <= QUEUE_BYTES
            && self.queue.try_send((message.clone(), size)).is_ok()
    }
}

impl Hub {
    fn new(stream_token: Option<String>) -> Self {
        let history = VecDeque::with_capacity(HISTORY);
        Self {
            state: Mutex::new(State {
                last_id: 0,
                history,
                clients: Vec::new(),
            }),
            stream_token,
            shutdown: CancellationToken::new(),
        }
    }

    /// Open streams: Actix drops a stream, and so its receiver, when its client goes away.
    fn clients(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        state.clients.retain(|client| !client.queue.is_closed());
        state.clients.len()
    }

    fn publish(&self, event: &str, data: String) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.last_id += 1;
        let id = state.last_id;
        let size = data.len();
        let message = sse::Data::new(data)
            .id(id.to_string())
            .event(event.to_owned());
        if HISTORY > 0 {
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back((id, message.clone()));
        }
        // A client that cannot take the event is too slow: dropping its sender ends its stream.
        state.clients.retain(|client| client.offer(&message, size));
        id
    }

    /// The events after `last_id` and a queue for the live ones, taken under one lock so
    /// that nothing published in between is lost or sent twice. `None` when full.
    fn subscribe(
        &self,
        last_id: Option<u64>,
    ) -> Option<(Vec<sse::Data>, impl Stream<Item = sse::Data> + use<>)> {
        let mut state = self.state.lock().unwrap();
        state.clients.retain(|client| !client.queue.is_closed());
        if state.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let replay = match last_id {
            Some(last) => state
                .history
                .iter()
                .filter(|(id, _)| *id > last)
                .map(|(_, m)| m.clone())
                .collect(),
            None => Vec::new(),
        };
        let (queue, rx) = mpsc::channel(QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        state.clients.push(Client {
            queue,
            queued: queued.clone(),
        });
        let live = ReceiverStream::new(rx).map(move |(message, size)| {
            queued.fetch_sub(size, Ordering::Relaxed);
            message
        });
        Some((replay, live))
    }
}

async fn stream_events(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    if let Some(token) = &hub.stream_token {
        let query = query_param(&req, "token");
        if !bearer(&req, token) && !query.is_some_and(|q| same(q.as_bytes(), token.as_bytes())) {
            return unauthorized();
        }
    }
    let Some((replay, live)) = hub.subscribe(last_event_id(&req)) else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(json!({ "error": "too many clients" }));
    };

    let hello = (RETRY_MS == 0).then(|| sse::Event::Comment("connected".into()));
    let first = hello
        .into_iter()
        .chain(replay.into_iter().map(sse::Event::Data));
    // `live` ends when the hub drops this client for falling behind; the error that follows
    // makes Actix close the connection instead of ending the response politely.
    let events = stream::iter(first)
        .chain(live.map(sse::Event::Data))
        .map(Ok)
        .chain(stream::once(async { Err("client too slow, dropped") }));
    let heartbeat = if HEARTBEAT_SECS > 0 {
        // Not Sse::with_keep_alive: that writes `: keep-alive`, starting at once. The write
        // also reveals a client that vanished without closing its connection.
        let period = Duration::from_secs(HEARTBEAT_SECS);
        let ticks = IntervalStream::new(time::interval_at(Instant::now() + period, period));
        ticks
            .map(|_| Ok(sse::Event::Comment("heartbeat".into())))
            .left_stream()
    } else {
        stream::pending().right_stream()
    };
    let events =
        stream::select(events, heartbeat).take_until(hub.shutdown.clone().cancelled_owned());

    let mut sse = sse::Sse::from_stream(events);
    if RETRY_MS > 0 {
        sse = sse.with_retry_duration(Duration::from_millis(RETRY_MS));
    }
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

async fn publish(req: HttpRequest, body: web::Bytes, hub: web::Data<Hub>) -> HttpResponse {
    if let Some(token) = PUBLISH_TOKEN
        && !bearer(&req, token)
    {
        return unauthorized();
    }
    match parse_publish(&body) {
        Ok((event, data)) => {
            HttpResponse::Accepted().json(json!({ "id": hub.publish(&event, data) }))
        }
        Err(error) => HttpResponse::BadRequest().json(json!({ "error": error })),
    }
}

/// `{"event": "<name>", "data": <any JSON>}`: a string data is sent as its text, anything
/// else as compact JSON.
fn parse_publish(body: &[u8]) -> Result<(String, String), &'static str> {
    let Ok(Value::Object(mut message)) = serde_json::from_slice(body) else {
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

async fn health(hub: web::Data<Hub>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "clients": hub.clients() }))
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

fn bearer(req: &HttpRequest, token: &str) -> bool {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    header
        .and_then(|h| h.strip_prefix(b"Bearer "))
        .is_some_and(|t| same(t, token.as_bytes()))
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
    let mut data: Map<String, Value> =
        serde_json::from_str(event.data).expect("event data is a JSON object");
    let mut timer = time::interval(Duration::from_millis(event.every_ms));
    timer.tick().await; // the first tick is immediate
    loop {
        timer.tick().await;
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        data.insert("timestamp".to_owned(), Value::String(now));
        hub.publish(event.name, Value::Object(data.clone()).to_string());
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

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let host = env::var("HOST").unwrap_or_else(|_| "0.0.0.0".to_owned());
    let port = match env::var("PORT") {
        Ok(port) => port.parse().expect("PORT must be a port number"),
        Err(_) => DEFAULT_PORT,
    };
    let stream_token = env::var("SSE_TOKEN").ok().filter(|t| !t.is_empty());
    let hub = web::Data::new(Hub::new(stream_token.or(STREAM_TOKEN.map(str::to_owned))));
    for event in TIMED_EVENTS {
        rt::spawn(timed_event(hub.clone(), event));
    }

    let app_hub = hub.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_hub.clone())
            .app_data(web::PayloadConfig::new(MAX_PUBLISH)) // larger bodies get 413
            .wrap(from_fn(cors))
            // A resource answers other methods with 405 and an Allow header.
            .service(
                web::resource(STREAM_PATH)
                    .route(web::get().to(stream_events))
                    .route(web::method(Method::OPTIONS).to(preflight)),
            )
            .service(
                web::resource("/publish")
                    .route(web::post().to(publish))
                    .route(web::method(Method::OPTIONS).to(preflight)),
            )
            .service(web::resource("/health").route(web::get().to(health)))
            .default_service(web::to(not_found))
    })
    // Actix's own signal handling would wait for open streams until shutdown_timeout:
    // take the signal here, end every stream, then stop.
    .disable_signals()
    .shutdown_timeout(3)
    // By default a client's EOF is not a disconnect (HTTP/1 half-close); for a stream it is.
    .h1_allow_half_closed(false)
    .bind((host.as_str(), port))?
    .run();
    println!("{NAME} listening on http://{host}:{port}");

    let handle = server.handle();
    rt::spawn(async move {
        shutdown_signal().await;
        hub.shutdown.cancel();
        handle.stop(true).await;
    });
    server.await
}
