using System;
using System.Collections.Generic;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace SseServer
{
    /// <summary>One open stream: the frames waiting for it, bounded in bytes.</summary>
    sealed class Client
    {
        public const long MaxQueueBytes = 1 << 20;

        readonly Queue<byte[]> frames = new Queue<byte[]>();
        readonly SemaphoreSlim ready = new SemaphoreSlim(0);
        long queuedBytes;
        bool closed;

        /// <summary>The connection's socket (see Program.SocketOf); null where it cannot be reached.</summary>
        public readonly Socket Socket;

        public Client(Socket socket) { Socket = socket; }

        /// <summary>Queues a frame; false when the queue would pass MaxQueueBytes.</summary>
        public bool Offer(byte[] frame)
        {
            lock (frames)
            {
                if (closed || queuedBytes + frame.Length > MaxQueueBytes) return false;
                frames.Enqueue(frame);
                queuedBytes += frame.Length;
            }
            ready.Release();
            return true;
        }

        /// <summary>The next frame; null after `wait` with nothing queued, or once closed.</summary>
        public async Task<byte[]> Next(TimeSpan wait)
        {
            await ready.WaitAsync(wait).ConfigureAwait(false);
            lock (frames)
            {
                if (closed || frames.Count == 0) return null;
                byte[] frame = frames.Dequeue();
                queuedBytes -= frame.Length;
                return frame;
            }
        }

        public bool Closed { get { lock (frames) return closed; } }

        /// <summary>
        /// Ends the stream and its connection now. A blocked write to a client that stopped
        /// reading only returns once the socket is shut down.
        /// </summary>
        public void Close()
        {
            lock (frames)
            {
                if (closed) return;
                closed = true;
            }
            ready.Release();
            try { Socket?.Shutdown(SocketShutdown.Both); }
            catch (SocketException) { }
            catch (ObjectDisposedException) { }
        }
    }

    /// <summary>The hub: the id counter, the history and the set of clients, under one lock.</summary>
    sealed class Hub
    {
        readonly object gate = new object();
        readonly HashSet<Client> clients = new HashSet<Client>();
        readonly Queue<KeyValuePair<long, byte[]>> history = new Queue<KeyValuePair<long, byte[]>>();
        long lastId;

        /// <summary>
        /// Takes the kept events after lastEventId and joins the broadcast in one step (one
        /// lock), so that no event is lost or sent twice. Null when the server is full.
        /// </summary>
        public Client Subscribe(long? lastEventId, Socket socket, out List<byte[]> replay)
        {
            replay = new List<byte[]>();
            lock (gate)
            {
                if (clients.Count >= Program.MaxClients) return null;
                if (lastEventId.HasValue)
                    foreach (var kept in history)
                        if (kept.Key > lastEventId.Value) replay.Add(kept.Value);
                var client = new Client(socket);
                clients.Add(client);
                return client;
            }
        }

        public void Unsubscribe(Client client)
        {
            lock (gate) clients.Remove(client);
            client.Close();
        }

        /// <summary>Ends every open stream (at shutdown).</summary>
        public void CloseAll()
        {
            List<Client> all;
            lock (gate)
            {
                all = new List<Client>(clients);
                clients.Clear();
            }
            foreach (var client in all) client.Close();
        }

        public int Count()
        {
            lock (gate) return clients.Count;
        }

        /// <summary>Assigns the next id, keeps the event and queues it for every client; never blocks on one.</summary>
        public long Publish(string eventName, string data)
        {
            var dropped = new List<Client>();
            long id;
            lock (gate)
            {
                id = ++lastId;
                byte[] frame = Frame(id, eventName, data);
                history.Enqueue(new KeyValuePair<long, byte[]>(id, frame));
                if (history.Count > Program.HistorySize) history.Dequeue();
                foreach (var client in clients)
                    if (!client.Offer(frame)) dropped.Add(client);
                foreach (var client in dropped) clients.Remove(client);
            }
            // too slow (or already gone): dropped, and its connection closed
            foreach (var client in dropped) client.Close();
            return id;
        }

        /// <summary>One event; every line of data (split on CRLF, CR or LF) gets its own "data: ".</summary>
        public static byte[] Frame(long id, string eventName, string data)
        {
            var sb = new StringBuilder();
            sb.Append("id: ").Append(id.ToString(CultureInfo.InvariantCulture)).Append('\n');
            sb.Append("event: ").Append(eventName).Append('\n');
            foreach (string line in data.Replace("\r\n", "\n").Replace('\r', '\n').Split('\n'))
                sb.Append("data: ").Append(line).Append('\n');
            sb.Append('\n');
            return Encoding.UTF8.GetBytes(sb.ToString());
        }
    }
}
