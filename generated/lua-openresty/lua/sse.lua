-- Server-Sent Events on every nginx worker. The id sequence, the client count and the recent
-- frames live in shared dicts, so an event published on one worker reaches the streams of all.
local cjson = require "cjson.safe"
local semaphore = require "ngx.semaphore"
local config = require "config"

cjson.decode_invalid_numbers(false) -- plain JSON only: no NaN, Infinity or hex

local state = ngx.shared.sse_state -- "seq": last id, "clients": open streams, "lock"
local frames = ngx.shared.sse_events -- id -> frame, the last KEEP of them
local KEEP = math.max(config.history, 256) -- also how far a client may fall behind
local MAX_BATCH = 1024 * 1024 -- bytes written to one client at a time
local MAX_BODY = 64 * 1024

-- Streams of this worker wait here; a poller posts when the sequence moves.
local wakeup = semaphore.new()

local allowed_origin = {}
for _, origin in ipairs(config.cors_origins) do
  allowed_origin[origin] = true
end

local function cors()
  local origin = ngx.var.http_origin
  if allowed_origin["*"] and not config.cors_credentials then
    ngx.header["Access-Control-Allow-Origin"] = "*"
  elseif origin and (allowed_origin["*"] or allowed_origin[origin]) then
    ngx.header["Access-Control-Allow-Origin"] = origin
    ngx.header["Vary"] = "Origin"
    if config.cors_credentials then
      ngx.header["Access-Control-Allow-Credentials"] = "true"
    end
  end
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

local function bearer(secret)
  return same(ngx.var.http_authorization, "Bearer " .. secret)
end

local function frame(id, name, text)
  local out = { "id: ", id, "\nevent: ", name, "\n" }
  text = text:gsub("\r\n", "\n"):gsub("\r", "\n")
  for line in (text .. "\n"):gmatch("(.-)\n") do
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

-- Assigns the next id and stores the frame. Publishes run on every worker: a lock in the shared
-- dict makes "store the frame, then move seq" one step, so no stream sees an id before its frame.
local function emit(name, text)
  while not state:add("lock", true, 1) do
    ngx.sleep(0.001)
  end
  local id = (state:get("seq") or 0) + 1
  frames:set(id, frame(id, name, text)) -- when full, the oldest frames are evicted first
  frames:delete(id - KEEP)
  state:set("seq", id)
  state:delete("lock")
  wake_streams()
  return id
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
  for _, event in ipairs(config.timed_events) do
    ngx.timer.every(event.every / 1000, function(premature)
      if not premature then
        local stamp = '"timestamp":"' .. timestamp() .. '"}'
        emit(event.name, event.data == "{}" and "{" .. stamp or event.data:sub(1, -2) .. "," .. stamp)
      end
    end)
  end
  io.stdout:write(config.name, " listening on http://", os.getenv("HOST"), ":", os.getenv("PORT"), "\n")
  io.stdout:flush()
end

-- print + flush(true): the bytes reach the socket before this returns. On a client that takes
-- nothing, it fails after send_timeout, which ends the stream.
local function send(data)
  return ngx.print(data) and ngx.flush(true)
end

local function resume_after()
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

  local token = os.getenv("SSE_TOKEN")
  if token == "" or not token then
    token = config.stream_token
  end
  if token and not (bearer(token) or same(ngx.req.get_uri_args().token, token)) then
    return fail(401, "unauthorized", { ["WWW-Authenticate"] = "Bearer" })
  end

  if state:incr("clients", 1, 0) > config.max_clients then
    state:incr("clients", -1)
    return fail(503, "too many clients", { ["Retry-After"] = "1" })
  end
  ngx.ctx.counted = true -- release() gives the slot back however the stream ends

  -- lua_check_client_abort: runs as soon as the client closes the connection.
  ngx.on_abort(function()
    ngx.exit(499)
  end)

  ngx.header["Content-Type"] = "text/event-stream; charset=utf-8"
  ngx.header["Cache-Control"] = "no-store"
  ngx.header["X-Accel-Buffering"] = "no"
  cors()

  -- The replay and the live events come from one cursor into the shared frames, taken here.
  local seq = state:get("seq") or 0
  local last = seq
  local after = resume_after()
  if after then
    last = math.min(seq, math.max(after, seq - config.history))
  end

  local next_beat = ngx.now() + config.heartbeat
  local ok = send(config.retry > 0 and "retry: " .. config.retry .. "\n\n" or ": connected\n\n")
  while ok and not ngx.worker.exiting() do
    seq = state:get("seq") or 0
    if seq - last > KEEP then
      return -- too far behind: drop the slow client
    end
    local now = ngx.now()
    if seq > last then
      local batch, size = {}, 0
      while last < seq and size < MAX_BATCH do
        last = last + 1
        local f = frames:get(last)
        if f then
          batch[#batch + 1] = f
          size = size + #f
        end
      end
      ok = send(batch)
      next_beat = now + config.heartbeat
    elseif config.heartbeat > 0 and now >= next_beat then
      ok = send(": heartbeat\n\n")
      next_beat = now + config.heartbeat
    else
      -- (under 1 ms, wait() would return without yielding and ngx.now() would never move)
      wakeup:wait(config.heartbeat > 0 and math.max(next_beat - now, 0.001) or 1)
    end
  end
end

function _M.release()
  if ngx.ctx.counted then
    state:incr("clients", -1)
  end
end

function _M.health()
  if ngx.req.get_method() ~= "GET" then
    return not_allowed("GET")
  end
  return reply(200, '{"status":"ok","clients":' .. (state:get("clients") or 0) .. "}")
end

function _M.publish()
  local method = ngx.req.get_method()
  if method == "OPTIONS" then
    return preflight()
  elseif method ~= "POST" then
    return not_allowed("POST, OPTIONS")
  end
  if config.publish_token and not bearer(config.publish_token) then
    return fail(401, "unauthorized", { ["WWW-Authenticate"] = "Bearer" })
  end

  if (tonumber(ngx.var.http_content_length) or 0) > MAX_BODY then
    return fail(413, "body over 64 KiB")
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body and ngx.req.get_body_file() or body and #body > MAX_BODY then
    return fail(413, "body over 64 KiB")
  end

  local message = body and body:find("^[ \t\r\n]*{") and cjson.decode(body)
  if type(message) ~= "table" then
    return fail(400, "body must be a JSON object")
  end
  local name = message.event
  if name == nil then
    name = "message"
  end
  if type(name) ~= "string" or name == "" or name:find("[\r\n]") or select(2, name:gsub("[^\128-\191]", "")) > 64 then
    return fail(400, "event must be a string of 1-64 characters without line breaks")
  end
  local data = message.data
  local text = type(data) == "string" and data or raw_member(body, "data") or "null"

  return reply(202, '{"id":' .. emit(name, text) .. "}")
end

function _M.not_found()
  return fail(404, "not found")
end

return _M
