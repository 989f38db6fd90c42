defmodule SseServerWeb.HealthController do
  use Phoenix.Controller, formats: [:json]

  def show(conn, _params) do
    SseServerWeb.Reply.json(conn, 200, %{status: "ok", clients: SseServer.Hub.count()})
  end
end
