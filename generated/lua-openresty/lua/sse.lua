-- Server-Sent Events on every nginx worker. The hub (the id sequence, the client count and the
-- recent frames) lives in shared dicts, so an event published on one worker reaches the
-- streams of all.
local cjson = require "cjson.safe"
local semaphore = require "ngx.semaphore"
local config = require "config"

local MAX_QUEUE_BYTES = 1024 * 1024 -- written to one client at a time, at most
-- Frames kept in the shared dict: the history, and how far a client may fall behind.
local KEEP = math.max(config.HISTORY_SIZE, 256)
local MAX_BODY_BYTES = 64 * 1024 -- nginx.conf says the same: client_max_body_size 64k
local MAX_EVENT_NAME = 64
local MAX_JSON_DEPTH = 64

cjson.decode_invalid_numbers(false) -- plain JSON only: no NaN, Infinity or hex
cjson.decode_max_depth(MAX_JSON_DEPTH)

local state = ngx.shared.sse_state -- "seq": last id, "clients": open streams, "lock"
local frames = ngx.shared.sse_events -- id -> frame, the last KEEP of them

-- Read once, in the nginx master (init_by_lua): every worker inherits the same values.
local function from_env(name)
  local value = os.getenv(name)
  return value ~= "" and value or nil
end

local function random_hex(bytes)
  local urandom = assert(io.open("/dev/urandom", "rb"))
  local raw = urandom:read(bytes)
  urandom:close()
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local publish_token = from_env("SSE_PUBLISH_TOKEN")
local publish_token_made = not publish_token
publish_token = publish_token or random_hex(16)
local stream_token = from_env("SSE_TOKEN")

-- Streams of this worker wait here; a poller posts when the sequence moves.
local wakeup = semaphore.new()

local function cors()
  ngx.header["Access-Control-Allow-Origin"] = "*"
end

local function reply(status, body, headers)
  ngx.status = status
  cors()
  for name, value in pairs(headers or {}) do
    ngx.header[name] = value
  end
  if body then
    ngx.header["Content-Type"] = "application/json"
    ngx.print(body)
  end
  return ngx.exit(ngx.HTTP_OK)
end

local function fail(status, message, headers)
  return reply(status, cjson.encode({ error = message }), headers)
end

