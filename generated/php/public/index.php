<?php

declare(strict_types=1);

use App\EventStore;
use App\Server;

require __DIR__ . '/../vendor/autoload.php';

$config = require __DIR__ . '/../config/sse.php';
$server = new Server($config, new EventStore($config['database'], $config['keep']));
$server->handle($_SERVER['REQUEST_METHOD'], strtok($_SERVER['REQUEST_URI'], '?'));
