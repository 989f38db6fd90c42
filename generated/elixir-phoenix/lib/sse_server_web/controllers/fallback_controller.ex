defmodule SseServerWeb.FallbackController do
  use Phoenix.Controller, formats: [:json]

  alias SseServerWeb.Reply

  def preflight(conn, _params) do
    conn
    |> put_resp_header("access-control-allow-methods", "GET, POST, OPTIONS")
    |> put_resp_header("access-control-allow-headers", "Last-Event-ID, Cache-Control, Content-Type, Authorization")
    |> put_resp_header("access-control-max-age", "86400")
    |> send_resp(204, "")
  end

  def method_not_allowed(conn, _params) do
    conn
    |> put_resp_header("allow", conn.assigns.allow)
    |> Reply.error(405, "method not allowed")
  end

  def not_found(conn, _params), do: Reply.error(conn, 404, "not found")
end
