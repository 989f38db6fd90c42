# frozen_string_literal: true

# sse-server: a Server-Sent Events server, Sinatra on Thin (EventMachine).
require "json"
require "set"
require "sinatra/base"
require "thin"

STREAM_PATH = "/events"
RETRY_MS = 3000
HEARTBEAT_S = 15
HISTORY = 100
MAX_CLIENTS = 10000
MAX_BODY = 64 * 1024
# A client whose unsent output passes this is dropped.
MAX_QUEUE_BYTES = 1024 * 1024
STREAM_TOKEN = ENV["SSE_TOKEN"].to_s.empty? ? nil : ENV["SSE_TOKEN"]
PUBLISH_TOKEN = nil
CORS_ORIGINS = ["*"].freeze
CORS_CREDENTIALS = false
TIMED_EVENTS = [
  ["clock", 1000, JSON.parse("{\"source\":\"server-clock\",\"timezone\":\"UTC\"}")],
  ["stock-price", 2000, JSON.parse("{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}")],
].freeze
ALLOWED_METHODS = {
  STREAM_PATH => "GET, OPTIONS",
  "/publish" => "POST, OPTIONS",
  "/health" => "GET",
}.freeze

# The streams, the history and the id counter. Only the EventMachine reactor thread touches
# them, so there is no lock: a replay and the join to the broadcast happen in one reactor turn.
class Hub
  # `pending` holds what is published between taking the slot and the stream's start.
  Client = Struct.new(:conn, :out, :pending)

  def initialize
    @clients = Set.new.compare_by_identity
    @history = []
    @last_id = 0
  end

  def size = @clients.size

  # Takes a slot at once; the stream itself starts on the next reactor turn.
  def join(conn)
    return if @clients.size >= MAX_CLIENTS

    Client.new(conn, nil, []).tap { |client| @clients << client }
  end

  def leave(client) = @clients.delete(client)

  def start(client, out, last_id)
    client.out = out
    out << (RETRY_MS.positive? ? "retry: #{RETRY_MS}\n\n" : ": connected\n\n")
    # Replay what was kept before the slot was taken; `pending` has everything since.
    first_pending = client.pending.first&.first
    @history.each { |id, frame| out << frame if id > last_id && (first_pending.nil? || id < first_pending) } if last_id
    client.pending.each { |id, frame| out << frame if last_id.nil? || id > last_id }
    client.pending = nil
  end

  def publish(event, text)
    id = @last_id += 1
    lines = text.empty? ? [""] : text.split(/\r\n|\r|\n/, -1)
    frame = "id: #{id}\nevent: #{event}\n#{lines.map { |line| "data: #{line}\n" }.join}\n"
    if HISTORY.positive?
      @history << [id, frame]
      @history.shift if @history.size > HISTORY
    end
    broadcast(id, frame)
    id
  end

  def broadcast(id, frame)
    @clients.each do |client|
      out = client.out
      if out.nil?
        client.pending << [id, frame] if id # a heartbeat (no id) is not kept
        next
      end
      next if out.closed?

      # EventMachine buffers whatever the socket does not take, without limit: that buffer is
      # this client's queue. Closing the connection makes Thin fire async.close (see below).
      if client.conn.get_outbound_data_size + frame.bytesize > MAX_QUEUE_BYTES
        client.conn.close_connection
        out.close
      else
        out << frame
      end
    end
  end

  def close_all
    @clients.each { |client| client.out&.close }
  end
end

HUB = Hub.new

