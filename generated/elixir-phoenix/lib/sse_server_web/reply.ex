defmodule SseServerWeb.Reply do
  @moduledoc "JSON answers; every error is {\"error\": \"...\"}."
  import Plug.Conn

  def json(conn, status, body) do
    conn
    |> put_resp_content_type("application/json", nil)
    |> send_resp(status, Jason.encode!(body))
  end

  def error(conn, status, message), do: json(conn, status, %{error: message})

  def unauthorized(conn) do
    conn
    |> put_resp_header("www-authenticate", "Bearer")
    |> error(401, "missing or wrong token")
  end
end
