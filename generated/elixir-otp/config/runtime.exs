import Config

# Read at every start (also in a release): the environment configures the server.
# An empty variable counts as unset.
env = fn name ->
  case System.get_env(name) do
    nil -> nil
    "" -> nil
    value -> value
  end
end

config :sse_server,
  host: env.("HOST") || "0.0.0.0",
  port: String.to_integer(env.("PORT") || "3022"),
  stream_token: env.("SSE_TOKEN"),
  publish_token: env.("SSE_PUBLISH_TOKEN")
