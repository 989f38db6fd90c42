defmodule SseServer.Hub do
  @moduledoc """
  The hub: the id counter, the history and the set of clients (connection processes).

  Every change goes through this one process, so taking the replay and joining the broadcast
  is one step: no event is lost or sent twice in between.
  """
  use GenServer

  @history_size 100
  @max_clients 10000
  @max_queue_bytes 1_048_576

  def start_link(_opts), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc """
  Joins the calling process to the broadcast and returns the kept events after
  `last_event_id` (nil: none). The client receives `{:frame, binary}` messages and takes
  each frame's size off `queued` once it has written it.
  """
  def subscribe(last_event_id), do: GenServer.call(__MODULE__, {:subscribe, last_event_id})

  def unsubscribe(client), do: GenServer.cast(__MODULE__, {:unsubscribe, client})

  @doc "Assigns the next id, keeps the event and queues it for every client; returns the id."
  def publish(event, data), do: GenServer.call(__MODULE__, {:publish, event, data})

  def count, do: GenServer.call(__MODULE__, :count)

  @doc "One event on the wire; every line of data (split on CRLF, CR or LF) gets its own `data: `."
  def frame(id, event, data) do
    lines = :binary.split(data, ["\r\n", "\r", "\n"], [:global])

    IO.iodata_to_binary([
      "id: ",
      Integer.to_string(id),
      "\nevent: ",
      event,
      ?\n,
      Enum.map(lines, &["data: ", &1, ?\n]),
      ?\n
    ])
  end

  @impl true
  def init(nil), do: {:ok, %{last_id: 0, history: :queue.new(), clients: %{}}}

  @impl true
  def handle_call({:subscribe, _last_event_id}, _from, state)
      when map_size(state.clients) >= @max_clients do
    {:reply, {:error, :full}, state}
  end

  def handle_call({:subscribe, last_event_id}, {pid, _tag}, state) do
    replay =
      if last_event_id,
        do: for({id, frame} <- :queue.to_list(state.history), id > last_event_id, do: frame),
        else: []

    queued = :counters.new(1, [])
    client = %{queued: queued, monitor: Process.monitor(pid)}
    {:reply, {:ok, queued, replay}, put_in(state.clients[pid], client)}
  end

  def handle_call({:publish, event, data}, _from, state) do
    id = state.last_id + 1
    frame = frame(id, event, data)
    size = byte_size(frame)
    clients = Map.filter(state.clients, fn {pid, client} -> deliver(pid, client, frame, size) end)

    {:reply, id,
     %{state | last_id: id, history: keep(state.history, {id, frame}), clients: clients}}
  end

  def handle_call(:count, _from, state), do: {:reply, map_size(state.clients), state}

  @impl true
  def handle_cast({:unsubscribe, pid}, state), do: {:noreply, forget(state, pid)}

  @impl true
  def handle_info({:DOWN, _ref, :process, pid, _reason}, state),
    do: {:noreply, forget(state, pid)}

  defp forget(state, pid) do
    case Map.pop(state.clients, pid) do
      {nil, _} ->
        state

      {client, clients} ->
        Process.demonitor(client.monitor, [:flush])
        %{state | clients: clients}
    end
  end

  # Never blocks: a send only adds to the client's mailbox. A client whose unwritten frames
  # pass MAX_QUEUE_BYTES is dropped: its process ends, and its socket closes once the runtime
  # gives up flushing what it holds for it (the socket's send_timeout, 5 s).
  defp deliver(pid, client, frame, size) do
    if :counters.get(client.queued, 1) + size > @max_queue_bytes do
      Process.demonitor(client.monitor, [:flush])
      Process.exit(pid, {:shutdown, :too_slow})
      false
    else
      :counters.add(client.queued, 1, size)
      send(pid, {:frame, frame})
      true
    end
  end

  defp keep(history, event) do
    history = :queue.in(event, history)
    if :queue.len(history) > @history_size, do: :queue.drop(history), else: history
  end
end
