defmodule SseServer.Connection do
  @moduledoc """
  One process per TCP connection. The runtime's HTTP packet parser (`packet: :http_bin`)
  reads the request line and headers; bodies and streams use raw bytes. A stream keeps its
  process alive: the hub sends it `{:frame, binary}` messages and it writes them in order.
  """
  use GenServer, restart: :temporary

  alias SseServer.{Hub, Json}

  @stream_path "/events"
  @retry_ms 3000
  @heartbeat_seconds 15
  @max_body_bytes 65_536
  @max_event_name 64
  @body_timeout 15_000
  @header_timeout 15_000
  @max_headers 100

  def start_link({socket, config}), do: GenServer.start_link(__MODULE__, {socket, config})

  @impl true
  def init({socket, config}) do
    state =
      config |> Map.new() |> Map.merge(%{socket: socket, request: nil, stream: nil, timer: nil})

    {:ok, expect_request(state)}
  end

  # The listener hands the socket over, then says so: only now may it deliver messages here.
  @impl true
  def handle_info(:socket_ready, state) do
    :inet.setopts(state.socket, active: :once)
    {:noreply, state}
  end

  def handle_info({:http, _, {:http_request, method, target, version}}, %{request: nil} = state) do
    {path, query} = split_target(target)
    request = %{method: method, path: path, query: query, version: version, headers: []}
    next_packet(%{state | request: request})
  end

  def handle_info({:http, _, {:http_header, _, name, _, value}}, %{request: request} = state) do
    if length(request.headers) < @max_headers do
      headers = [{String.downcase(to_string(name)), String.trim(value)} | request.headers]
      next_packet(%{state | request: %{request | headers: headers}})
    else
      error(%{state | request: nil}, 400, "too many headers")
    end
  end

  def handle_info({:http, _, :http_eoh}, %{request: request} = state) do
    :erlang.cancel_timer(state.timer)
    headers = Enum.reverse(request.headers)
    connection = headers |> values("connection") |> Enum.join(",") |> String.downcase()

    request =
      Map.merge(request, %{
        headers: headers,
        close: request.version != {1, 1} or connection =~ ~r/(^|[\s,])close($|[\s,])/,
        # a body this server does not read means the connection cannot carry another request
        unread_body:
          values(headers, "transfer-encoding") != [] or
            values(headers, "content-length") not in [[], ["0"]]
      })

    route(%{state | request: request, timer: nil})
  end

  def handle_info({:http, _, {:http_error, _}}, state),
    do: error(%{state | request: nil}, 400, "malformed request")

  def handle_info({:timeout, timer, :headers}, %{timer: timer} = state) do
    :gen_tcp.close(state.socket)
    {:stop, :normal, state}
  end

  # fired just before it was cancelled
  def handle_info({:timeout, _stale, :headers}, state), do: {:noreply, state}

  def handle_info(:heartbeat, state) do
    Process.send_after(self(), :heartbeat, @heartbeat_seconds * 1000)
    write(state, ": heartbeat\n\n")
  end

  def handle_info({:frame, frame}, state) do
    result = write(state, frame)
    :counters.sub(state.stream.queued, 1, byte_size(frame))
    result
  end

  # A stream reads only to notice that the client has gone (FIN arrives as :tcp_closed).
  def handle_info({:tcp, socket, _bytes}, state) do
    :inet.setopts(socket, active: :once)
    {:noreply, state}
  end

  def handle_info({:tcp_closed, _socket}, state), do: stop(state)
  def handle_info({:tcp_error, _socket, _reason}, state), do: stop(state)

  defp route(%{request: request} = state) do
    case {request.path, request.method} do
      {@stream_path, :GET} -> stream(state)
      {@stream_path, :OPTIONS} -> preflight(state)
      {@stream_path, _} -> error(state, 405, "method not allowed", [{"Allow", "GET, OPTIONS"}])
      {"/publish", :POST} -> publish(state)
      {"/publish", :OPTIONS} -> preflight(state)
      {"/publish", _} -> error(state, 405, "method not allowed", [{"Allow", "POST, OPTIONS"}])
      {"/health", :GET} -> health(state)
      {"/health", _} -> error(state, 405, "method not allowed", [{"Allow", "GET"}])
      _ -> error(state, 404, "not found")
    end
  end

  defp stream(%{request: request} = state) do
    if state.stream_token != nil and not stream_authorized?(request, state.stream_token) do
      unauthorized(state)
    else
      case Hub.subscribe(last_event_id(request)) do
        {:error, :full} ->
          error(state, 503, "too many clients", [{"Retry-After", "1"}])

        {:ok, queued, replay} ->
          # HTTP/1.1 gets a chunked body (each write one chunk); HTTP/1.0 ends at close.
          chunked = request.version == {1, 1}

          framing =
            if chunked, do: {"Transfer-Encoding", "chunked"}, else: {"Connection", "close"}

          headers = [
            {"Content-Type", "text/event-stream; charset=utf-8"},
            {"Cache-Control", "no-store"},
            {"X-Accel-Buffering", "no"},
            framing
            | cors_headers(request)
          ]

          hello = "retry: #{@retry_ms}\n\n"
          state = %{state | request: nil, stream: %{queued: queued, chunked: chunked}}
          :ok = :inet.setopts(state.socket, packet: :raw, active: :once)
          Process.send_after(self(), :heartbeat, @heartbeat_seconds * 1000)

          case :gen_tcp.send(state.socket, [head(200, headers) | chunk(state, [hello | replay])]) do
            :ok -> {:noreply, state}
            {:error, _} -> stop(state)
          end
      end
    end
  end

  defp write(state, data) do
    case :gen_tcp.send(state.socket, chunk(state, data)) do
      :ok -> {:noreply, state}
      # closed, or the client stopped reading for the socket's send_timeout
      {:error, _} -> stop(state)
    end
  end

  defp chunk(%{stream: %{chunked: true}}, data) do
    [Integer.to_string(IO.iodata_length(data), 16), "\r\n", data, "\r\n"]
  end

  defp chunk(_state, data), do: data

  defp stop(state) do
    if state.stream, do: Hub.unsubscribe(self())
    {:stop, :normal, state}
  end

  # Checked in this order: token (401), Content-Type (415), size (413), body (400).
  defp publish(%{request: request} = state) do
    cond do
      not publish_authorized?(request, state.publish_token) ->
        unauthorized(state)

      not json_media_type?(header(request, "content-type")) ->
        error(state, 415, "Content-Type must be application/json")

      true ->
        case body_framing(request) do
          {:error, :too_large} -> error(state, 413, "body over 64 KiB")
          {:error, problem} -> error(state, 400, problem)
          {:ok, framing} -> read_and_publish(state, framing)
        end
    end
  end

  defp read_and_publish(state, framing) do
    if framing != {:length, 0} and header(state.request, "expect") == "100-continue" do
      :gen_tcp.send(state.socket, "HTTP/1.1 100 Continue\r\n\r\n")
    end

    case read_body(state.socket, framing) do
      {:ok, body} ->
        state = put_in(state.request.unread_body, false)

        case parse_publish(body) do
          {:ok, event, data} ->
            json(
              state,
              202,
              {:object, [{"id", {:number, Integer.to_string(Hub.publish(event, data))}}]}
            )

          {:error, problem} ->
            error(state, 400, problem)
        end

      {:error, :too_large} ->
        error(state, 413, "body over 64 KiB")

      {:error, :malformed} ->
        error(state, 400, "malformed chunked body")

      # the client went away or stalled mid-body
      {:error, _} ->
        :gen_tcp.close(state.socket)
        {:stop, :normal, state}
    end
  end

  defp body_framing(request) do
    case {values(request.headers, "transfer-encoding"), values(request.headers, "content-length")} do
      {[], []} ->
        {:ok, {:length, 0}}

      {[coding], []} ->
        if String.downcase(coding) == "chunked",
          do: {:ok, :chunked},
          else: {:error, "unsupported Transfer-Encoding"}

      {[], lengths} ->
        content_length(Enum.uniq(lengths))

      _ ->
        {:error, "conflicting Content-Length and Transfer-Encoding"}
    end
  end

  defp content_length([value]) do
    cond do
      not (value =~ ~r/\A[0-9]{1,18}\z/) -> {:error, "invalid Content-Length"}
      String.to_integer(value) > @max_body_bytes -> {:error, :too_large}
      true -> {:ok, {:length, String.to_integer(value)}}
    end
  end

  defp content_length(_values), do: {:error, "invalid Content-Length"}

  defp read_body(_socket, {:length, 0}), do: {:ok, ""}

  defp read_body(socket, {:length, length}) do
    :inet.setopts(socket, packet: :raw)
    :gen_tcp.recv(socket, length, @body_timeout)
  end

  defp read_body(socket, :chunked), do: read_chunks(socket, [], 0)

  # Each chunk's size is checked before its bytes are read: past MAX_BODY_BYTES the answer
  # is 413 while the rest is still arriving.
  defp read_chunks(socket, acc, size) do
    with {:ok, line} <- read_line(socket),
         {:ok, chunk_size} <- chunk_size(line) do
      cond do
        chunk_size == 0 ->
          with :ok <- skip_trailers(socket, 0), do: {:ok, IO.iodata_to_binary(acc)}

        size + chunk_size > @max_body_bytes ->
          {:error, :too_large}

        true ->
          :inet.setopts(socket, packet: :raw)

          case :gen_tcp.recv(socket, chunk_size + 2, @body_timeout) do
            {:ok, <<data::binary-size(chunk_size), "\r\n">>} ->
              read_chunks(socket, [acc, data], size + chunk_size)

            {:ok, _} ->
              {:error, :malformed}

            error ->
              error
          end
      end
    end
  end

  defp read_line(socket) do
    :inet.setopts(socket, packet: :line)

    case :gen_tcp.recv(socket, 0, @body_timeout) do
      {:ok, line} -> if String.ends_with?(line, "\n"), do: {:ok, line}, else: {:error, :malformed}
      error -> error
    end
  end

  defp chunk_size(line) do
    [size | _extensions] = String.split(line, ";", parts: 2)
    size = String.trim(size)

    if size =~ ~r/\A[0-9A-Fa-f]{1,16}\z/,
      do: {:ok, String.to_integer(size, 16)},
      else: {:error, :malformed}
  end

  defp skip_trailers(_socket, count) when count > @max_headers, do: {:error, :malformed}

  defp skip_trailers(socket, count) do
    case read_line(socket) do
      {:ok, line} when line in ["\r\n", "\n"] -> :ok
      {:ok, _trailer} -> skip_trailers(socket, count + 1)
      error -> error
    end
  end

  @doc """
  Reads `{"event": "<name>", "data": <any JSON>}`. A string data is sent as its text,
  anything else as compact JSON.
  """
  def parse_publish(body) do
    with {:utf8, true} <- {:utf8, String.valid?(body)},
         {:ok, {:object, members}} <- Json.decode(body),
         {:ok, event} <- event_name(member(members, "event", "message")) do
      data = member(members, "data", nil)
      {:ok, event, if(is_binary(data), do: data, else: Json.encode(data))}
    else
      {:utf8, false} -> {:error, "body is not valid UTF-8"}
      {:error, :too_deep} -> {:error, "JSON nested deeper than 64 levels"}
      {:error, :invalid} -> {:error, "body is not JSON"}
      {:error, problem} -> {:error, problem}
      {:ok, _not_an_object} -> {:error, "body must be a JSON object"}
    end
  end

  # the last of repeated keys wins, as in JavaScript
  defp member(members, key, default) do
    case members |> Enum.reverse() |> List.keyfind(key, 0) do
      {^key, value} -> value
      nil -> default
    end
  end

  defp event_name(name) when is_binary(name) do
    if name != "" and length(String.to_charlist(name)) <= @max_event_name and
         not String.contains?(name, ["\r", "\n"]),
       do: {:ok, name},
       else: {:error, "event must be 1-64 characters without line breaks"}
  end

  defp event_name(_name), do: {:error, "event must be a string"}

  defp json_media_type?(nil), do: false

  defp json_media_type?(value) do
    [media_type | _parameters] = String.split(value, ";", parts: 2)
    String.downcase(String.trim(media_type)) == "application/json"
  end

  defp publish_authorized?(request, token), do: same?(bearer(request), token)

  defp stream_authorized?(request, token),
    do: same?(bearer(request), token) or same?(query_param(request, "token"), token)

  defp bearer(request) do
    case Regex.run(~r/\Abearer +(.+)\z/is, header(request, "authorization") || "") do
      [_, token] -> token
      nil -> nil
    end
  end

  # constant time: compares digests of equal length
  defp same?(nil, _token), do: false

  defp same?(given, token),
    do: :crypto.hash_equals(:crypto.hash(:sha256, given), :crypto.hash(:sha256, token))

  # Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, else ignored (nil).
  defp last_event_id(request) do
    value =
      case header(request, "last-event-id") do
        blank when blank in [nil, ""] -> query_param(request, "lastEventId")
        value -> value
      end

    if is_binary(value) and value =~ ~r/\A[0-9]{1,1024}\z/, do: String.to_integer(value)
  end

  defp health(state) do
    json(
      state,
      200,
      {:object, [{"status", "ok"}, {"clients", {:number, Integer.to_string(Hub.count())}}]}
    )
  end

  defp preflight(state) do
    respond(
      state,
      204,
      [
        {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
        {"Access-Control-Allow-Headers",
         "Last-Event-ID, Cache-Control, Content-Type, Authorization"},
        {"Access-Control-Max-Age", "86400"}
      ],
      ""
    )
  end

  defp unauthorized(state),
    do: error(state, 401, "unauthorized", [{"WWW-Authenticate", "Bearer"}])

  defp error(state, status, message, headers \\ []) do
    json(state, status, {:object, [{"error", message}]}, headers)
  end

  defp json(state, status, value, headers \\ []) do
    respond(state, status, [{"Content-Type", "application/json"} | headers], Json.encode(value))
  end

  # Answers, then either waits for the next request on this connection or closes it.
  defp respond(%{request: request} = state, status, headers, body) do
    close = request == nil or request.close or request.unread_body

    length =
      if status == 204, do: [], else: [{"Content-Length", Integer.to_string(byte_size(body))}]

    connection = if close, do: [{"Connection", "close"}], else: []

    :gen_tcp.send(state.socket, [
      head(status, headers ++ cors_headers(request) ++ length ++ connection),
      body
    ])

    if close do
      close_gently(state.socket)
      {:stop, :normal, state}
    else
      :inet.setopts(state.socket, packet: :http_bin, active: :once)
      {:noreply, expect_request(%{state | request: nil})}
    end
  end

  # Closing a socket with unread request bytes makes the kernel send a reset, which can
  # destroy the answer before the client reads it: stop writing, read for a moment, close.
  defp close_gently(socket) do
    :gen_tcp.shutdown(socket, :write)
    :inet.setopts(socket, packet: :raw, active: false)
    drain(socket, System.monotonic_time(:millisecond) + 1000)
  end

  defp drain(socket, deadline) do
    wait = deadline - System.monotonic_time(:millisecond)

    case wait > 0 and :gen_tcp.recv(socket, 0, wait) do
      {:ok, _} -> drain(socket, deadline)
      _ -> :gen_tcp.close(socket)
    end
  end

  defp head(status, headers) do
    [
      "HTTP/1.1 ",
      reason(status),
      "\r\n",
      Enum.map(headers, fn {name, value} -> [name, ": ", value, "\r\n"] end),
      "\r\n"
    ]
  end

  defp reason(200), do: "200 OK"
  defp reason(202), do: "202 Accepted"
  defp reason(204), do: "204 No Content"
  defp reason(400), do: "400 Bad Request"
  defp reason(401), do: "401 Unauthorized"
  defp reason(404), do: "404 Not Found"
  defp reason(405), do: "405 Method Not Allowed"
  defp reason(413), do: "413 Content Too Large"
  defp reason(415), do: "415 Unsupported Media Type"
  defp reason(503), do: "503 Service Unavailable"

  defp cors_headers(_request), do: [{"Access-Control-Allow-Origin", "*"}]

  # Request headers must be complete within @header_timeout of the connection (or of the
  # previous answer on it); a slow or silent client is closed.
  defp expect_request(state) do
    %{state | timer: :erlang.start_timer(@header_timeout, self(), :headers)}
  end

  defp next_packet(state) do
    :inet.setopts(state.socket, active: :once)
    {:noreply, state}
  end

  defp split_target({:abs_path, target}) do
    case String.split(target, "?", parts: 2) do
      [path, query] -> {path, query}
      [path] -> {path, ""}
    end
  end

  defp split_target(_other), do: {nil, ""}

  defp header(request, name) do
    case List.keyfind(request.headers, name, 0) do
      {_, value} -> value
      nil -> nil
    end
  end

  defp values(headers, name), do: for({^name, value} <- headers, do: value)

  # the first parameter of that name, URL-decoded; nil when absent or malformed
  defp query_param(request, name) do
    Enum.find_value(URI.query_decoder(request.query), fn
      {^name, value} -> value
      _ -> nil
    end)
  rescue
    ArgumentError -> nil
  end
end