local function preflight()
  return reply(204, nil, {
    ["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS",
    ["Access-Control-Allow-Headers"] = "Last-Event-ID, Cache-Control, Content-Type, Authorization",
    ["Access-Control-Max-Age"] = "86400",
  })
end

local function not_allowed(allow)
  return fail(405, "method not allowed", { Allow = allow })
end

-- Compares in time that depends on the length only.
local function same(given, secret)
  if type(given) ~= "string" or #given ~= #secret then
    return false
  end
  local diff = 0
  for i = 1, #secret do
    diff = bit.bor(diff, bit.bxor(given:byte(i), secret:byte(i)))
  end
  return diff == 0
end

local function bearer()
  local header = ngx.var.http_authorization
  local m = header and ngx.re.match(header, [[^bearer +(.+)$]], "joi")
  return m and m[1]
end

local function stream_authorized()
  return not stream_token or same(bearer(), stream_token) or same(ngx.req.get_uri_args().token, stream_token)
end

local function publish_authorized()
  return same(bearer(), publish_token)
end

local function frame(id, event, data)
  local out = { "id: ", id, "\nevent: ", event, "\n" }
  data = data:gsub("\r\n", "\n"):gsub("\r", "\n")
  for line in (data .. "\n"):gmatch("(.-)\n") do
    out[#out + 1] = "data: " .. line .. "\n"
  end
  out[#out + 1] = "\n"
  return table.concat(out)
end

local function wake_streams()
  local waiting = -wakeup:count()
  if waiting > 0 then
    wakeup:post(waiting)
  end
end

local hub = {}

-- Assigns the next id, keeps the frame and wakes the streams; returns the id. Publishes run on
-- every worker: a lock in the shared dict makes "store the frame, then move seq" one step, so
-- no stream sees an id before its frame.
function hub.publish(event, data)
  while not state:add("lock", true, 1) do
    ngx.sleep(0.001)
  end
  local id = (state:get("seq") or 0) + 1
  frames:set(id, frame(id, event, data)) -- when full, the oldest frames are evicted first
  frames:delete(id - KEEP)
  state:set("seq", id)
  state:delete("lock")
  wake_streams()
  return id
end

-- Takes a slot (nil at MAX_CLIENTS) and returns the cursor the stream starts from: the replay
-- and the live events come from that one cursor into the shared frames.
function hub.subscribe(last_event_id)
  if state:incr("clients", 1, 0) > config.MAX_CLIENTS then
    state:incr("clients", -1)
    return nil
  end
  local seq = state:get("seq") or 0
  if last_event_id then
    return math.min(seq, math.max(last_event_id, seq - config.HISTORY_SIZE))
  end
  return seq
end

function hub.unsubscribe()
  state:incr("clients", -1)
end

function hub.count()
  return state:get("clients") or 0
end

local function timestamp()
  local now = ngx.now()
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(now)) .. string.format(".%03dZ", math.floor(now * 1000) % 1000)
end

-- `data` as its sender wrote it, minus insignificant whitespace. cjson would re-encode it and
-- lose key order, empty arrays ([] becomes {}) and digits past the 14th.
local STRING_OR_SPACE = [=["(?:[^"\\]++|\\.)*+"|[ \t\r\n]++]=]
local TOKEN = [=["(?:[^"\\]++|\\.)*+"|[{}\[\],:]]=]

local function raw_member(body, wanted)
  local json = ngx.re.gsub(body, STRING_OR_SPACE, function(m)
    return m[0]:sub(1, 1) == '"' and m[0] or ""
  end, "jo")
  local depth, key, start, found = 0, nil, nil, nil
  local ctx = { pos = 1 }
  while true do
    local from, to = ngx.re.find(json, TOKEN, "jo", ctx)
    if not from then
      return found
    end
    local c = json:sub(from, from)
    if c == "{" or c == "[" then
      depth = depth + 1
    elseif c == '"' then
      if depth == 1 and not start then
        key = cjson.decode(json:sub(from, to))
      end
    elseif c == ":" then
      if depth == 1 then
        start = to + 1
      end
    else -- , } ]
      if depth == 1 and start then
        if key == wanted then
          found = json:sub(start, from - 1)
        end
        start = nil
      end
      if c ~= "," then
        depth = depth - 1
      end
    end
  end
end

local function valid_utf8(text)
  -- In UTF-8 mode ("u") PCRE checks the subject first and fails on a malformed one.
  local _, _, err = ngx.re.find(text, [[^]], "ju")
  return not err
end

local _M = {}

function _M.init_worker()
  -- Each worker wakes its own streams when any worker has stored a new event.
  local seen = state:get("seq") or 0
  ngx.timer.every(0.02, function()
    local seq = state:get("seq") or 0
    if seq ~= seen then
      seen = seq
      wake_streams()
    end
  end)

  if ngx.worker.id() ~= 0 then
    return
  end
  -- One timer per timed event for the whole server: worker 0 runs them all.
  for _, event in ipairs(config.TIMED_EVENTS) do
    ngx.timer.every(event.every / 1000, function(premature)
      if not premature then
        local stamp = '"timestamp":"' .. timestamp() .. '"}'
        hub.publish(event.name, event.data == "{}" and "{" .. stamp or event.data:sub(1, -2) .. "," .. stamp)
      end
    end)
  end
  if publish_token_made then
    io.stdout:write("publish token: ", publish_token, " (set SSE_PUBLISH_TOKEN to choose your own)\n")
  end
  io.stdout:write(config.SERVER_NAME, " listening on http://", os.getenv("HOST"), ":", os.getenv("PORT"), "\n")
  io.stdout:flush()
end

-- print + flush(true): the bytes reach the socket before this returns, so what waits for a
-- client is one batch at most (MAX_QUEUE_BYTES). On a client that takes nothing, it fails after
-- send_timeout, and nginx closes the connection.
local function send(data)
  return ngx.print(data) and ngx.flush(true)
end

local function last_event_id()
  local value = ngx.var.http_last_event_id
  if not value then
    value = ngx.req.get_uri_args().lastEventId
  end
  if type(value) == "string" and #value <= 1024 and value:find("^%d+$") then
    return tonumber(value)
  end
end

