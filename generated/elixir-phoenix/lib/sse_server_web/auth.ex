defmodule SseServerWeb.Auth do
  @moduledoc "Tokens (read at start by the application) and what requests carry."
  import Plug.Conn

  @doc "With SSE_TOKEN set: the token as a Bearer header or as ?token= (either place is enough)."
  def stream_authorized?(conn) do
    case :persistent_term.get({__MODULE__, :stream_token}) do
      nil ->
        true

      token ->
        same_token?(bearer_token(conn), token) or same_token?(query_param(conn, "token"), token)
    end
  end

  def publish_authorized?(conn) do
    same_token?(bearer_token(conn), :persistent_term.get({__MODULE__, :publish_token}))
  end

  @doc "`Authorization: Bearer <token>`, the scheme in any case."
  def bearer_token(conn) do
    with [header | _] <- get_req_header(conn, "authorization"),
         [scheme, rest] <- String.split(header, " ", parts: 2),
         "bearer" <- String.downcase(scheme) do
      String.trim_leading(rest, " ")
    else
      _ -> nil
    end
  end

  @doc "Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, anything else is ignored."
  def last_event_id(conn) do
    value =
      case get_req_header(conn, "last-event-id") do
        [value | _] when value != "" -> value
        _ -> query_param(conn, "lastEventId")
      end

    if is_binary(value) and value =~ ~r/\A[0-9]{1,1024}\z/, do: String.to_integer(value)
  end

  # Constant time for tokens of the same length.
  defp same_token?(nil, _want), do: false
  defp same_token?(given, want), do: Plug.Crypto.secure_compare(given, want)

  # The first value of a query parameter (Plug's params keep the last); nil when absent or
  # not decodable.
  defp query_param(conn, name) do
    conn.query_string
    |> URI.query_decoder()
    |> Enum.find_value(fn
      {^name, value} -> value
      _ -> nil
    end)
  rescue
    ArgumentError -> nil
  end
end
