<?php

declare(strict_types=1);

namespace App;

/** Routes one request: the stream, /publish and /health. */
final class Server
{
    public const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
        | JSON_THROW_ON_ERROR;
    public const MAX_QUEUE_BYTES = 1024 * 1024; // written to a client at a time, at most
    public const MAX_BODY_BYTES = 64 * 1024; // config/nginx.conf says the same: client_max_body_size 64k
    public const MAX_EVENT_NAME = 64;
    public const MAX_JSON_DEPTH = 64;
    private const POLL_US = 50_000; // how often a stream looks for new events
    // PHP only learns that a client left when a write fails: an idle stream writes at least this often.
    private const PROBE_SECONDS = 3;

    private readonly ?string $streamToken;
    private readonly ?string $publishToken;

    public function __construct(private readonly array $config, private readonly Hub $hub)
    {
        $this->streamToken = getenv('SSE_TOKEN') ?: null;
        // bin/start makes SSE_PUBLISH_TOKEN when it is unset, so every worker has the same one
        // (without it, nothing can publish).
        $this->publishToken = getenv('SSE_PUBLISH_TOKEN') ?: null;
    }

    public function handle(string $method, string $path): void
    {
        header_remove('X-Powered-By');
        $this->cors();

        $routes = [
            $this->config['stream_path'] => ['GET' => $this->stream(...), 'OPTIONS' => $this->preflight(...)],
            '/publish' => ['POST' => $this->publish(...), 'OPTIONS' => $this->preflight(...)],
            '/health' => ['GET' => $this->health(...)],
        ];

        if (!isset($routes[$path])) {
            $this->fail(404, 'not found');
        } elseif (!isset($routes[$path][$method])) {
            header('Allow: ' . implode(', ', array_keys($routes[$path])));
            $this->fail(405, 'method not allowed');
        } else {
            $routes[$path][$method]();
        }
    }

    /**
     * nginx asks before it reads a publish body (auth_request in config/nginx.conf): 204 lets it
     * read the body; 403 with X-Publish-Refusal (401, 415 or 413) makes it answer that instead.
     */
    public function checkPublish(string $method): void
    {
        $refusal = $method === 'POST' ? $this->publishRefusal() : null;
        http_response_code($refusal === null ? 204 : 403);
        if ($refusal !== null) {
            header("X-Publish-Refusal: $refusal[0]");
        }
    }

