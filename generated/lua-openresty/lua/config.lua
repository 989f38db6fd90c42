-- The event spec this server was generated from.
return {
  SERVER_NAME = "sse-server",
  RETRY_MS = 3000, -- sent on connect (0: off)
  HEARTBEAT_SECONDS = 15, -- between heartbeat comments (0: off)
  HISTORY_SIZE = 100, -- events kept for Last-Event-ID
  MAX_CLIENTS = 10000,
  -- timed events: name, period in ms, and data as JSON text, sent with a "timestamp" added.
  -- Text, not a table: lua-cjson would encode an empty array in a table as {} and lose key order.
  TIMED_EVENTS = {
    { name = "clock", every = 1000, data = "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}" },
    { name = "stock-price", every = 2000, data = "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}" },
  },
}
