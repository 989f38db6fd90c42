defmodule SseServer.Hub do
  @moduledoc """
  The hub: the id counter, the history and the set of clients, in one process, so joining
  and taking the replay happen in one step.

  Each client is the process serving its stream (a Bandit connection process). Frames reach
  it as messages; the hub counts the bytes a client has not written yet, and a client more
  than 1 MiB behind is killed, which closes its connection.
  """
  use GenServer
  import Bitwise

  @server_name "sse-server"
  @history_size 100
  @max_clients 10000
  @max_queue_bytes 1 <<< 20
  @heartbeat_seconds 15
  # Each timed event gets one timer for the whole server; data gains a "timestamp".
  # {name, every (ms), data}: data is the spec's JSON object as text, keys in the spec's order.
  @timed_events [
    {
      "clock",
      1000,
      "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"
    },
    {
      "stock-price",
      2000,
      "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"
    }
  ]

  def server_name, do: @server_name

  def start_link(_opts), do: GenServer.start_link(__MODULE__, :ok, name: __MODULE__)

  @doc "Joins the calling process to the broadcast; returns the frames to replay first."
  def subscribe(last_event_id),
    do: GenServer.call(__MODULE__, {:subscribe, self(), last_event_id})

  @doc "The calling client leaves (its stream ended)."
  def unsubscribe, do: GenServer.cast(__MODULE__, {:unsubscribe, self()})

  @doc "The calling client wrote `bytes` of its queued frames."
  def sent(bytes), do: GenServer.cast(__MODULE__, {:sent, self(), bytes})

  @doc "Assigns the next id, keeps the event and sends it to every client; returns the id."
  def publish(event, data), do: GenServer.call(__MODULE__, {:publish, event, data})

  def count, do: GenServer.call(__MODULE__, :count)

  @doc "Ends every open stream (shutdown)."
  def close, do: GenServer.call(__MODULE__, :close)

  @doc "One event; every line of data (split on CRLF, CR or LF) gets its own `data: `."
  def frame(id, event, data) do
    lines = for line <- String.split(data, ["\r\n", "\r", "\n"]), do: ["data: ", line, "\n"]
    IO.iodata_to_binary(["id: ", Integer.to_string(id), "\nevent: ", event, "\n", lines, "\n"])
  end

  @impl true
  def init(:ok) do
    for {{_name, every, _data}, index} <- Enum.with_index(@timed_events) do
      {:ok, _} = :timer.send_interval(every, {:tick, index})
    end

    {:ok, _} = :timer.send_interval(@heartbeat_seconds * 1000, :heartbeat)
    {:ok, %{last_id: 0, history: [], clients: %{}, closed: false}}
  end

  @impl true
  def handle_call({:subscribe, pid, last_event_id}, _from, state) do
    cond do
      state.closed or map_size(state.clients) >= @max_clients ->
        {:reply, {:error, :full}, state}

      true ->
        ref = Process.monitor(pid)

        replay =
          if last_event_id,
            do: for({id, frame} <- Enum.reverse(state.history), id > last_event_id, do: frame),
            else: []

        {:reply, {:ok, replay}, put_in(state.clients[pid], %{ref: ref, queued: 0})}
    end
  end

  def handle_call({:publish, event, data}, _from, state) do
    {id, state} = do_publish(state, event, data)
    {:reply, id, state}
  end

  def handle_call(:count, _from, state), do: {:reply, map_size(state.clients), state}

  def handle_call(:close, _from, state) do
    for {pid, client} <- state.clients do
      Process.demonitor(client.ref, [:flush])
      send(pid, :sse_close)
    end

    {:reply, :ok, %{state | clients: %{}, closed: true}}
  end

  @impl true
  def handle_cast({:unsubscribe, pid}, state) do
    case Map.pop(state.clients, pid) do
      {nil, _clients} ->
        {:noreply, state}

      {client, clients} ->
        Process.demonitor(client.ref, [:flush])
        {:noreply, %{state | clients: clients}}
    end
  end

  def handle_cast({:sent, pid, bytes}, state) do
    case state.clients do
      %{^pid => client} ->
        {:noreply, put_in(state.clients[pid], %{client | queued: client.queued - bytes})}

      _ ->
        {:noreply, state}
    end
  end

  @impl true
  def handle_info({:tick, index}, state) do
    {name, _every, data} = Enum.at(@timed_events, index)
    {_id, state} = do_publish(state, name, with_timestamp(data))
    {:noreply, state}
  end

  def handle_info(:heartbeat, state), do: {:noreply, broadcast(state, ": heartbeat\n\n")}

  # The client's process ended: it went away, was dropped, or crashed.
  def handle_info({:DOWN, _ref, :process, pid, _reason}, state) do
    {:noreply, %{state | clients: Map.delete(state.clients, pid)}}
  end

  defp do_publish(state, event, data) do
    id = state.last_id + 1
    frame = frame(id, event, data)
    history = Enum.take([{id, frame} | state.history], @history_size)
    {id, broadcast(%{state | last_id: id, history: history}, frame)}
  end

  # Sends without ever waiting; a client whose queue would pass @max_queue_bytes is dropped.
  defp broadcast(state, frame) do
    size = byte_size(frame)

    clients =
      for {pid, client} <- state.clients, into: %{} do
        if client.queued + size > @max_queue_bytes do
          Process.demonitor(client.ref, [:flush])
          Process.exit(pid, :kill)
          {pid, :dropped}
        else
          send(pid, {:sse_frame, frame})
          {pid, %{client | queued: client.queued + size}}
        end
      end

    %{state | clients: :maps.filter(fn _pid, client -> client != :dropped end, clients)}
  end

  # The spec's JSON text with "timestamp" spliced in, keeping the spec's key order.
  defp with_timestamp(data) do
    timestamp = DateTime.utc_now() |> DateTime.truncate(:millisecond) |> DateTime.to_iso8601()
    head = binary_part(data, 0, byte_size(data) - 1)
    separator = if head == "{", do: "", else: ","
    head <> separator <> ~s("timestamp":") <> timestamp <> ~s("})
  end
end
