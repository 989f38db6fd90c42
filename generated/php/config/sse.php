<?php

// The event spec this server was generated from.
return [
    'name' => "sse-server",
    'path' => "/events",
    'retry' => 3000, // ms, sent on connect (0: off)
    'heartbeat' => 15, // s between heartbeat comments (0: off)
    'history' => 100, // events kept for Last-Event-ID
    // php-fpm holds one stream per worker: pm.max_children in php-fpm.conf is 50 streams + 4.
    'max_streams' => min(10000, 50),
    'cors_origins' => ["*"],
    'cors_credentials' => false,
    'stream_token' => null, // SSE_TOKEN overrides it
    'publish_enabled' => true,
    'publish_token' => null,
    // name, period in ms, data as JSON (bin/ticker.php adds a "timestamp")
    'timed_events' => [
        ['name' => "clock", 'every' => 1000, 'data' => "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"],
        ['name' => "stock-price", 'every' => 2000, 'data' => "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}"],
    ],
    'database' => __DIR__ . '/../var/sse.sqlite',
    // events stored: the history, and how far a stream may fall behind before it is dropped
    'keep' => max(100, 256),
];
