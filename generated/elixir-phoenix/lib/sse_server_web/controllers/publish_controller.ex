defmodule SseServerWeb.PublishController do
  use Phoenix.Controller, formats: [:json]

  alias SseServer.Hub
  alias SseServerWeb.{Auth, Reply}

  @max_body_bytes 64 * 1024
  @max_event_name 64
  @max_json_depth 64

  @doc "Checks, in order: token (401), Content-Type (415), size (413), body (400)."
  def publish(conn, _params) do
    cond do
      not Auth.publish_authorized?(conn) -> Reply.unauthorized(conn)
      not json?(conn) -> Reply.error(conn, 415, "Content-Type must be application/json")
      content_length(conn) > @max_body_bytes -> too_large(conn)
      true -> read_and_publish(conn)
    end
  end

  defp read_and_publish(conn) do
    # read_body/2 stops once :length bytes have arrived and answers {:more, ...}: a chunked
    # body over the cap is refused without reading the rest.
    case read_body(conn, length: @max_body_bytes, read_length: @max_body_bytes) do
      {:ok, body, conn} ->
        case parse(body) do
          {:ok, event, data} -> Reply.json(conn, 202, %{id: Hub.publish(event, data)})
          {:error, problem} -> Reply.error(conn, 400, problem)
        end

      {:more, _partial, conn} ->
        too_large(conn)

      {:error, _reason} ->
        Reply.error(conn, 400, "cannot read body")
    end
  end

  # The rest of the body is not read: close the connection rather than drain it.
  defp too_large(conn) do
    conn
    |> put_resp_header("connection", "close")
    |> Reply.error(413, "body over 64 KiB")
  end

  defp json?(conn) do
    case get_req_header(conn, "content-type") do
      [value | _] ->
        value |> String.split(";", parts: 2) |> hd() |> String.trim() |> String.downcase() ==
          "application/json"

      [] ->
        false
    end
  end

  defp content_length(conn) do
    with [value | _] <- get_req_header(conn, "content-length"),
         {length, ""} <- Integer.parse(value) do
      length
    else
      _ -> 0
    end
  end

  # {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else
  # as compact JSON (objects keep their key order).
  defp parse(body) do
    cond do
      not String.valid?(body) ->
        {:error, "body is not valid UTF-8"}

      too_deep?(body, 0, false) ->
        {:error, "body nests deeper than 64 levels"}

      true ->
        case Jason.decode(body, objects: :ordered_objects) do
          {:ok, %Jason.OrderedObject{values: fields}} -> fields(fields)
          {:ok, _other} -> {:error, "body must be a JSON object"}
          {:error, _reason} -> {:error, "body is not JSON"}
        end
    end
  end

  defp fields(fields) do
    event =
      case List.keyfind(fields, "event", 0) do
        nil -> "message"
        {_, event} -> event
      end

    cond do
      not is_binary(event) ->
        {:error, "event must be a string"}

      event == "" or length(String.to_charlist(event)) > @max_event_name or
          String.contains?(event, ["\r", "\n"]) ->
        {:error, "event must be 1-64 characters without line breaks"}

      true ->
        data =
          case List.keyfind(fields, "data", 0) do
            {_, text} when is_binary(text) -> text
            {_, value} -> Jason.encode!(value)
            nil -> "null"
          end

        {:ok, event, data}
    end
  end

  # Whether arrays and objects nest deeper than @max_json_depth.
  defp too_deep?(<<>>, _depth, _in_string), do: false
  defp too_deep?(<<?\\, _escaped, rest::binary>>, depth, true), do: too_deep?(rest, depth, true)

  defp too_deep?(<<?", rest::binary>>, depth, in_string),
    do: too_deep?(rest, depth, not in_string)

  defp too_deep?(<<_, rest::binary>>, depth, true), do: too_deep?(rest, depth, true)

  defp too_deep?(<<c, rest::binary>>, depth, false) when c in [?{, ?[] do
    depth + 1 > @max_json_depth or too_deep?(rest, depth + 1, false)
  end

  defp too_deep?(<<c, rest::binary>>, depth, false) when c in [?}, ?]],
    do: too_deep?(rest, depth - 1, false)

  defp too_deep?(<<_, rest::binary>>, depth, false), do: too_deep?(rest, depth, false)
end