class App < Sinatra::Base
  # Cross-origin requests are what the CORS headers below decide; these two checks would
  # refuse them with 403 first.
  set :protection, except: %i[http_origin json_csrf]
  set :show_exceptions, false

  helpers do
    def json_response(code, value)
      content_type "application/json"
      halt code, JSON.generate(value)
    end

    def bearer
      env["HTTP_AUTHORIZATION"].to_s[/\ABearer (.+)\z/, 1]
    end

    def token_ok?(expected, given)
      !given.nil? && Rack::Utils.secure_compare(expected, given)
    end

    def last_event_id
      id = env.fetch("HTTP_LAST_EVENT_ID") { params["lastEventId"] }
      id.to_i if id.is_a?(String) && id.match?(/\A[0-9]{1,1024}\z/)
    end
  end

  before do
    origin = env["HTTP_ORIGIN"]
    if CORS_ORIGINS.include?("*")
      headers "Access-Control-Allow-Origin" => "*"
    else
      headers "Vary" => "Origin"
      if CORS_ORIGINS.include?(origin)
        headers "Access-Control-Allow-Origin" => origin
        headers "Access-Control-Allow-Credentials" => "true" if CORS_CREDENTIALS
      end
    end
  end

  get STREAM_PATH do
    unless STREAM_TOKEN.nil? || token_ok?(STREAM_TOKEN, bearer) || token_ok?(STREAM_TOKEN, params["token"])
      json_response 401, error: "unauthorized"
    end
    # The Thin connection (an EventMachine::Connection) serving this request.
    conn = env["async.callback"].receiver
    client = HUB.join(conn)
    unless client
      headers "Retry-After" => "1"
      json_response 503, error: "too many clients"
    end
    # Thin succeeds async.close once the connection is gone, for any reason: the client left
    # (EOF, or a failed heartbeat write), was dropped, or the server is stopping.
    env["async.close"].callback { HUB.leave(client) }
    conn.comm_inactivity_timeout = 0 # Thin would cut a quiet stream after 30 s
    conn.set_sock_opt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)

    last_id = last_event_id
    headers "Content-Type" => "text/event-stream; charset=utf-8",
            "Cache-Control" => "no-store",
            "X-Accel-Buffering" => "no"
    # :keep_open leaves the response open after the block; every `out <<` is sent at once.
    stream(:keep_open) { |out| HUB.start(client, out, last_id) }
  end

  post "/publish" do
    json_response 401, error: "unauthorized" unless PUBLISH_TOKEN.nil? || token_ok?(PUBLISH_TOKEN, bearer)
    json_response 413, error: "body over 64 KiB" if request.content_length.to_i > MAX_BODY
    body = request.body.read(MAX_BODY + 1).to_s
    json_response 413, error: "body over 64 KiB" if body.bytesize > MAX_BODY

    message = begin
      JSON.parse(body)
    rescue JSON::ParserError
      json_response 400, error: "body is not JSON"
    end
    json_response 400, error: "body must be a JSON object" unless message.is_a?(Hash)
    event = message.fetch("event", "message")
    unless event.is_a?(String) && !event.empty? && event.length <= 64 && !event.match?(/[\r\n]/)
      json_response 400, error: "event must be a string of 1-64 characters without line breaks"
    end
    data = message["data"]
    text = data.is_a?(String) ? data : JSON.generate(data)
    json_response 202, id: HUB.publish(event, text)
  end

  get "/health" do
    json_response 200, status: "ok", clients: HUB.size
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
      json_response 405, error: "method not allowed"
    end
    json_response 404, error: "not found"
  end

  error do
    json_response 500, error: "internal error"
  end

  private

  def preflight
    headers "Access-Control-Allow-Methods" => "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers" => "Last-Event-ID, Cache-Control, Content-Type, Authorization",
            "Access-Control-Max-Age" => "86400"
    204
  end
end

def now_iso
  Time.now.utc.strftime("%Y-%m-%dT%H:%M:%S.%LZ")
end

host = ENV.fetch("HOST", "0.0.0.0")
port = Integer(ENV.fetch("PORT", "3009"))
$stdout.sync = true
Thin::Logging.silent = true

EventMachine.run do
  server = Thin::Server.new(host, port, App, signals: false)
  server.start
  puts "sse-server listening on http://#{host}:#{port}"

  TIMED_EVENTS.each do |name, every_ms, data|
    EventMachine.add_periodic_timer(every_ms / 1000.0) do
      HUB.publish(name, JSON.generate(data.merge("timestamp" => now_iso)))
    end
  end
  EventMachine.add_periodic_timer(HEARTBEAT_S) { HUB.broadcast(nil, ": heartbeat\n\n") } if HEARTBEAT_S.positive?

  stop = lambda do
    server.stop # no new connections
    HUB.close_all # Thin closes each stream's connection once its output is written
    EventMachine.add_periodic_timer(0.05) { EventMachine.stop if server.backend.empty? }
    EventMachine.add_timer(2) { EventMachine.stop } # clients that stopped reading
  end
  # A trap handler may not take the locks EventMachine.next_tick uses: hand over to a thread.
  %w[TERM INT].each { |signal| trap(signal) { Thread.new { EventMachine.next_tick(stop) } } }
end
