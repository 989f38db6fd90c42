defmodule SseServerWeb.StreamController do
  use Phoenix.Controller, formats: [:json]

  alias SseServer.Hub
  alias SseServerWeb.{Auth, Reply}

  @hello "retry: 3000\n\n"
  # Bandit notices that a client went away only when a write to it fails: each stream also
  # gets a one-line comment every second, so a gone client is forgotten within two seconds.
  @liveness_probe_ms 1000

  # The stream runs in the connection's own process, which receives the hub's frames.
  def stream(conn, _params) do
    with true <- Auth.stream_authorized?(conn) || :unauthorized,
         {:ok, replay} <- Hub.subscribe(Auth.last_event_id(conn)) do
      conn =
        conn
        |> put_resp_header("content-type", "text/event-stream; charset=utf-8")
        |> put_resp_header("cache-control", "no-store")
        |> put_resp_header("x-accel-buffering", "no")
        |> send_chunked(200)

      conn =
        case send_chunk(conn, [@hello | replay]) do
          {:ok, conn} -> loop(conn)
          {:error, _closed} -> conn
        end

      Hub.unsubscribe()
      conn
    else
      :unauthorized ->
        Reply.unauthorized(conn)

      {:error, :full} ->
        conn
        |> put_resp_header("retry-after", "1")
        |> Reply.error(503, "too many clients")
    end
  end

  defp loop(conn) do
    probe = Process.send_after(self(), :sse_probe, @liveness_probe_ms)

    receive do
      {:sse_frame, frame} ->
        Process.cancel_timer(probe)

        case send_chunk(conn, frame) do
          {:ok, conn} ->
            Hub.sent(byte_size(frame))
            loop(conn)

          {:error, _closed} ->
            conn
        end

      :sse_probe ->
        case send_chunk(conn, ":\n") do
          {:ok, conn} -> loop(conn)
          {:error, _closed} -> conn
        end

      # Shutdown: the hub ends every stream.
      :sse_close ->
        Process.cancel_timer(probe)
        conn
    end
  end

  # A client that went away: Bandit raises Bandit.HTTPError where Plug's docs show
  # {:error, :closed}; either way the stream ends.
  defp send_chunk(conn, data) do
    chunk(conn, data)
  rescue
    error in Bandit.HTTPError -> {:error, error.message}
  end
end