    private function stream(): void
    {
        if (!$this->streamAuthorized()) {
            header('WWW-Authenticate: Bearer');
            $this->fail(401, 'unauthorized');
            return;
        }
        // The cap on streams (SSE_MAX_STREAMS) is nginx's limit_conn: over it, nginx answers 503
        // without a PHP worker.
        $last = $this->hub->subscribe($this->lastEventId(), $this->config['history_size']);
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

            $heartbeat = $this->config['heartbeat_seconds'];
            $this->send("retry: {$this->config['retry_ms']}\n\n");
            $nextBeat = microtime(true) + $heartbeat;
            $nextProbe = microtime(true) + self::PROBE_SECONDS;
            while (!connection_aborted()) {
                $events = $this->hub->after($last, 256);
                if ($events !== [] && $events[0]['id'] !== $last + 1) {
                    return; // older events are gone: this client fell too far behind, drop it
                }
                $now = microtime(true);
                if ($events !== []) {
                    $batch = '';
                    foreach ($events as $event) {
                        $batch .= $this->frame($event['id'], $event['name'], $event['data']);
                        $last = $event['id'];
                        if (strlen($batch) >= self::MAX_QUEUE_BYTES) {
                            break;
                        }
                    }
                    $this->send($batch);
                    $nextProbe = $now + self::PROBE_SECONDS;
                } elseif ($now >= $nextBeat) {
                    $this->send(": heartbeat\n\n");
                    $nextBeat = $now + $heartbeat;
                    $nextProbe = $now + self::PROBE_SECONDS;
                } elseif ($now >= $nextProbe) {
                    $this->send(":\n\n");
                    $nextProbe = $now + self::PROBE_SECONDS;
                } else {
                    usleep(self::POLL_US);
                }
            }
        } finally {
            $this->hub->unsubscribe();
        }
    }

    private function health(): void
    {
        $this->json(200, ['status' => 'ok', 'clients' => $this->hub->count()]);
    }

    private function publish(): void
    {
        // nginx asked already (checkPublish) and read the body only if all was well.
        [$status, $message] = $this->publishRefusal() ?? [0, ''];
        if ($status === 401) {
            header('WWW-Authenticate: Bearer');
        }
        if ($status !== 0) {
            $this->fail($status, $message);
            return;
        }

        $body = file_get_contents('php://input', length: self::MAX_BODY_BYTES + 1);
        if (strlen($body) > self::MAX_BODY_BYTES) {
            $this->fail(413, 'body over 64 KiB');
            return;
        }
        try {
            // Objects stay objects: {} and [] are sent back as they came. (PHP's depth counts the
            // values inside the deepest array or object as one more level.)
            $message = json_decode($body, depth: self::MAX_JSON_DEPTH + 1, flags: JSON_THROW_ON_ERROR);
        } catch (\JsonException $e) {
            $this->fail(400, match ($e->getCode()) {
                JSON_ERROR_UTF8 => 'body is not valid UTF-8',
                JSON_ERROR_DEPTH => 'body is nested deeper than ' . self::MAX_JSON_DEPTH . ' levels',
                default => 'body is not JSON',
            });
            return;
        }
        if (!$message instanceof \stdClass) {
            $this->fail(400, 'body is not a JSON object');
            return;
        }
        $event = property_exists($message, 'event') ? $message->event : 'message';
        if (!is_string($event) || !preg_match('/^[^\r\n]{1,' . self::MAX_EVENT_NAME . '}\z/u', $event)) {
            $this->fail(400, 'event must be a string of 1-64 characters without line breaks');
            return;
        }
        $data = $message->data ?? null;
        $text = is_string($data) ? $data : json_encode($data, self::JSON_FLAGS);

        $this->json(202, ['id' => $this->hub->publish($event, $text)]);
    }

    /** @return array{int, string}|null why a publish is refused before its body is read */
    private function publishRefusal(): ?array
    {
        $length = $_SERVER['HTTP_CONTENT_LENGTH'] ?? '';
        return match (true) {
            !$this->publishAuthorized() => [401, 'unauthorized'],
            !preg_match('~^\s*application/json\s*(;|$)~i', $_SERVER['CONTENT_TYPE'] ?? '')
                => [415, 'Content-Type must be application/json'],
            ctype_digit($length) && (float) $length > self::MAX_BODY_BYTES => [413, 'body over 64 KiB'],
            default => null,
        };
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
        header('Access-Control-Allow-Origin: *');
    }

    private function lastEventId(): ?string
    {
        $value = $_SERVER['HTTP_LAST_EVENT_ID'] ?? $_GET['lastEventId'] ?? null;
        return is_string($value) && preg_match('/^\d{1,1024}\z/', $value) ? $value : null;
    }

    private function frame(int $id, string $event, string $data): string
    {
        $frame = "id: $id\nevent: $event\n";
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

    private function fail(int $status, string $message): void
    {
        $this->json($status, ['error' => $message]);
    }

    private function streamAuthorized(): bool
    {
        return $this->streamToken === null
            || $this->same($this->bearer(), $this->streamToken)
            || $this->same($_GET['token'] ?? null, $this->streamToken);
    }

    private function publishAuthorized(): bool
    {
        return $this->publishToken !== null && $this->same($this->bearer(), $this->publishToken);
    }

    private function bearer(): ?string
    {
        return preg_match('/^bearer +(.+)$/i', $_SERVER['HTTP_AUTHORIZATION'] ?? '', $m) ? $m[1] : null;
    }

    private function same(mixed $given, string $secret): bool
    {
        return is_string($given) && hash_equals($secret, $given);
    }
}
