defmodule SseServer.MixProject do
  use Mix.Project

  def project do
    [
      app: :sse_server,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_options: [warnings_as_errors: true],
      # No dependencies: OTP's gen_tcp serves HTTP, lib/sse_server/json.ex reads and writes JSON.
      deps: []
    ]
  end

  def application do
    [
      extra_applications: [:logger, :crypto],
      mod: {SseServer.Application, []}
    ]
  end
end
