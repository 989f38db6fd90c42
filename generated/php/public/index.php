<?php

declare(strict_types=1);

use App\Hub;
use App\Server;

require __DIR__ . '/../vendor/autoload.php';

$config = require __DIR__ . '/../config/sse.php';
$server = new Server($config, new Hub($config['database'], $config['history_size']));
if (($_SERVER['PUBLISH_STEP'] ?? '') === 'check') {
    $server->checkPublish($_SERVER['REQUEST_METHOD']);
} else {
    $server->handle($_SERVER['REQUEST_METHOD'], strtok($_SERVER['REQUEST_URI'], '?'));
}
