#!/usr/bin/env perl
# sse-server: a Server-Sent Events server, Mojolicious::Lite on its own daemon.
use Mojolicious::Lite -signatures;
use Mojo::JSON qw(decode_json to_json);
use Mojo::Util qw(encode secure_compare);
use POSIX qw(strftime);
use Time::HiRes qw(time);
no warnings 'experimental::builtin';
use builtin qw(created_as_string);

use constant {
  RETRY_MS         => 3000,
  HEARTBEAT_S      => 15,
  HISTORY          => 100,
  MAX_CLIENTS      => 10000,
  MAX_BODY         => 64 * 1024,
  # A client with this much written but not yet taken by its socket is dropped.
  MAX_QUEUE_FRAMES => 256,
  MAX_QUEUE_BYTES  => 1024 * 1024,
  PUBLISH_TOKEN    => undef,
  CORS_CREDENTIALS => 0,
};
my $stream_token = length($ENV{SSE_TOKEN} // '') ? $ENV{SSE_TOKEN} : undef;
my %cors_origins = map { $_ => 1 } ("*");
my @timed_events = (
  ["clock", 1000, decode_json("{\"source\":\"server-clock\",\"timezone\":\"UTC\"}")],
  ["stock-price", 2000, decode_json("{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}")],
);

# One process, one event loop: the clients, the history and the id counter live here, and a
# replay plus the join to the broadcast happen without anything running in between.
my (%clients, @history);
my $last_id = 0;

sub send_frame ($client, $frame) {
  # $c->write only appends to the response buffer; the drain callback runs once the socket
  # has taken all of it. What is written in between is this client's queue.
  if ($client->{frames} >= MAX_QUEUE_FRAMES || $client->{bytes} + length $frame > MAX_QUEUE_BYTES) {
    delete $clients{$client->{id}};
    my $stream = Mojo::IOLoop->stream($client->{id});
    $stream->close if $stream;
    return;
  }
  $client->{frames}++;
  $client->{bytes} += length $frame;
  $client->{c}->write($frame => sub { $client->{frames} = $client->{bytes} = 0 });
}

sub publish ($event, $text) {
  my $id    = ++$last_id;
  my @lines = length $text ? split /\r\n|\r|\n/, $text, -1 : ('');
  my $frame = encode 'UTF-8', join '', "id: $id\nevent: $event\n", (map {"data: $_\n"} @lines), "\n";
  if (HISTORY) {
    push @history, [$id, $frame];
    shift @history if @history > HISTORY;
  }
  send_frame($_, $frame) for values %clients;
  return $id;
}

sub timestamp { my $t = time; strftime('%Y-%m-%dT%H:%M:%S', gmtime $t) . sprintf('.%03dZ', ($t - int $t) * 1000) }

sub bearer ($c) { ($c->req->headers->authorization // '') =~ /\ABearer (.+)\z/ ? $1 : undef }

sub token_ok ($expected, $given) { defined $given && secure_compare($expected, $given) }

sub error ($c, $status, $message) { $c->render(status => $status, json => {error => $message}) }

sub preflight ($c) {
  $c->res->headers->header('Access-Control-Allow-Methods' => 'GET, POST, OPTIONS');
  $c->res->headers->header('Access-Control-Allow-Headers' => 'Last-Event-ID, Cache-Control, Content-Type, Authorization');
  $c->res->headers->header('Access-Control-Max-Age' => 86400);
  $c->rendered(204);
}

sub not_allowed ($allow) {
  sub ($c) { $c->res->headers->allow($allow); error($c, 405, 'method not allowed') }
}

hook before_dispatch => sub ($c) {
  my $origin  = $c->req->headers->origin // '';
  my $headers = $c->res->headers;
  if ($cors_origins{'*'}) { $headers->header('Access-Control-Allow-Origin' => '*') }
  else {
    $headers->vary('Origin');
    if ($cors_origins{$origin}) {
      $headers->header('Access-Control-Allow-Origin'      => $origin);
      $headers->header('Access-Control-Allow-Credentials' => 'true') if CORS_CREDENTIALS;
    }
  }
};

get "/events" => sub ($c) {
  my $query = $c->req->query_params;
  if (defined $stream_token && !token_ok($stream_token, bearer($c)) && !token_ok($stream_token, $query->param('token'))) {
    return error($c, 401, 'unauthorized');
  }
  if (keys %clients >= MAX_CLIENTS) {
    $c->res->headers->header('Retry-After' => 1);
    return error($c, 503, 'too many clients');
  }
  my $last = $c->req->headers->header('Last-Event-ID') // $query->param('lastEventId') // '';

  $c->inactivity_timeout(0);    # the daemon would close a quiet stream after 30 s
  my $headers = $c->res->headers;
  $headers->content_type('text/event-stream; charset=utf-8');
  $headers->cache_control('no-store');
  $headers->header('X-Accel-Buffering' => 'no');

  my $id     = $c->tx->connection;
  my $client = $clients{$id} = {id => $id, c => $c, frames => 0, bytes => 0};
  # Fires as soon as the connection is gone: the client left, a heartbeat write failed, or
  # it was dropped.
  $c->on(finish => sub ($c) { delete $clients{$id} });

  send_frame($client, RETRY_MS ? 'retry: ' . RETRY_MS . "\n\n" : ": connected\n\n");
  if ($last =~ /\A[0-9]{1,1024}\z/) {
    send_frame($client, $_->[1]) for grep { $_->[0] > $last } @history;
  }
};
options "/events" => \&preflight;
any "/events" => not_allowed('GET, OPTIONS');

post '/publish' => sub ($c) {
  return error($c, 401, 'unauthorized') if defined PUBLISH_TOKEN && !token_ok(PUBLISH_TOKEN, bearer($c));
  return error($c, 413, 'body over 64 KiB') if $c->req->body_size > MAX_BODY;

  my $message = eval { decode_json($c->req->body) };
  return error($c, 400, 'body is not JSON')           if $@;
  return error($c, 400, 'body must be a JSON object') if ref $message ne 'HASH';
  my $event = exists $message->{event} ? $message->{event} : 'message';
  # JSON strings decode to Perl strings, numbers to numbers: only created_as_string tells.
  unless (defined $event && created_as_string($event) && length $event && length $event <= 64 && $event !~ /[\r\n]/) {
    return error($c, 400, 'event must be a string of 1-64 characters without line breaks');
  }
  my $data = $message->{data};
  my $text = defined $data && created_as_string($data) ? $data : to_json($data);
  $c->render(status => 202, json => {id => publish($event, $text)});
};
options '/publish' => \&preflight;
any '/publish'     => not_allowed('POST, OPTIONS');

get '/health' => sub ($c) { $c->render(json => {status => 'ok', clients => scalar keys %clients}) };
any '/health' => not_allowed('GET');

for my $timed (@timed_events) {
  my ($name, $every_ms, $data) = @$timed;
  Mojo::IOLoop->recurring($every_ms / 1000 => sub { publish($name, to_json({%$data, timestamp => timestamp()})) });
}
Mojo::IOLoop->recurring(HEARTBEAT_S, sub { send_frame($_, ": heartbeat\n\n") for values %clients }) if HEARTBEAT_S;

hook before_server_start => sub ($server, $app) {
  $server->silent(1);
  $server->ioloop->max_connections(MAX_CLIENTS + 100);    # streams, plus room for other requests
  my $url = $server->listen->[0];
  Mojo::IOLoop->next_tick(sub { say "sse-server listening on $url" });

  # The daemon's own handler stops the loop at once; end every stream first, then stop once
  # the connections are closed (or after 2 s, for clients that stopped reading).
  $SIG{TERM} = $SIG{INT} = sub {
    $_->{c}->finish for values %clients;
    Mojo::IOLoop->stop_gracefully;
    Mojo::IOLoop->timer(2 => sub { Mojo::IOLoop->stop });
  };
};

# PORT and HOST choose where `daemon` listens, unless MOJO_LISTEN or -l says otherwise.
$ENV{MOJO_LISTEN} //= 'http://' . ($ENV{HOST} || '0.0.0.0') . ':' . ($ENV{PORT} || 3019);
$| = 1;
app->start;
