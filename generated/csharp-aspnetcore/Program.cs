// sse-server: a Server-Sent Events server on ASP.NET Core (minimal API on Kestrel).
//
// The frames are written by hand: TypedResults.ServerSentEvents (.NET 10) writes SseItem
// events, but this server also sends `: heartbeat` comments and must drop a client that stops
// reading, which needs the response body itself.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Unicode;
using System.Threading.Channels;
using Microsoft.Net.Http.Headers;

// Tokens come from the environment only (an empty variable counts as unset).
var streamToken = Env("SSE_TOKEN"); // null: the stream is open to anyone
var publishToken = Env("SSE_PUBLISH_TOKEN") ?? MakePublishToken();

var host = Env("HOST") ?? "0.0.0.0";
var port = int.TryParse(Env("PORT"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : Config.DefaultPort;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseUrls($"http://{(host.Contains(':') ? $"[{host}]" : host)}:{port}");
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.AddServerHeader = false;
    kestrel.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(15);
});
// SIGTERM ends every stream (see hub.Close below); what is left gets 4 s, not the default 30.
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(4));
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

var app = builder.Build();
var hub = new Hub();
var stopping = app.Lifetime.ApplicationStopping;
stopping.Register(hub.Close);
app.Lifetime.ApplicationStarted.Register(() => Console.WriteLine($"{Config.ServerName} listening on http://{host}:{port}"));

// CORS runs first, so every answer carries its headers, errors included.
app.Use((ctx, next) =>
{
    var headers = ctx.Response.Headers;
    headers.AccessControlAllowOrigin = "*";
    return next(ctx);
});

// One endpoint per path that switches on the method itself: routing's own 404 and 405 answers
// have empty bodies, and every error here is JSON.
RequestDelegate streamRoute = ctx => ctx.Request.Method switch
{
    "GET" => HandleStream(ctx),
    "OPTIONS" => Preflight(ctx),
    _ => MethodNotAllowed(ctx, "GET, OPTIONS"),
};
RequestDelegate publishRoute = ctx => ctx.Request.Method switch
{
    "POST" => HandlePublish(ctx),
    "OPTIONS" => Preflight(ctx),
    _ => MethodNotAllowed(ctx, "POST, OPTIONS"),
};
RequestDelegate healthRoute = ctx => ctx.Request.Method == "GET"
    ? WriteJson(ctx, StatusCodes.Status200OK, new { status = "ok", clients = hub.Count() })
    : MethodNotAllowed(ctx, "GET");
RequestDelegate notFound = ctx => WriteError(ctx, StatusCodes.Status404NotFound, "not found");

app.Map(Config.StreamPath, streamRoute);
app.Map("/publish", publishRoute);
app.Map("/health", healthRoute);
app.Map("/{**path}", notFound);

foreach (var (name, everyMs, data) in Config.TimedEvents)
    RunEvery(TimeSpan.FromMilliseconds(everyMs), () => hub.Publish(name, WithTimestamp(data)));
RunEvery(TimeSpan.FromSeconds(Config.HeartbeatSeconds), hub.Heartbeat);

await app.RunAsync();
return 0;

async Task HandleStream(HttpContext ctx)
{
    if (!StreamAuthorized(ctx.Request))
    {
        await Unauthorized(ctx);
        return;
    }
    var client = hub.Subscribe(LastEventId(ctx.Request));
    if (client is null)
    {
        ctx.Response.Headers.RetryAfter = "1";
        await WriteError(ctx, StatusCodes.Status503ServiceUnavailable, "too many clients");
        return;
    }
    var response = ctx.Response;
    response.ContentType = "text/event-stream; charset=utf-8";
    response.Headers.CacheControl = "no-store";
    response.Headers["X-Accel-Buffering"] = "no";
    // Ends when the client goes away (Kestrel reads the socket, so a hang-up is seen at once),
    // when the hub drops the client for falling behind, or at shutdown (the queue completes).
    using var done = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, client.Dropped);
    try
    {
        await foreach (var frame in client.Frames.ReadAllAsync(done.Token))
        {
            await response.Body.WriteAsync(frame, done.Token);
            client.Sent(frame.Length);
            // Kestrel sends nothing until a flush; flush once the queue is empty.
            if (!client.Frames.TryPeek(out _)) await response.Body.FlushAsync(done.Token);
        }
    }
    catch (Exception e) when (e is OperationCanceledException or IOException)
    {
    }
    finally
    {
        hub.Unsubscribe(client);
        // Ending the response would leave the connection open for the next request: a
        // dropped client's connection is closed instead.
        if (client.Dropped.IsCancellationRequested) ctx.Abort();
    }
}

