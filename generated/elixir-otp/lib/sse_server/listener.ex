defmodule SseServer.Listener do
  @moduledoc """
  Owns the listening socket and accepts connections; each one gets its own
  `SseServer.Connection` process under the connection supervisor.
  """
  use Task, restart: :permanent

  alias SseServer.Connection

  def start_link(opts), do: Task.start_link(__MODULE__, :listen, [opts])

  def listen(opts) do
    {:ok, ip} = resolve(opts[:host])

    # Accepted sockets inherit these options. `packet: :http_bin` makes the runtime parse the
    # request line and headers; a connection switches to raw bytes for bodies and streams.
    {:ok, listener} =
      :gen_tcp.listen(opts[:port], [
        :binary,
        ip: ip,
        packet: :http_bin,
        packet_size: 16_384,
        active: false,
        reuseaddr: true,
        nodelay: true,
        backlog: 1024,
        # a client that stops reading fails a write after this long and is closed
        send_timeout: 5_000,
        send_timeout_close: true
      ])

    IO.puts("#{opts[:name]} listening on http://#{opts[:host]}:#{opts[:port]}")
    accept(listener, Keyword.take(opts, [:stream_token, :publish_token]))
  end

  defp accept(listener, config) do
    case :gen_tcp.accept(listener) do
      {:ok, socket} ->
        with {:ok, pid} <-
               DynamicSupervisor.start_child(
                 SseServer.ConnectionSupervisor,
                 {Connection, {socket, config}}
               ),
             :ok <- :gen_tcp.controlling_process(socket, pid) do
          send(pid, :socket_ready)
        else
          _ -> :gen_tcp.close(socket)
        end

      # out of file descriptors, say: wait a little instead of spinning
      {:error, reason} when reason != :closed ->
        Process.sleep(100)
    end

    accept(listener, config)
  end

  defp resolve(host) do
    host = String.to_charlist(host)

    with {:error, _} <- :inet.getaddr(host, :inet) do
      :inet.getaddr(host, :inet6)
    end
  end
end
