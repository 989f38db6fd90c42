defmodule SseServerWeb.Cors do
  @moduledoc "CORS headers on every response, errors included."
  @behaviour Plug
  import Plug.Conn

  @impl true
  def init(opts), do: opts

  @impl true
  def call(conn, _opts), do: put_resp_header(conn, "access-control-allow-origin", "*")
end