// Checks, in order: token (401), Content-Type (415), size (413), body (400).
async Task HandlePublish(HttpContext ctx)
{
    var request = ctx.Request;
    if (!PublishAuthorized(request))
    {
        await Unauthorized(ctx);
        return;
    }
    if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var media)
        || !media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
    {
        await WriteError(ctx, StatusCodes.Status415UnsupportedMediaType, "Content-Type must be application/json");
        return;
    }
    if (request.ContentLength > Config.MaxBodyBytes)
    {
        await TooLarge(ctx);
        return;
    }
    // Read one byte past the cap at most: a chunked body is refused as soon as it passes it.
    var body = new byte[Config.MaxBodyBytes + 1];
    var length = 0;
    try
    {
        int read;
        while (length < body.Length && (read = await request.Body.ReadAsync(body.AsMemory(length), ctx.RequestAborted)) > 0)
            length += read;
    }
    catch (BadHttpRequestException)
    {
        await WriteError(ctx, StatusCodes.Status400BadRequest, "cannot read body");
        return;
    }
    if (length > Config.MaxBodyBytes)
    {
        await TooLarge(ctx);
        return;
    }
    var (name, data, problem) = ParsePublish(body.AsSpan(0, length));
    if (problem is not null)
    {
        await WriteError(ctx, StatusCodes.Status400BadRequest, problem);
        return;
    }
    await WriteJson(ctx, StatusCodes.Status202Accepted, new { id = hub.Publish(name, data) });
}

Task TooLarge(HttpContext ctx)
{
    // The rest of the body is not read: close the connection rather than drain it.
    ctx.Response.Headers.Connection = "close";
    return WriteError(ctx, StatusCodes.Status413PayloadTooLarge, "body over 64 KiB");
}

bool PublishAuthorized(HttpRequest request) => SameToken(BearerToken(request), publishToken);

// 128 random bits, logged once so the operator can publish.
static string MakePublishToken()
{
    var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    Console.WriteLine($"publish token: {token} (set SSE_PUBLISH_TOKEN to choose your own)");
    return token;
}

// {"event": "<name>", "data": <any JSON>}: a string data is sent as its text, anything else
// as compact JSON.
static (string Name, string Data, string? Problem) ParsePublish(ReadOnlySpan<byte> body)
{
    if (!Utf8.IsValid(body)) return ("", "", "body is not valid UTF-8");
    if (TooDeep(body)) return ("", "", "body nests deeper than 64 levels");
    JsonDocument document;
    try
    {
        document = JsonDocument.Parse(body.ToArray(), new JsonDocumentOptions { MaxDepth = Config.MaxJsonDepth });
    }
    catch (JsonException)
    {
        return ("", "", "body is not JSON");
    }
    using (document)
    {
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) return ("", "", "body must be a JSON object");
        var name = "message";
        if (root.TryGetProperty("event", out var eventName))
        {
            if (eventName.ValueKind != JsonValueKind.String) return ("", "", "event must be a string");
            name = eventName.GetString()!;
            if (name.Length == 0 || name.EnumerateRunes().Count() > Config.MaxEventName || name.AsSpan().IndexOfAny('\r', '\n') >= 0)
                return ("", "", "event must be 1-64 characters without line breaks");
        }
        var data = !root.TryGetProperty("data", out var value) ? "null"
            : value.ValueKind == JsonValueKind.String ? value.GetString()!
            : JsonSerializer.Serialize(value, Config.Json);
        return (name, data, null);
    }
}

