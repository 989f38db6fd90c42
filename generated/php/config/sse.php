<?php

// The event spec this server was generated from. The cap on streams is not here: bin/start
// takes it from SSE_MAX_STREAMS (at most the spec's maxClients, 10000) and gives it to nginx.
return [
    'stream_path' => "/events",
    'retry_ms' => 3000, // sent on connect
    'heartbeat_seconds' => 15, // between heartbeat comments
    'history_size' => 100, // events kept for Last-Event-ID
    // name, period in ms, data (bin/ticker.php adds a "timestamp")
    'timed_events' => [
        ['name' => "clock", 'every' => 1000, 'data' => ["source" => "server-clock", "timezone" => "UTC"]],
        ['name' => "stock-price", 'every' => 2000, 'data' => ["symbol" => "ACME", "price" => 128.42, "currency" => "USD", "exchange" => "NASDAQ"]],
    ],
    'database' => __DIR__ . '/../var/sse.sqlite',
];
