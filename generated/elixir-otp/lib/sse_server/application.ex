defmodule SseServer.Application do
  @moduledoc """
  Starts the hub, the connection supervisor, one timer per timed event, and the listener
  (last, so that on shutdown it stops accepting first).
  """
  use Application

  alias SseServer.Hub

  @server_name "sse-server"
  # {name, every (ms), data}: data is the spec's JSON object as text, keys in the spec's
  # order (an Elixir map would sort them); each tick splices a "timestamp" into it.
  @timed_events [
    {
      "clock",
      1000,
      "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"
    },
    {
      "stock-price",
      2000,
      "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"
    }
  ]

  @impl true
  def start(_type, _args) do
    config = Application.get_all_env(:sse_server)

    publish_token = publish_token(config[:publish_token])

    listener = [
      name: @server_name,
      host: config[:host],
      port: config[:port],
      stream_token: config[:stream_token],
      publish_token: publish_token
    ]

    children =
      [Hub, {DynamicSupervisor, name: SseServer.ConnectionSupervisor, strategy: :one_for_one}] ++
        for(
          {name, every, data} <- @timed_events,
          do:
            Supervisor.child_spec({Task, fn -> every(name, every, data) end},
              id: name,
              restart: :permanent
            )
        ) ++
        [{SseServer.Listener, listener}]

    Supervisor.start_link(children, strategy: :one_for_one, name: SseServer.Supervisor)
  end

  # SSE_PUBLISH_TOKEN, else a random one, logged once
  defp publish_token(nil) do
    token = Base.encode16(:crypto.strong_rand_bytes(16), case: :lower)
    IO.puts("publish token: #{token} (set SSE_PUBLISH_TOKEN to choose your own)")
    token
  end

  defp publish_token(token), do: token

  # Publishes `data` plus "timestamp" (ISO-8601 UTC) every `every` ms, for the whole server.
  defp every(name, every, data) do
    head = if data == "{}", do: "{", else: String.replace_suffix(data, "}", ",")
    :timer.send_interval(every, :tick)
    tick(name, head)
  end

  defp tick(name, head) do
    receive do
      :tick ->
        timestamp = DateTime.utc_now() |> DateTime.truncate(:millisecond) |> DateTime.to_iso8601()
        Hub.publish(name, head <> ~s("timestamp":"#{timestamp}"}))
    end

    tick(name, head)
  end
end
