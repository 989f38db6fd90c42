defmodule SseServerWeb.FallbackController do
  use Phoenix.Controller, formats: [:json]

  alias SseServerWeb.Reply

  def preflight(conn, _params) do
    conn
    |> put_resp_header("access-control-allow-methods", "GET, POST, OPTIONS")
    |> put_resp_header(
      "access-control-allow-headers",
      "Last-Event-ID, Cache-Control, Content-Type, Authorization"
    )
    |> put_resp_header("access-control-max-age", "86400")
    |> send_resp(204, "")
  end

  # 405, with the methods its path allows
  def stream_not_allowed(conn, _params), do: method_not_allowed(conn, "GET, OPTIONS")
  def publish_not_allowed(conn, _params), do: method_not_allowed(conn, "POST, OPTIONS")
  def health_not_allowed(conn, _params), do: method_not_allowed(conn, "GET")

  def not_found(conn, _params), do: Reply.error(conn, 404, "not found")

  defp method_not_allowed(conn, allow) do
    conn
    |> put_resp_header("allow", allow)
    |> Reply.error(405, "method not allowed")
  end
end
