defmodule SseServer.MixProject do
  use Mix.Project

  def project do
    [
      app: :sse_server,
      version: "0.1.0",
      elixir: "~> 1.15",
      start_permanent: Mix.env() == :prod,
      deps: deps()
    ]
  end

  def application do
    [
      mod: {SseServer.Application, []},
      extra_applications: [:logger, :crypto]
    ]
  end

  # Pinned to the versions this project was written against; `mix deps.get` writes mix.lock.
  defp deps do
    [
      {:phoenix, "1.8.16"},
      {:bandit, "1.12.4"},
      {:jason, "1.4.4"}
    ]
  end
end
