import Config

# Read at every start: the environment configures the server (an empty variable counts as
# unset). Tokens are read in SseServer.Application, never stored in a file.
env = fn name ->
  case System.get_env(name) do
    "" -> nil
    value -> value
  end
end

host = env.("HOST") || "0.0.0.0"
port = String.to_integer(env.("PORT") || "3012")

ip =
  case :inet.parse_address(String.to_charlist(host)) do
    {:ok, ip} ->
      ip

    {:error, _} ->
      {:ok, ip} = host |> String.to_charlist() |> :inet.getaddr(:inet)
      ip
  end

config :sse_server, :listen, host: host, port: port

config :sse_server, SseServerWeb.Endpoint,
  http: [
    ip: ip,
    port: port,
    thousand_island_options: [
      # A connection whose request headers are not complete within 15 s is closed.
      read_timeout: 15_000,
      # SIGTERM: streams are ended first (see Application.prep_stop/1); the rest gets 3 s.
      shutdown_timeout: 3_000
    ]
  ]
