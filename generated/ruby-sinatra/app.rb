# frozen_string_literal: true

# sse-server: a Server-Sent Events server, Sinatra on Puma.
require "json"
require "securerandom"
require "set"
require "socket"
require "sinatra/base"
require "puma"
require "puma/server"

$stdout.sync = true

SERVER_NAME = "sse-server"
DEFAULT_PORT = 3009
STREAM_PATH = "/events"
RETRY_MS = 3000
HEARTBEAT_SECONDS = 15
HISTORY_SIZE = 100
MAX_CLIENTS = 10000
# A client with more than this many bytes of frames waiting is dropped.
MAX_QUEUE_BYTES = 1024 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_EVENT_NAME = 64
MAX_JSON_DEPTH = 64
# Each adds a "timestamp" to its data.
TIMED_EVENTS = [
  {
    name: "clock",
    every_ms: 1000,
    data: {
      "source" => "server-clock",
      "timezone" => "UTC",
    },
  },
  {
    name: "stock-price",
    every_ms: 2000,
    data: {
      "symbol" => "ACME",
      "price" => 128.42,
      "currency" => "USD",
      "exchange" => "NASDAQ",
    },
  },
].freeze
ALLOWED_METHODS = {
  STREAM_PATH => "GET, OPTIONS",
  "/publish" => "POST, OPTIONS",
  "/health" => "GET",
}.freeze

# Request headers not complete in this many seconds: the connection is closed.
HEADER_TIMEOUT = 10

# An environment variable; an empty one counts as unset.
def env_var(key)
  value = ENV.fetch(key, "")
  value.empty? ? nil : value
end

# Every open stream holds one Puma thread until it ends: the thread pool is sized from this
# cap, plus a few threads for /health, /publish and the 503 answers at the cap.
MAX_STREAMS = [MAX_CLIENTS, Integer(env_var("SSE_MAX_STREAMS") || MAX_CLIENTS)].min
SPARE_THREADS = 8

STREAM_TOKEN = env_var("SSE_TOKEN")
# A random publish token (128 bits, hex), logged once: SSE_PUBLISH_TOKEN is not set.
def new_publish_token
  SecureRandom.hex(16).tap { |token| puts "publish token: #{token} (set SSE_PUBLISH_TOKEN to choose your own)" }
end

PUBLISH_TOKEN = env_var("SSE_PUBLISH_TOKEN") || new_publish_token

# Limits Puma 5.6 lacks, added to its connection class (Puma::Client, pinned at 5.6.5).
module PumaLimits
  TOO_LARGE = "sse.body_too_large"

  # Puma restarts a connection's timeout whenever more bytes arrive, so request headers that
  # trickle in would never time out: count HEADER_TIMEOUT from the first wait instead.
  def set_timeout(seconds) # rubocop:disable Naming/AccessorMethodName -- Puma's name
    super
    return unless @read_header

    @headers_due ||= @timeout_at
    @timeout_at = [@timeout_at, @headers_due].min
  end

  def reset(*)
    @headers_due = nil
    super
  end

  private

  # Puma reads a whole request body before the app runs (past 112 KB into a temp file), with
  # no size limit (http_content_length_limit came with Puma 6.3). This stops reading at
  # MAX_BODY_BYTES, chunked or not, so /publish answers 413 in its own order while the rest is
  # still arriving; the connection is closed after that answer.
  def setup_body
    length = @env["CONTENT_LENGTH"]
    if !@env.key?("HTTP_TRANSFER_ENCODING") && length.to_s.match?(/\A\d+\z/) && length.to_i > MAX_BODY_BYTES
      return body_too_large
    end

    catch(TOO_LARGE) { return super }
    body_too_large
  end

  def read_chunked_body
    catch(TOO_LARGE) { return super }
    body_too_large
  end

  def write_chunk(str)
    super.tap { throw TOO_LARGE if @chunked_content_length > MAX_BODY_BYTES }
  end

  def body_too_large
    @tempfile&.close
    @tempfile = nil
    @body = StringIO.new
    @chunked_body = false
    @buffer = nil
    @env[TOO_LARGE] = true
    @env["HTTP_CONNECTION"] = "close"
    set_ready
    true
  end
end
Puma::Client.prepend(PumaLimits)