// Whether arrays and objects nest deeper than MaxJsonDepth.
static bool TooDeep(ReadOnlySpan<byte> body)
{
    int depth = 0;
    bool inString = false, escaped = false;
    foreach (var c in body)
    {
        if (escaped) escaped = false;
        else if (inString && c == '\\') escaped = true;
        else if (c == '"') inString = !inString;
        else if (inString) continue;
        else if (c == '{' || c == '[')
        {
            if (++depth > Config.MaxJsonDepth) return true;
        }
        else if (c == '}' || c == ']') depth--;
    }
    return false;
}

// With SSE_TOKEN set: the token as a Bearer header or as ?token= (either place is enough).
bool StreamAuthorized(HttpRequest request)
{
    if (streamToken is null) return true;
    if (SameToken(BearerToken(request), streamToken)) return true;
    return request.Query.TryGetValue("token", out var token) && SameToken(token.FirstOrDefault(), streamToken);
}

// "Authorization: Bearer <token>", the scheme in any case.
static string? BearerToken(HttpRequest request)
{
    var header = request.Headers.Authorization.ToString();
    var space = header.IndexOf(' ');
    if (space < 0 || !header[..space].Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return null;
    return header[(space + 1)..].TrimStart(' ');
}

static bool SameToken(string? given, string want) =>
    given is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(given), Encoding.UTF8.GetBytes(want));

// Last-Event-ID (or ?lastEventId=): 1-1024 ASCII digits, anything else is ignored.
static long? LastEventId(HttpRequest request)
{
    string? value = request.Headers["Last-Event-ID"].FirstOrDefault();
    if (string.IsNullOrEmpty(value)) value = request.Query["lastEventId"].FirstOrDefault();
    if (value is null || value.Length is 0 or > 1024 || !value.All(char.IsAsciiDigit)) return null;
    // More digits than a long holds: later than any id this server will send.
    return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
}

static Task Preflight(HttpContext ctx)
{
    var headers = ctx.Response.Headers;
    headers.AccessControlAllowMethods = "GET, POST, OPTIONS";
    headers.AccessControlAllowHeaders = "Last-Event-ID, Cache-Control, Content-Type, Authorization";
    headers.AccessControlMaxAge = "86400";
    ctx.Response.StatusCode = StatusCodes.Status204NoContent;
    return Task.CompletedTask;
}

static Task MethodNotAllowed(HttpContext ctx, string allow)
{
    ctx.Response.Headers.Allow = allow;
    return WriteError(ctx, StatusCodes.Status405MethodNotAllowed, "method not allowed");
}

static Task Unauthorized(HttpContext ctx)
{
    ctx.Response.Headers.WWWAuthenticate = "Bearer";
    return WriteError(ctx, StatusCodes.Status401Unauthorized, "missing or wrong token");
}

static Task WriteError(HttpContext ctx, int status, string message) => WriteJson(ctx, status, new { error = message });

static Task WriteJson(HttpContext ctx, int status, object value)
{
    ctx.Response.StatusCode = status;
    ctx.Response.ContentType = "application/json";
    return ctx.Response.WriteAsync(JsonSerializer.Serialize(value, Config.Json));
}

// The spec's JSON object with "timestamp" (ISO-8601 UTC) spliced in before its closing brace:
// its text is not parsed, and keeps the spec's key order.
static string WithTimestamp(string dataJson)
{
    var head = dataJson == "{}" ? "{" : dataJson[..^1] + ",";
    var timestamp = DateTime.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
    return head + "\"timestamp\":\"" + timestamp + "\"}";
}

// One timer for the whole server per job, until shutdown.
void RunEvery(TimeSpan period, Action job) => _ = Task.Run(async () =>
{
    using var timer = new PeriodicTimer(period);
    try
    {
        while (await timer.WaitForNextTickAsync(stopping)) job();
    }
    catch (OperationCanceledException)
    {
    }
});

static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

