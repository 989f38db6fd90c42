defmodule SseServer.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # Tokens come from the environment only (an empty variable counts as unset).
    stream_token = env("SSE_TOKEN")

    publish_token = env("SSE_PUBLISH_TOKEN") || make_publish_token()
    :persistent_term.put({SseServerWeb.Auth, :stream_token}, stream_token)
    :persistent_term.put({SseServerWeb.Auth, :publish_token}, publish_token)

    children = [SseServer.Hub, SseServerWeb.Endpoint]
    options = [strategy: :one_for_one, name: SseServer.Supervisor]

    with {:ok, pid} <- Supervisor.start_link(children, options) do
      listen = Application.fetch_env!(:sse_server, :listen)
      name = SseServer.Hub.server_name()
      IO.puts("#{name} listening on http://#{listen[:host]}:#{listen[:port]}")
      {:ok, pid}
    end
  end

  # SIGTERM stops the applications; end the open streams first, or the HTTP server would wait
  # for them.
  @impl true
  def prep_stop(state) do
    SseServer.Hub.close()
    state
  end

  defp env(name) do
    case System.get_env(name) do
      "" -> nil
      value -> value
    end
  end

  # 128 bits from the CSPRNG, logged once so the operator can publish.
  defp make_publish_token do
    token = Base.encode16(:crypto.strong_rand_bytes(16), case: :lower)
    IO.puts("publish token: #{token} (set SSE_PUBLISH_TOKEN to choose your own)")
    token
  end
end