# The ids, the history and the clients, behind one lock.
class Hub
  Client = Struct.new(:queue, :socket, :queued, :dropped)

  def initialize
    @lock = Mutex.new
    @clients = Set.new.compare_by_identity
    @history = []
    @last_id = 0
  end

  def count = @lock.synchronize { @clients.size }

  # Joins and takes the replay in one step, so nothing published in between is lost or sent
  # twice. nil when the server is full.
  def subscribe(last_event_id, socket)
    @lock.synchronize do
      return nil if @clients.size >= MAX_STREAMS

      client = Client.new(Thread::Queue.new, socket, 0, false)
      @clients << client
      replay = last_event_id ? @history.filter_map { |id, frame| frame if id > last_event_id } : []
      [client, replay]
    end
  end

  def unsubscribe(client)
    @lock.synchronize { @clients.delete(client) }
    client.queue.close
  end

  # The next frame for this client; nil once it left, was dropped or the server is stopping.
  def next_frame(client)
    frame = client.queue.pop
    return nil if frame.nil? || client.dropped

    @lock.synchronize { client.queued -= frame.bytesize }
    frame
  end

  def publish(event, data)
    @lock.synchronize do
      id = @last_id += 1
      bytes = frame(id, event, data)
      @history << [id, bytes]
      @history.shift if @history.size > HISTORY_SIZE
      send_all(bytes)
      id
    end
  end

  def heartbeat = @lock.synchronize { send_all(": heartbeat\n\n") }

  def close_all
    @lock.synchronize { @clients.each { |client| client.queue.close } }
  end

  private

  # Never waits: a client whose queue would pass MAX_QUEUE_BYTES is dropped, and its socket
  # shut down, which also ends a Puma write blocked on a client that stopped reading.
  def send_all(bytes)
    @clients.delete_if do |client|
      if client.queued + bytes.bytesize > MAX_QUEUE_BYTES
        drop(client)
        true
      else
        client.queued += bytes.bytesize
        client.queue << bytes
        false
      end
    end
  end

  def drop(client)
    client.dropped = true
    client.queue.close
    client.socket.shutdown(Socket::SHUT_RDWR)
  rescue IOError, SystemCallError
    nil # already gone
  end

  # Every line of data (split on CRLF, CR or LF) gets its own "data: ".
  def frame(id, event, data)
    lines = data.split(/\r\n|\r|\n/, -1)
    lines = [""] if lines.empty?
    "id: #{id}\nevent: #{event}\n#{lines.map { |line| "data: #{line}\n" }.join}\n"
  end
end

HUB = Hub.new

# What the routes below share: JSON errors, tokens and request parameters.
module RequestHelpers
  def json_error(code, message)
    content_type "application/json"
    halt code, JSON.generate(error: message)
  end

  def unauthorized
    headers "WWW-Authenticate" => "Bearer"
    json_error 401, "unauthorized"
  end

  # The token of `Authorization: Bearer <token>`, the scheme in any case.
  def bearer
    env["HTTP_AUTHORIZATION"].to_s[/\Abearer +(.+)\z/i, 1]
  end

  def same?(expected, given)
    !given.nil? && Rack::Utils.secure_compare(expected, given)
  end

  # With SSE_TOKEN, the stream needs it in the Authorization header or in ?token=.
  def stream_authorized?
    STREAM_TOKEN.nil? || same?(STREAM_TOKEN, bearer) || same?(STREAM_TOKEN, query_param("token"))
  end

  # The first value of a query parameter (Sinatra's params keeps the last).
  def query_param(name)
    value = Rack::Utils.parse_query(request.query_string)[name]
    value.is_a?(Array) ? value.first : value
  end

  def publish_authorized? = same?(PUBLISH_TOKEN, bearer)

  def last_event_id
    id = env.fetch("HTTP_LAST_EVENT_ID") { query_param("lastEventId") }
    id.to_i if id.is_a?(String) && id.match?(/\A[0-9]{1,1024}\z/)
  end

  # Puma corks the socket (TCP_CORK) while it writes a response: each frame would wait up to
  # 200 ms for more.
  def uncork(socket)
    socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_CORK, 0) if defined?(Socket::TCP_CORK)
    socket.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
  end

  # Puma only notices a client that went away when a write fails; this thread notices its EOF.
  def watch_hang_up(socket, client)
    Thread.new do
      socket.wait_readable
      HUB.unsubscribe(client) if socket.recv_nonblock(1, Socket::MSG_PEEK, exception: false) == ""
    rescue IOError, SystemCallError
      HUB.unsubscribe(client)
    end
  end
end