static class Config
{
    public const string ServerName = "sse-server";
    public const int DefaultPort = 3005;
    public const string StreamPath = "/events";
    public const int RetryMs = 3000;
    public const int HeartbeatSeconds = 15;
    public const int HistorySize = 100;
    public const int MaxClients = 10000;
    public const int MaxQueueBytes = 1 << 20;
    public const int MaxBodyBytes = 64 << 10;
    public const int MaxEventName = 64;
    public const int MaxJsonDepth = 64;
    // Each timed event gets one timer for the whole server; data gains a "timestamp".
    public static readonly (string Name, int EveryMs, string Data)[] TimedEvents =
    [
        ("clock", 1000, "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
        ("stock-price", 2000, "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"),
    ];
    // Compact JSON that keeps non-ASCII text as it is.
    public static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}

// A connected stream: its frames wait here, bounded in bytes.
sealed class Client
{
    readonly Channel<byte[]> frames = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    readonly CancellationTokenSource dropped = new();
    long queuedBytes;

    public ChannelReader<byte[]> Frames => frames.Reader;
    public CancellationToken Dropped => dropped.Token;

    // Queues a frame without ever blocking; false (and the client is dropped) past MaxQueueBytes.
    public bool Offer(byte[] frame)
    {
        if (Interlocked.Add(ref queuedBytes, frame.Length) > Config.MaxQueueBytes)
        {
            frames.Writer.TryComplete();
            _ = dropped.CancelAsync(); // wakes a write stuck on a client that stopped reading
            return false;
        }
        return frames.Writer.TryWrite(frame);
    }

    public void Sent(int bytes) => Interlocked.Add(ref queuedBytes, -bytes);

    public void End() => frames.Writer.TryComplete();
}

// The hub: the id counter, the history and the set of clients, behind one lock.
sealed class Hub
{
    static readonly byte[] Hello = Encoding.UTF8.GetBytes($"retry: {Config.RetryMs}\n\n");
    static readonly byte[] HeartbeatFrame = Encoding.UTF8.GetBytes(": heartbeat\n\n");
    readonly Lock gate = new();
    readonly HashSet<Client> clients = [];
    readonly Queue<(long Id, byte[] Frame)> history = new();
    long lastId;
    bool closed;

    // Joins the broadcast and queues the replay in one step, so an event published in between
    // is neither lost nor sent twice. Null when the server is full or stopping.
    public Client? Subscribe(long? lastEventId)
    {
        lock (gate)
        {
            if (closed || clients.Count >= Config.MaxClients) return null;
            var client = new Client();
            client.Offer(Hello);
            if (lastEventId is long after)
            {
                foreach (var (id, frame) in history)
                    if (id > after) client.Offer(frame);
            }
            clients.Add(client);
            return client;
        }
    }

    public void Unsubscribe(Client client)
    {
        lock (gate) clients.Remove(client);
    }

    public int Count()
    {
        lock (gate) return clients.Count;
    }

    // Assigns the next id, keeps the event and queues it for every client; returns the id.
    public long Publish(string name, string data)
    {
        lock (gate)
        {
            var id = ++lastId;
            var frame = Frame(id, name, data);
            history.Enqueue((id, frame));
            if (history.Count > Config.HistorySize) history.Dequeue();
            Broadcast(frame);
            return id;
        }
    }

    public void Heartbeat()
    {
        lock (gate) Broadcast(HeartbeatFrame);
    }

    // Ends every open stream (shutdown).
    public void Close()
    {
        lock (gate)
        {
            closed = true;
            foreach (var client in clients) client.End();
            clients.Clear();
        }
    }

    void Broadcast(byte[] frame) => clients.RemoveWhere(client => !client.Offer(frame));

    // One event; every line of data (split on CRLF, CR or LF) gets its own "data: ".
    static byte[] Frame(long id, string name, string data)
    {
        var text = new StringBuilder();
        text.Append("id: ").Append(id.ToString(CultureInfo.InvariantCulture)).Append("\nevent: ").Append(name).Append('\n');
        foreach (var line in data.Replace("\r\n", "\n").Replace('\r', '\n').Split('\n'))
            text.Append("data: ").Append(line).Append('\n');
        return Encoding.UTF8.GetBytes(text.Append('\n').ToString());
    }
}
