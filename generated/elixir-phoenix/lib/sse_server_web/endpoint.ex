defmodule SseServerWeb.Endpoint do
  use Phoenix.Endpoint, otp_app: :sse_server

  # No Plug.Parsers: POST /publish reads its own body, after the token and Content-Type checks,
  # capped at 64 KiB while it arrives.
  plug SseServerWeb.Cors
  plug SseServerWeb.Router
end
