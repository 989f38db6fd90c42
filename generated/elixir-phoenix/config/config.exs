import Config

config :sse_server, SseServerWeb.Endpoint,
  adapter: Bandit.PhoenixAdapter,
  url: [host: "localhost"],
  render_errors: [formats: [json: SseServerWeb.ErrorJSON], layout: false],
  server: true

config :phoenix, :json_library, Jason

config :logger, :default_formatter, format: "$time [$level] $message\n"
