<?php

declare(strict_types=1);

namespace App;

/** Routes one request: the stream, /publish and /health. */
final class Server
{
    public const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
        | JSON_THROW_ON_ERROR;
    private const MAX_BODY = 64 * 1024;
    private const MAX_BATCH = 1024 * 1024; // bytes written to a client at a time
    private const POLL_US = 50_000; // how often a stream looks for new events
    // PHP only learns that a client left when a write fails: an idle stream writes at least this often.
    private const PROBE_S = 4;

    public function __construct(private readonly array $config, private readonly EventStore $store)
    {
    }

    public function handle(string $method, string $path): void
    {
        header_remove('X-Powered-By');
        $this->cors();

        $routes = [
            $this->config['path'] => ['GET' => $this->stream(...), 'OPTIONS' => $this->preflight(...)],
            '/health' => ['GET' => $this->health(...)],
        ];
        if ($this->config['publish_enabled']) {
            $routes['/publish'] = ['POST' => $this->publish(...), 'OPTIONS' => $this->preflight(...)];
        }

        if (!isset($routes[$path])) {
            $this->json(404, ['error' => 'not found']);
        } elseif (!isset($routes[$path][$method])) {
            header('Allow: ' . implode(', ', array_keys($routes[$path])));
            $this->json(405, ['error' => 'method not allowed']);
        } else {
            $routes[$path][$method]();
        }
    }

    private function stream(): void
    {
        $token = getenv('SSE_TOKEN') ?: $this->config['stream_token'];
        if ($token !== null && !$this->bearer($token) && !$this->same($_GET['token'] ?? null, $token)) {
            header('WWW-Authenticate: Bearer');
            $this->json(401, ['error' => 'unauthorized']);
            return;
        }
        if (!$this->store->openStream($this->config['max_streams'])) {
            header('Retry-After: 1');
            $this->json(503, ['error' => 'too many clients']);
            return;
        }

        try {
            set_time_limit(0);
            // Keep running when the client leaves, to see it in connection_aborted() and free the slot.
            ignore_user_abort(true);
            // php.ini's output_buffering would hold the frames back: PHP writes each one as it is flushed.
            while (ob_get_level() > 0) {
                ob_end_flush();
            }
            header('Content-Type: text/event-stream; charset=utf-8');
            header('Cache-Control: no-store');
            header('X-Accel-Buffering: no');

            // The replay and the live events come from one cursor into the events table, taken here.
            $last = $this->store->lastId();
            $after = $_SERVER['HTTP_LAST_EVENT_ID'] ?? $_GET['lastEventId'] ?? null;
            if (is_string($after) && preg_match('/^\d{1,1024}\z/', $after)) {
                $last = (int) min($last, max((float) $after, $last - $this->config['history']));
            }

            $beat = $this->config['heartbeat'] > 0 ? min($this->config['heartbeat'], self::PROBE_S) : self::PROBE_S;
            $this->send($this->config['retry'] > 0 ? "retry: {$this->config['retry']}\n\n" : ": connected\n\n");
            $nextBeat = microtime(true) + $beat;
            while (!connection_aborted()) {
                $events = $this->store->after($last, 256);
                if ($events !== [] && $events[0]['id'] !== $last + 1) {
                    return; // older events are gone: this client fell too far behind, drop it
                }
                if ($events !== []) {
                    $batch = '';
                    foreach ($events as $event) {
                        $batch .= $this->frame($event['id'], $event['name'], $event['data']);
                        $last = $event['id'];
                        if (strlen($batch) >= self::MAX_BATCH) {
                            break;
                        }
                    }
                    $this->send($batch);
                    $nextBeat = microtime(true) + $beat;
                } elseif (microtime(true) >= $nextBeat) {
                    $this->send(": heartbeat\n\n");
                    $nextBeat = microtime(true) + $beat;
                } else {
                    usleep(self::POLL_US);
                }
            }
        } finally {
            $this->store->closeStream();
        }
    }

    private function health(): void
    {
        $this->json(200, ['status' => 'ok', 'clients' => $this->store->streams()]);
    }

    private function publish(): void
    {
        $token = $this->config['publish_token'];
        if ($token !== null && !$this->bearer($token)) {
            header('WWW-Authenticate: Bearer');
            $this->json(401, ['error' => 'unauthorized']);
            return;
        }
        $length = (int) ($_SERVER['CONTENT_LENGTH'] ?? 0);
        $body = $length > self::MAX_BODY ? null : file_get_contents('php://input');
        if ($body === null || strlen($body) > self::MAX_BODY) {
            $this->json(413, ['error' => 'body over 64 KiB']);
            return;
        }

        try {
            // Objects stay objects: {} and [] are sent back as they came.
            $message = json_decode($body, flags: JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            $message = null;
        }
        if (!$message instanceof \stdClass) {
            $this->json(400, ['error' => 'body must be a JSON object']);
            return;
        }
        $name = property_exists($message, 'event') ? $message->event : 'message';
        if (!is_string($name) || !preg_match('/^[^\r\n]{1,64}\z/u', $name)) {
            $this->json(400, ['error' => 'event must be a string of 1-64 characters without line breaks']);
            return;
        }
        $data = $message->data ?? null;
        $text = is_string($data) ? $data : json_encode($data, self::JSON_FLAGS);

        $this->json(202, ['id' => $this->store->publish($name, $text)]);
    }

    private function preflight(): void
    {
        http_response_code(204);
        ini_set('default_mimetype', ''); // no Content-Type on an empty answer
        header('Access-Control-Allow-Methods: GET, POST, OPTIONS');
        header('Access-Control-Allow-Headers: Last-Event-ID, Cache-Control, Content-Type, Authorization');
        header('Access-Control-Max-Age: 86400');
    }

    private function cors(): void
    {
        $origins = $this->config['cors_origins'];
        $origin = $_SERVER['HTTP_ORIGIN'] ?? null;
        if (in_array('*', $origins, true) && !$this->config['cors_credentials']) {
            header('Access-Control-Allow-Origin: *');
        } elseif ($origin !== null && (in_array('*', $origins, true) || in_array($origin, $origins, true))) {
            header("Access-Control-Allow-Origin: $origin");
            header('Vary: Origin');
            if ($this->config['cors_credentials']) {
                header('Access-Control-Allow-Credentials: true');
            }
        }
    }

    private function frame(int $id, string $name, string $data): string
    {
        $frame = "id: $id\nevent: $name\n";
        foreach (preg_split('/\r\n|\r|\n/', $data) as $line) {
            $frame .= "data: $line\n";
        }
        return "$frame\n";
    }

    /** Writes through to nginx (fastcgi_buffering off passes it on at once). */
    private function send(string $text): void
    {
        echo $text;
        flush();
    }

    private function json(int $status, array $body): void
    {
        http_response_code($status);
        header('Content-Type: application/json');
        echo json_encode($body, self::JSON_FLAGS);
    }

    private function bearer(string $secret): bool
    {
        return $this->same($_SERVER['HTTP_AUTHORIZATION'] ?? null, "Bearer $secret");
    }

    private function same(mixed $given, string $secret): bool
    {
        return is_string($given) && hash_equals($secret, $given);
    }
}