# The stream, /health, /publish, CORS, and a JSON body for every error.
class App < Sinatra::Base
  # Cross-origin requests are what the CORS headers below decide; these two checks would
  # refuse them with 403 first.
  set :protection, except: %i[http_origin json_csrf]
  set :show_exceptions, false
  set :raise_errors, false

  helpers RequestHelpers

  before do
    headers "Access-Control-Allow-Origin" => "*"
  end

  get STREAM_PATH do
    unauthorized unless stream_authorized?
    socket = env["puma.socket"]
    client, replay = HUB.subscribe(last_event_id, socket)
    unless client
      headers "Retry-After" => "1"
      json_error 503, "too many clients"
    end

    headers "Content-Type" => "text/event-stream; charset=utf-8",
            "Cache-Control" => "no-store",
            "X-Accel-Buffering" => "no"
    # On Puma the block runs in this request's thread, and each `out <<` is written at once.
    events = stream do |out|
      uncork(socket)
      watcher = watch_hang_up(socket, client)
      out << "retry: #{RETRY_MS}\n\n#{replay.join}"
      while (bytes = HUB.next_frame(client))
        out << bytes
      end
    ensure
      watcher&.kill
    end
    # Runs when the response ends, also when Puma could not even write the headers.
    events.callback { HUB.unsubscribe(client) }
    nil
  end

  post "/publish" do
    unauthorized unless publish_authorized?
    unless request.media_type.to_s.downcase == "application/json"
      json_error 415, "Content-Type must be application/json"
    end
    json_error 413, "body over 64 KiB" if env[PumaLimits::TOO_LARGE]

    text = request.body.read.force_encoding(Encoding::UTF_8)
    json_error 400, "body is not valid UTF-8" unless text.valid_encoding?
    message = begin
      JSON.parse(text, max_nesting: MAX_JSON_DEPTH)
    rescue JSON::NestingError
      json_error 400, "body is nested deeper than 64 levels"
    rescue JSON::ParserError
      json_error 400, "body is not JSON"
    end
    json_error 400, "body must be a JSON object" unless message.is_a?(Hash)
    event = message.fetch("event", "message")
    unless event.is_a?(String) && !event.empty? && event.length <= MAX_EVENT_NAME && !event.match?(/[\r\n]/)
      json_error 400, "event must be a string of 1-64 characters without line breaks"
    end
    data = message["data"]
    content_type "application/json"
    [202, JSON.generate(id: HUB.publish(event, data.is_a?(String) ? data : JSON.generate(data)))]
  end

  get "/health" do
    content_type "application/json"
    JSON.generate(status: "ok", clients: HUB.count)
  end

  options STREAM_PATH do
    preflight
  end

  options "/publish" do
    preflight
  end

  not_found do
    if (allow = ALLOWED_METHODS[request.path_info])
      headers "Allow" => allow
      json_error 405, "method not allowed"
    end
    json_error 404, "not found"
  end

  error do
    json_error 500, "internal error"
  end

  private

  def preflight
    headers "Access-Control-Allow-Methods" => "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers" => "Last-Event-ID, Cache-Control, Content-Type, Authorization",
            "Access-Control-Max-Age" => "86400"
    204
  end
end

host = env_var("HOST") || "0.0.0.0"
port = Integer(env_var("PORT") || DEFAULT_PORT)

server = Puma::Server.new(
  App, Puma::Events.null,
  min_threads: 0, max_threads: MAX_STREAMS + SPARE_THREADS,
  first_data_timeout: HEADER_TIMEOUT, persistent_timeout: HEADER_TIMEOUT,
  force_shutdown_after: 2 # on stop, streams still writing to a client that stopped reading
)
server.add_tcp_listener(host, port)
running = server.run
puts "#{SERVER_NAME} listening on http://#{host}:#{port}"

def now_iso = Time.now.utc.strftime("%Y-%m-%dT%H:%M:%S.%LZ")

TIMED_EVENTS.each do |event|
  Thread.new do
    loop do
      sleep event[:every_ms] / 1000.0
      HUB.publish(event[:name], JSON.generate(event[:data].merge("timestamp" => now_iso)))
    end
  end
end
Thread.new do
  loop do
    sleep HEARTBEAT_SECONDS
    HUB.heartbeat
  end
end

# A trap handler may not take locks: stop from a thread. Ending every stream lets Puma's
# threads finish, then the server stops.
%w[TERM INT].each do |signal|
  trap(signal) do
    Thread.new do
      HUB.close_all
      server.stop(true)
    end
  end
end
running.join
