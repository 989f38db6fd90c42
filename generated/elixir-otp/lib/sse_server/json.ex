defmodule SseServer.Json do
  @moduledoc """
  JSON text in and out. OTP 25 ships no JSON module and this project takes no dependencies,
  so this is a small strict RFC 8259 reader and a compact writer.

  Values: objects are `{:object, [{key, value}]}` (key order kept), arrays are lists, strings
  are binaries, numbers are `{:number, text}` (written back exactly as they came), and
  `true`, `false`, `nil`.
  """

  @max_json_depth 64

  @type value ::
          {:object, [{String.t(), value}]}
          | [value]
          | String.t()
          | {:number, String.t()}
          | boolean
          | nil

  @spec encode(value) :: binary
  def encode(value), do: IO.iodata_to_binary(write(value))

  @doc "Reads one JSON text from valid UTF-8; `{:error, :too_deep}` past #{@max_json_depth} levels."
  @spec decode(binary) :: {:ok, value} | {:error, :invalid | :too_deep}
  def decode(text) when is_binary(text) do
    {value, rest} = value(skip_space(text), 0)

    case skip_space(rest) do
      "" -> {:ok, value}
      _ -> {:error, :invalid}
    end
  catch
    :throw, reason -> {:error, reason}
  end

  defp value(<<?{, rest::binary>>, depth), do: object(skip_space(rest), nest(depth))
  defp value(<<?[, rest::binary>>, depth), do: array(skip_space(rest), nest(depth))
  defp value(<<?", rest::binary>>, _depth), do: string(rest, "")
  defp value(<<"true", rest::binary>>, _depth), do: {true, rest}
  defp value(<<"false", rest::binary>>, _depth), do: {false, rest}
  defp value(<<"null", rest::binary>>, _depth), do: {nil, rest}
  defp value(<<c, _::binary>> = text, _depth) when c == ?- or c in ?0..?9, do: number(text)
  defp value(_, _depth), do: throw(:invalid)

  defp nest(depth) when depth >= @max_json_depth, do: throw(:too_deep)
  defp nest(depth), do: depth + 1

  defp object(<<?}, rest::binary>>, _depth), do: {{:object, []}, rest}
  defp object(text, depth), do: members(text, depth, [])

  defp members(<<?", rest::binary>>, depth, acc) do
    {key, rest} = string(rest, "")

    case skip_space(rest) do
      <<?:, rest::binary>> ->
        {value, rest} = value(skip_space(rest), depth)
        acc = [{key, value} | acc]

        case skip_space(rest) do
          <<?,, rest::binary>> -> members(skip_space(rest), depth, acc)
          <<?}, rest::binary>> -> {{:object, Enum.reverse(acc)}, rest}
          _ -> throw(:invalid)
        end

      _ ->
        throw(:invalid)
    end
  end

  defp members(_, _depth, _acc), do: throw(:invalid)

  defp array(<<?], rest::binary>>, _depth), do: {[], rest}
  defp array(text, depth), do: elements(text, depth, [])

  defp elements(text, depth, acc) do
    {value, rest} = value(text, depth)

    case skip_space(rest) do
      <<?,, rest::binary>> -> elements(skip_space(rest), depth, [value | acc])
      <<?], rest::binary>> -> {Enum.reverse([value | acc]), rest}
      _ -> throw(:invalid)
    end
  end

  # Copies runs of plain characters at once; the caller has checked that the text is UTF-8.
  defp string(text, acc) do
    n = plain(text, 0)
    <<run::binary-size(n), rest::binary>> = text
    acc = <<acc::binary, run::binary>>

    case rest do
      <<?", rest::binary>> -> {acc, rest}
      <<?\\, rest::binary>> -> escape(rest, acc)
      _ -> throw(:invalid)
    end
  end

  defp plain(<<c, rest::binary>>, n) when c >= 0x20 and c != ?" and c != ?\\,
    do: plain(rest, n + 1)

  defp plain(_, n), do: n

  defp escape(<<?", rest::binary>>, acc), do: string(rest, <<acc::binary, ?">>)
  defp escape(<<?\\, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\\>>)
  defp escape(<<?/, rest::binary>>, acc), do: string(rest, <<acc::binary, ?/>>)
  defp escape(<<?b, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\b>>)
  defp escape(<<?f, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\f>>)
  defp escape(<<?n, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\n>>)
  defp escape(<<?r, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\r>>)
  defp escape(<<?t, rest::binary>>, acc), do: string(rest, <<acc::binary, ?\t>>)

  defp escape(<<?u, hex::binary-size(4), rest::binary>>, acc) do
    case {hex4(hex), rest} do
      {high, <<?\\, ?u, low::binary-size(4), rest::binary>>} when high in 0xD800..0xDBFF ->
        case hex4(low) do
          low when low in 0xDC00..0xDFFF ->
            point = 0x10000 + Bitwise.bsl(high - 0xD800, 10) + (low - 0xDC00)
            string(rest, <<acc::binary, point::utf8>>)

          _ ->
            throw(:invalid)
        end

      # a lone surrogate has no UTF-8 form
      {point, _} when point in 0xD800..0xDFFF ->
        throw(:invalid)

      {point, rest} ->
        string(rest, <<acc::binary, point::utf8>>)
    end
  end

  defp escape(_, _acc), do: throw(:invalid)

  defp hex4(hex) do
    if hex =~ ~r/\A[0-9A-Fa-f]{4}\z/, do: String.to_integer(hex, 16), else: throw(:invalid)
  end

  # -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  defp number(text) do
    n = sign(text, 0)
    n = int_part(text, n)
    n = fraction(text, n)
    n = exponent(text, n)
    <<number::binary-size(n), rest::binary>> = text
    {{:number, number}, rest}
  end

  defp sign(text, n), do: if(byte(text, n) == ?-, do: n + 1, else: n)

  defp int_part(text, n) do
    case byte(text, n) do
      ?0 -> n + 1
      c when c in ?1..?9 -> digits(text, n + 1)
      _ -> throw(:invalid)
    end
  end

  defp fraction(text, n) do
    if byte(text, n) == ?., do: digits1(text, n + 1), else: n
  end

  defp exponent(text, n) do
    if byte(text, n) in [?e, ?E] do
      n = n + 1
      n = if byte(text, n) in [?+, ?-], do: n + 1, else: n
      digits1(text, n)
    else
      n
    end
  end

  defp digits1(text, n) do
    if byte(text, n) in ?0..?9, do: digits(text, n + 1), else: throw(:invalid)
  end

  defp digits(text, n), do: if(byte(text, n) in ?0..?9, do: digits(text, n + 1), else: n)

  defp byte(text, n) when n < byte_size(text), do: :binary.at(text, n)
  defp byte(_text, _n), do: nil

  defp skip_space(<<c, rest::binary>>) when c in [?\s, ?\t, ?\n, ?\r], do: skip_space(rest)
  defp skip_space(text), do: text

  defp write({:object, members}) do
    [?{, Enum.map_intersperse(members, ?,, fn {k, v} -> [write_string(k), ?:, write(v)] end), ?}]
  end

  defp write(list) when is_list(list), do: [?[, Enum.map_intersperse(list, ?,, &write/1), ?]]
  defp write({:number, text}), do: text
  defp write(true), do: "true"
  defp write(false), do: "false"
  defp write(nil), do: "null"
  defp write(string) when is_binary(string), do: write_string(string)

  defp write_string(string), do: [?", escape_string(string, string, 0, 0), ?"]

  # Walks the string once, copying the runs between characters that need an escape.
  defp escape_string(<<>>, all, start, len), do: [binary_part(all, start, len)]

  defp escape_string(<<c, rest::binary>>, all, start, len) when c < 0x20 or c == ?" or c == ?\\ do
    [binary_part(all, start, len), escaped(c) | escape_string(rest, all, start + len + 1, 0)]
  end

  defp escape_string(<<_, rest::binary>>, all, start, len),
    do: escape_string(rest, all, start, len + 1)

  defp escaped(?"), do: "\\\""
  defp escaped(?\\), do: "\\\\"
  defp escaped(?\n), do: "\\n"
  defp escaped(?\r), do: "\\r"
  defp escaped(?\t), do: "\\t"
  defp escaped(c), do: "\\u00" <> Base.encode16(<<c>>)
end
