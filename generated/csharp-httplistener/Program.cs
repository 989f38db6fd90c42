// sse-server: a Server-Sent Events server on System.Net.HttpListener alone (no packages).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
#if MONO
using Mono.Unix;
using Mono.Unix.Native;
#else
using System.Runtime.InteropServices;
#endif

namespace SseServer
{
    static class Program
    {
        const string ServerName = "sse-server";
        const int DefaultPort = 3021;
        const string StreamPath = "/events";
        const int RetryMs = 3000;
        const int HeartbeatSeconds = 15;
        public const int HistorySize = 100;
        public const int MaxClients = 10000;
        const int MaxBodyBytes = 64 * 1024;
        const int MaxEventName = 64;
        /// <summary>How often an idle stream checks that its client is still there.</summary>
        static readonly TimeSpan WatchInterval = TimeSpan.FromSeconds(1);

        // name, every (ms), data: the spec's JSON object as text, keys in the spec's order
        static readonly Tuple<string, int, string>[] TimedEvents =
        {
            Tuple.Create("clock", 1000, "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
            Tuple.Create("stock-price", 2000, "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"),
        };

        static readonly Hub hub = new Hub();
        static string streamToken;
        static string publishToken;
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        static int Main()
        {
            streamToken = Env("SSE_TOKEN");
            publishToken = Env("SSE_PUBLISH_TOKEN");
            if (publishToken == null)
            {
                publishToken = NewToken();
                Console.WriteLine("publish token: " + publishToken + " (set SSE_PUBLISH_TOKEN to choose your own)");
            }
            string host = Env("HOST") ?? "0.0.0.0";
            int port = int.Parse(Env("PORT") ?? DefaultPort.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

            // "+" takes every request on the port whatever its Host header; a named host binds
            // that address and takes requests addressed to it.
            var listener = new HttpListener();
            bool anyHost = host == "0.0.0.0" || host == "::" || host == "*" || host == "+";
            listener.Prefixes.Add(string.Format(CultureInfo.InvariantCulture, "http://{0}:{1}/", anyHost ? "+" : host, port));
            listener.Start();
#if MONO
            var headerTimeout = HeaderTimeout.Watch(listener);
#endif
            Console.WriteLine("{0} listening on http://{1}:{2}", ServerName, host, port);

            // one timer per timed event for the whole server
            var timers = new List<Timer>();
            foreach (var timed in TimedEvents)
            {
                var name = timed.Item1;
                // "timestamp" is spliced in before the closing brace: the text is not parsed
                var head = timed.Item3 == "{}" ? "{" : timed.Item3.Substring(0, timed.Item3.Length - 1) + ",";
                timers.Add(new Timer(_ => hub.Publish(name, WithTimestamp(head)), null, timed.Item2, timed.Item2));
            }

            Task.Run(() => Accept(listener));
            WaitForSignal();

            Console.WriteLine("{0} stopping", ServerName);
            foreach (var timer in timers) timer.Dispose();
#if MONO
            headerTimeout.Dispose();
#endif
            // The streams end first, their sockets shut down; then the listener, which must not
            // hold shutdown past its 5 s on a connection it is still closing.
            hub.CloseAll();
            Task.Run(() => listener.Stop()).Wait(TimeSpan.FromSeconds(2));
            return 0;
        }

        static void WaitForSignal()
        {
#if MONO
            // Mono turns no signal into an event; Mono.Posix waits for them.
            UnixSignal.WaitAny(new[] { new UnixSignal(Signum.SIGTERM), new UnixSignal(Signum.SIGINT) });
#else
            var stop = new ManualResetEventSlim();
            using (PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Set(); }))
            using (PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stop.Set(); }))
                stop.Wait();
#endif
        }

        static async Task Accept(HttpListener listener)
        {
            while (true)
            {
                HttpListenerContext context;
                try { context = await listener.GetContextAsync().ConfigureAwait(false); }
                catch (HttpListenerException) { return; }
                catch (ObjectDisposedException) { return; }
                _ = Task.Run(() => Handle(context));
            }
        }

        static async Task Handle(HttpListenerContext context)
        {
            var request = context.Request;
            var response = context.Response;
            try
            {
                Cors(request, response);
                string path = request.Url.AbsolutePath;
                string method = request.HttpMethod;
                if (path == StreamPath)
                {
                    if (method == "GET") await Stream(context).ConfigureAwait(false);
                    else if (method == "OPTIONS") Preflight(response);
                    else await MethodNotAllowed(response, "GET, OPTIONS").ConfigureAwait(false);
                }
                else if (path == "/publish")
                {
                    if (method == "POST") await Publish(request, response).ConfigureAwait(false);
                    else if (method == "OPTIONS") Preflight(response);
                    else await MethodNotAllowed(response, "POST, OPTIONS").ConfigureAwait(false);
                }
                else if (path == "/health")
                {
                    if (method == "GET") await SendJson(response, 200, "{\"status\":\"ok\",\"clients\":" + hub.Count().ToString(CultureInfo.InvariantCulture) + "}").ConfigureAwait(false);
                    else await MethodNotAllowed(response, "GET").ConfigureAwait(false);
                }
                else await Error(response, 404, "not found").ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException || e is HttpListenerException || e is ObjectDisposedException)
            {
                response.Abort(); // the client went away mid-answer
            }
        }

        static async Task Stream(HttpListenerContext context)
        {
            var request = context.Request;
            var response = context.Response;
            if (streamToken != null && !StreamAuthorized(request))
            {
                await Unauthorized(response).ConfigureAwait(false);
                return;
            }
            List<byte[]> replay;
            Client client = hub.Subscribe(LastEventId(request), SocketOf(context), out replay);
            if (client == null)
            {
                response.AddHeader("Retry-After", "1");
                await Error(response, 503, "too many clients").ConfigureAwait(false);
                return;
            }
            try
            {
                response.StatusCode = 200;
                response.ContentType = "text/event-stream; charset=utf-8";
                response.AddHeader("Cache-Control", "no-store");
                response.AddHeader("X-Accel-Buffering", "no");
                // each Write goes out at once as one chunk: HttpListener does not buffer it
                response.SendChunked = true;
                var output = response.OutputStream;

                var hello = Encoding.UTF8.GetBytes("retry: " + RetryMs.ToString(CultureInfo.InvariantCulture) + "\n\n");
                var first = new MemoryStream();
                first.Write(hello, 0, hello.Length);
                foreach (var frame in replay) first.Write(frame, 0, frame.Length);
                await output.WriteAsync(first.GetBuffer(), 0, (int)first.Length).ConfigureAwait(false);

                var heartbeatLine = Encoding.UTF8.GetBytes(": heartbeat\n\n");
                var beat = TimeSpan.FromSeconds(HeartbeatSeconds);
                DateTime nextBeat = DateTime.UtcNow + beat;
                while (true)
                {
                    TimeSpan untilBeat = nextBeat - DateTime.UtcNow;
                    if (untilBeat < TimeSpan.Zero) untilBeat = TimeSpan.Zero;
                    byte[] frame = await client.Next(untilBeat < WatchInterval ? untilBeat : WatchInterval).ConfigureAwait(false);
                    if (client.Closed) break;
                    if (frame != null)
                        await output.WriteAsync(frame, 0, frame.Length).ConfigureAwait(false);
                    else if (DateTime.UtcNow >= nextBeat)
                    {
                        await output.WriteAsync(heartbeatLine, 0, heartbeatLine.Length).ConfigureAwait(false);
                        nextBeat = DateTime.UtcNow + beat;
                    }
                    else if (PeerClosed(client.Socket)) break;
                }
            }
            catch (IOException) { } // the client went away, or was dropped
            catch (HttpListenerException) { }
            catch (ObjectDisposedException) { }
            finally
            {
                hub.Unsubscribe(client);
                response.Abort();
            }
        }

        // HttpListener hides a connection's socket, but a stream needs it: HttpListener reads
        // nothing while a response is open (a client that hangs up shows only when a later write
        // fails), and a write to a client that stopped reading blocks for good (so does
        // HttpListenerResponse.Abort, which first writes the last chunk). The managed
        // HttpListener of Mono and of .NET on Linux/macOS keeps the socket in its internal
        // connection object; where it cannot be found (http.sys on Windows) this gives null and
        // a stream relies on its writes.
        static Socket SocketOf(HttpListenerContext context)
        {
            const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
            object connection = typeof(HttpListenerContext).GetProperty("Connection", Instance)?.GetValue(context, null);
            if (connection == null) return null;
            foreach (FieldInfo field in connection.GetType().GetFields(Instance))
                if (field.FieldType == typeof(Socket)) return (Socket)field.GetValue(connection);
            return null;
        }

        /// <summary>True once the client has closed its side (readable, yet nothing to read).</summary>
        static bool PeerClosed(Socket socket)
        {
            try { return socket != null && socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0; }
            catch (SocketException) { return true; }
            catch (ObjectDisposedException) { return true; }
        }

        /// <summary>Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, else null (ignored).</summary>
        static long? LastEventId(HttpListenerRequest request)
        {
            string value = request.Headers["Last-Event-ID"];
            if (string.IsNullOrEmpty(value)) value = QueryParameter(request, "lastEventId");
            if (value == null || value.Length == 0 || value.Length > 1024) return null;
            foreach (char c in value)
                if (c < '0' || c > '9') return null;
            long id;
            return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out id) ? id : (long?)null;
        }

        /// <summary>The first parameter of that name, URL-decoded; null when absent.</summary>
        static string QueryParameter(HttpListenerRequest request, string name)
        {
            string query = request.Url.Query;
            if (query.Length <= 1) return null;
            foreach (string pair in query.Substring(1).Split('&'))
            {
                int eq = pair.IndexOf('=');
                string key = Uri.UnescapeDataString((eq < 0 ? pair : pair.Substring(0, eq)).Replace('+', ' '));
                if (key == name) return eq < 0 ? "" : Uri.UnescapeDataString(pair.Substring(eq + 1).Replace('+', ' '));
            }
            return null;
        }

        static bool StreamAuthorized(HttpListenerRequest request)
        {
            return SameToken(Bearer(request), streamToken) || SameToken(QueryParameter(request, "token"), streamToken);
        }

        static bool PublishAuthorized(HttpListenerRequest request)
        {
            return SameToken(Bearer(request), publishToken);
        }

        /// <summary>The token of "Authorization: Bearer &lt;token&gt;" (scheme in any case).</summary>
        static string Bearer(HttpListenerRequest request)
        {
            string value = request.Headers["Authorization"];
            if (value == null || value.Length < 8 || value[6] != ' ' || string.Compare(value, 0, "Bearer", 0, 6, StringComparison.OrdinalIgnoreCase) != 0)
                return null;
            string token = value.Substring(7).TrimStart(' ');
            return token.Length > 0 ? token : null;
        }

        /// <summary>Constant time: compares SHA-256 digests, which have the same length.</summary>
        static bool SameToken(string given, string token)
        {
            if (given == null) return false;
            using (var sha = SHA256.Create())
            {
                byte[] a = sha.ComputeHash(Encoding.UTF8.GetBytes(given));
                byte[] b = sha.ComputeHash(Encoding.UTF8.GetBytes(token));
                int diff = 0;
                for (int i = 0; i < a.Length; i++) diff |= a[i] ^ b[i];
                return diff == 0;
            }
        }

        // Checked in this order: token (401), Content-Type (415), size (413), body (400).
        static async Task Publish(HttpListenerRequest request, HttpListenerResponse response)
        {
            if (!PublishAuthorized(request))
            {
                await Unauthorized(response).ConfigureAwait(false);
                return;
            }
            string contentType = request.ContentType ?? "";
            int semicolon = contentType.IndexOf(';');
            if (!string.Equals((semicolon < 0 ? contentType : contentType.Substring(0, semicolon)).Trim(), "application/json", StringComparison.OrdinalIgnoreCase))
            {
                await Error(response, 415, "Content-Type must be application/json").ConfigureAwait(false);
                return;
            }
            byte[] body = request.ContentLength64 > MaxBodyBytes ? null : await ReadBody(request.InputStream).ConfigureAwait(false);
            if (body == null)
            {
                await Error(response, 413, "body over 64 KiB").ConfigureAwait(false);
                return;
            }
            string eventName, data;
            string problem = ParsePublish(body, out eventName, out data);
            if (problem != null)
            {
                await Error(response, 400, problem).ConfigureAwait(false);
                return;
            }
            await SendJson(response, 202, "{\"id\":" + hub.Publish(eventName, data).ToString(CultureInfo.InvariantCulture) + "}").ConfigureAwait(false);
        }

        /// <summary>Reads a body (Content-Length or chunked) as it arrives; null once it passes MaxBodyBytes.</summary>
        static async Task<byte[]> ReadBody(Stream input)
        {
            var body = new MemoryStream();
            var buffer = new byte[8192];
            int n;
            while ((n = await input.ReadAsync(buffer, 0, buffer.Length).ConfigureAwait(false)) > 0)
            {
                if (body.Length + n > MaxBodyBytes) return null;
                body.Write(buffer, 0, n);
            }
            return body.ToArray();
        }

        /// <summary>
        /// Reads {"event": "&lt;name&gt;", "data": &lt;any JSON&gt;}: a string data is sent as its text,
        /// anything else as compact JSON. Returns what is wrong, or null.
        /// </summary>
        static string ParsePublish(byte[] body, out string eventName, out string data)
        {
            eventName = data = null;
            string text;
            try { text = StrictUtf8.GetString(body); }
            catch (DecoderFallbackException) { return "body is not valid UTF-8"; }
            object parsed;
            try { parsed = Json.Parse(text); }
            catch (JsonException e) { return e.Message; }
            var members = parsed as List<KeyValuePair<string, object>>;
            if (members == null) return "body must be a JSON object";
            object name = Member(members, "event", "message");
            eventName = name as string;
            if (eventName == null) return "event must be a string";
            if (eventName.Length == 0 || CodePoints(eventName) > MaxEventName || eventName.IndexOfAny(new[] { '\r', '\n' }) >= 0)
                return "event must be 1-64 characters without line breaks";
            object value = Member(members, "data", null);
            data = value as string ?? Json.Write(value);
            return null;
        }

        /// <summary>The last member of that name (as in JavaScript), else the default.</summary>
        static object Member(List<KeyValuePair<string, object>> members, string name, object fallback)
        {
            for (int i = members.Count - 1; i >= 0; i--)
                if (members[i].Key == name) return members[i].Value;
            return fallback;
        }

        static int CodePoints(string s)
        {
            int n = 0;
            foreach (char c in s)
                if (!char.IsLowSurrogate(c)) n++;
            return n;
        }

        static string WithTimestamp(string head)
        {
            return head + "\"timestamp\":\"" + DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) + "\"}";
        }

        static void Cors(HttpListenerRequest request, HttpListenerResponse response)
        {
            response.AddHeader("Access-Control-Allow-Origin", "*");
        }

        static void Preflight(HttpListenerResponse response)
        {
            response.StatusCode = 204;
            response.AddHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            response.AddHeader("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control, Content-Type, Authorization");
            response.AddHeader("Access-Control-Max-Age", "86400");
            response.Close();
        }

        static Task Unauthorized(HttpListenerResponse response)
        {
            response.AddHeader("WWW-Authenticate", "Bearer");
            return Error(response, 401, "unauthorized");
        }

        static Task MethodNotAllowed(HttpListenerResponse response, string allow)
        {
            response.AddHeader("Allow", allow);
            return Error(response, 405, "method not allowed");
        }

        static Task Error(HttpListenerResponse response, int status, string message)
        {
            return SendJson(response, status, Json.Write(new List<KeyValuePair<string, object>> { new KeyValuePair<string, object>("error", message) }));
        }

        static async Task SendJson(HttpListenerResponse response, int status, string json)
        {
            byte[] body = Encoding.UTF8.GetBytes(json);
            response.StatusCode = status;
            response.ContentType = "application/json";
            response.ContentLength64 = body.Length;
            await response.OutputStream.WriteAsync(body, 0, body.Length).ConfigureAwait(false);
            response.Close();
        }

        /// <summary>An environment variable; empty counts as unset.</summary>
        static string Env(string name)
        {
            string value = Environment.GetEnvironmentVariable(name);
            return string.IsNullOrEmpty(value) ? null : value;
        }

        static string NewToken()
        {
            var bytes = new byte[16];
            using (var random = RandomNumberGenerator.Create()) random.GetBytes(bytes);
            return BitConverter.ToString(bytes).Replace("-", "").ToLowerInvariant();
        }
    }
}