function _M.stream()
  local method = ngx.req.get_method()
  if method == "OPTIONS" then
    return preflight()
  elseif method ~= "GET" then
    return not_allowed("GET, OPTIONS")
  end
  if not stream_authorized() then
    return fail(401, "unauthorized", { ["WWW-Authenticate"] = "Bearer" })
  end

  local last = hub.subscribe(last_event_id())
  if not last then
    return fail(503, "too many clients", { ["Retry-After"] = "1" })
  end
  ngx.ctx.subscribed = true -- release() gives the slot back however the stream ends

  -- lua_check_client_abort: runs as soon as the client closes the connection.
  ngx.on_abort(function()
    ngx.exit(499)
  end)

  ngx.header["Content-Type"] = "text/event-stream; charset=utf-8"
  ngx.header["Cache-Control"] = "no-store"
  ngx.header["X-Accel-Buffering"] = "no"
  cors()

  local next_beat = ngx.now() + config.HEARTBEAT_SECONDS
  local ok = send("retry: " .. config.RETRY_MS .. "\n\n")
  while ok and not ngx.worker.exiting() do
    local seq = state:get("seq") or 0
    if seq - last > KEEP then
      return -- too far behind: drop the slow client
    end
    local now = ngx.now()
    if seq > last then
      local batch, size = {}, 0
      while last < seq and size < MAX_QUEUE_BYTES do
        last = last + 1
        local f = frames:get(last)
        if f then
          batch[#batch + 1] = f
          size = size + #f
        end
      end
      ok = send(batch)
    elseif now >= next_beat then
      ok = send(": heartbeat\n\n")
      next_beat = now + config.HEARTBEAT_SECONDS
    else
      -- (under 1 ms, wait() would return without yielding and ngx.now() would never move)
      wakeup:wait(math.max(next_beat - now, 0.001))
    end
  end
end

function _M.release()
  if ngx.ctx.subscribed then
    hub.unsubscribe()
  end
end

function _M.health()
  if ngx.req.get_method() ~= "GET" then
    return not_allowed("GET")
  end
  return reply(200, '{"status":"ok","clients":' .. hub.count() .. "}")
end

-- Checks what the headers say; the body is read in publish_body (location @publish_body).
function _M.publish()
  local method = ngx.req.get_method()
  if method == "OPTIONS" then
    return preflight()
  elseif method ~= "POST" then
    return not_allowed("POST, OPTIONS")
  end
  if not publish_authorized() then
    return fail(401, "unauthorized", { ["WWW-Authenticate"] = "Bearer" })
  end
  local content_type = ngx.var.content_type or ""
  if not ngx.re.find(content_type, [[^\s*application/json\s*(;|$)]], "joi") then
    return fail(415, "Content-Type must be application/json")
  end
  if (tonumber(ngx.var.http_content_length) or 0) > MAX_BODY_BYTES then
    return fail(413, "body over 64 KiB")
  end
  return ngx.exec("@publish_body")
end

function _M.publish_body()
  -- A body over client_max_body_size: nginx stops reading it and answers 413 (error_page).
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  if not valid_utf8(body) then
    return fail(400, "body is not valid UTF-8")
  end
  local message, err = cjson.decode(body)
  if err and err:find("too many nested", 1, true) then
    return fail(400, "body is nested deeper than " .. MAX_JSON_DEPTH .. " levels")
  end
  if type(message) ~= "table" or not body:find("^[ \t\r\n]*{") then
    return fail(400, "body is not a JSON object")
  end
  local event = message.event
  if event == nil then
    event = "message"
  end
  -- (its length in characters: the UTF-8 bytes that do not continue a character)
  local valid = type(event) == "string" and event ~= "" and not event:find("[\r\n]")
  if not valid or select(2, event:gsub("[^\128-\191]", "")) > MAX_EVENT_NAME then
    return fail(400, "event must be a string of 1-64 characters without line breaks")
  end
  local data = message.data
  local text = type(data) == "string" and data or raw_member(body, "data") or "null"

  return reply(202, '{"id":' .. hub.publish(event, text) .. "}")
end

function _M.not_found()
  return fail(404, "not found")
end

local ERRORS = {
  [400] = "bad request",
  [404] = "not found",
  [405] = "method not allowed",
  [408] = "request timeout",
  [411] = "Content-Length required",
  [413] = "body over 64 KiB",
  [414] = "URI too long",
  [431] = "request headers too large",
  [494] = "request headers too large",
  [503] = "service unavailable",
}

-- error_page: what nginx itself refuses (a malformed request, a body over the limit...).
function _M.error_page()
  local status = tonumber(ngx.var.status) or 500
  return fail(status, ERRORS[status] or "internal server error")
end

return _M
