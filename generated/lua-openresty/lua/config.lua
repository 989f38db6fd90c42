-- The event spec this server was generated from.
return {
  name = "sse-server",
  retry = 3000, -- ms, sent on connect (0: off)
  heartbeat = 15, -- s between heartbeat comments (0: off)
  history = 100, -- events kept for Last-Event-ID
  max_clients = 10000,
  cors_origins = { "*" },
  cors_credentials = false,
  stream_token = nil, -- SSE_TOKEN overrides it
  publish_token = nil,
  -- timed events: name, period in ms, data as JSON (a "timestamp" is added to each)
  timed_events = {
    { name = "clock", every = 1000, data = "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}" },
    { name = "stock-price", every = 2000, data = "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}" },
  },
}
