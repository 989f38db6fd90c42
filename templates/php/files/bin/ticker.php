<?php

// Publishes the timed events of the spec: one process for the whole server, started by bin/start.

declare(strict_types=1);

use App\Hub;
use App\Server;

require __DIR__ . '/../vendor/autoload.php';

$config = require __DIR__ . '/../config/sse.php';
$hub = new Hub($config['database'], $config['history_size']);

pcntl_async_signals(true);
pcntl_signal(SIGTERM, fn () => exit(0));
pcntl_signal(SIGINT, fn () => exit(0));

$due = [];
foreach ($config['timed_events'] as $i => $event) {
    $due[$i] = microtime(true) + $event['every'] / 1000;
}

while (true) {
    foreach ($config['timed_events'] as $i => $event) {
        if (microtime(true) < $due[$i]) {
            continue;
        }
        $data = (array) $event['data']; // (config/sse.php writes data without fields as new \stdClass())
        $data['timestamp'] = (new DateTimeImmutable('now', new DateTimeZone('UTC')))->format('Y-m-d\TH:i:s.v\Z');
        $hub->publish($event['name'], json_encode($data, Server::JSON_FLAGS));
        // Next tick on the original schedule; skip ticks missed while the database was busy.
        $due[$i] = max($due[$i] + $event['every'] / 1000, microtime(true));
    }
    usleep((int) max(0, (min($due) - microtime(true)) * 1_000_000));
}
