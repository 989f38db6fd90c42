#!/usr/bin/env perl
# sse-server: a Server-Sent Events server, Mojolicious::Lite on its own daemon.
use Mojolicious::Lite -signatures;
use Mojo::JSON   qw(decode_json to_json);
use Mojo::Util   qw(decode encode secure_compare);
use POSIX        qw(strftime);
use Scalar::Util qw(weaken);
use Time::HiRes  qw(time);
no warnings 'experimental::builtin';
use builtin qw(created_as_string);

use constant {
  SERVER_NAME       => "sse-server",
  DEFAULT_PORT      => 3019,
  STREAM_PATH       => "/events",
  RETRY_MS          => 3000,
  HEARTBEAT_SECONDS => 15,
  HISTORY_SIZE      => 100,
  MAX_CLIENTS       => 10000,
  MAX_QUEUE_BYTES   => 1024 * 1024,
  MAX_BODY_BYTES    => 64 * 1024,
  MAX_EVENT_NAME    => 64,
  MAX_JSON_DEPTH    => 64,
  HEADER_TIMEOUT    => 15,
};
#<<< the spec's timed events (name, period in ms, data), one to a line, as generated
use constant TIMED_EVENTS => [
  ["clock", 1000, { "source" => "server-clock", "timezone" => "UTC" }],
  ["stock-price", 2000, { "symbol" => "ACME", "price" => 128.42, "currency" => "USD", "exchange" => "NASDAQ" }],
];
#>>>

# Tokens come from the environment only; an empty variable counts as unset.
my $stream_token = length($ENV{SSE_TOKEN} // '') ? $ENV{SSE_TOKEN} : undef;

# Made at start when SSE_PUBLISH_TOKEN is unset, and then logged once.
my $publish_token      = length($ENV{SSE_PUBLISH_TOKEN} // '') ? $ENV{SSE_PUBLISH_TOKEN} : undef;
my $publish_token_made = !defined $publish_token;
$publish_token //= do {
  open my $random, '<:raw', '/dev/urandom' or die "cannot read /dev/urandom: $!";
  read $random, my $bytes, 16;
  close $random;
  unpack 'H*', $bytes;
};

# The hub: the id counter, the history and the clients. One process, one event loop: the
# replay and the join to the broadcast happen with nothing running in between.
my $hub = {last_id => 0, history => [], clients => {}};

sub frame ($id, $event, $data) {
  my @lines = split /\r\n|\r|\n/, $data, -1;
  @lines = ('') unless @lines;
  return encode 'UTF-8', join '', "id: $id\nevent: $event\n", (map {"data: $_\n"} @lines), "\n";
}

# $c->write only appends to the response buffer; the drain callback runs once the socket has
# taken all of it. What is written in between is this client's queue.
sub send_to ($client, $bytes) {
  if ($client->{queued} + length $bytes > MAX_QUEUE_BYTES) {
    unsubscribe($client);

    # close, not close_gracefully: the client takes nothing, so its socket is closed at once.
    my $stream = Mojo::IOLoop->stream($client->{id});
    $stream->close if $stream;
    return;
  }
  $client->{queued} += length $bytes;
  $client->{c}->write($bytes => sub { $client->{queued} = 0 });
  return;
}

sub subscribe ($c, $last_event_id) {
  my $client = $hub->{clients}{$c->tx->connection} = {id => $c->tx->connection, c => $c, queued => 0};
  send_to($client, 'retry: ' . RETRY_MS . "\n\n");
  if (defined $last_event_id) {
    send_to($client, $_->[1]) for grep { $_->[0] > $last_event_id } @{$hub->{history}};
  }
  return $client;
}

sub unsubscribe ($client) { delete $hub->{clients}{$client->{id}}; return }

sub count () { return scalar keys %{$hub->{clients}} }

sub publish ($event, $data) {
  my $id    = ++$hub->{last_id};
  my $frame = frame($id, $event, $data);
  push @{$hub->{history}}, [$id, $frame];
  shift @{$hub->{history}} if @{$hub->{history}} > HISTORY_SIZE;
  send_to($_, $frame) for values %{$hub->{clients}};
  return $id;
}

sub timestamp () {
  my $t = time;
  return strftime('%Y-%m-%dT%H:%M:%S', gmtime $t) . sprintf('.%03dZ', ($t - int $t) * 1000);
}

sub last_event_id ($c) {
  my $value = $c->req->headers->header('Last-Event-ID') // $c->req->query_params->param('lastEventId') // '';
  return $value =~ /\A[0-9]{1,1024}\z/ ? $value : undef;
}

sub bearer ($c) { return ($c->req->headers->authorization // '') =~ /\Abearer +(.+)\z/i ? $1 : undef }

sub same ($given, $secret) { return defined $given && secure_compare($given, $secret) }

sub stream_authorized ($c) {
  return
       !defined $stream_token
    || same(bearer($c),                            $stream_token)
    || same($c->req->query_params->param('token'), $stream_token);
}

sub publish_authorized ($c) { return same(bearer($c), $publish_token) }

# Deeper than MAX_JSON_DEPTH? Counted on the text, before the parser recurses into it.
sub too_deep ($json) {
  my $depth = 0;
  while ($json =~ /"(?:[^"\\]++|\\.)*+"|([\[{])|([\]}])/g) {
    if    (defined $1) { return 1 if ++$depth > MAX_JSON_DEPTH }
    elsif (defined $2) { $depth-- }
  }
  return 0;
}

sub error ($c, $status, $message) {
  $c->res->headers->www_authenticate('Bearer') if $status == 401;
  $c->res->headers->header('Retry-After' => 1) if $status == 503;
  return $c->render(status => $status, json => {error => $message});
}

sub preflight ($c) {
  $c->res->headers->header('Access-Control-Allow-Methods' => 'GET, POST, OPTIONS');
  $c->res->headers->header(
    'Access-Control-Allow-Headers' => 'Last-Event-ID, Cache-Control, Content-Type, Authorization');
  $c->res->headers->header('Access-Control-Max-Age' => 86400);
  return $c->rendered(204);
}

sub not_allowed ($allow) {
  return sub ($c) { $c->res->headers->allow($allow); return error($c, 405, 'method not allowed') };
}

sub headers_read ($req) { return $req->content->is_parsing_body || $req->content->is_finished }

# Mojolicious reads a whole request body (up to max_request_size, 16 MiB) before a route runs.
# Stop reading at MAX_BODY_BYTES, or as soon as the headers announce more: the route answers 413.
# A request whose headers are not complete after HEADER_TIMEOUT seconds is closed.
hook after_build_tx => sub ($tx, $app) {
  my $req = $tx->req;
  $req->on(
    progress => sub ($req, @) {
      return unless headers_read($req);
      my $length = $req->headers->content_length // '';

      # (progress: the body bytes read so far, chunk sizes included)
      if (($length =~ /\A[0-9]+\z/ && $length > MAX_BODY_BYTES) || $req->content->progress > MAX_BODY_BYTES) {
        $req->error({message => 'body over 64 KiB', code => 413});
      }
    }
  );
  weaken $tx;
  my $timer = Mojo::IOLoop->timer(
    HEADER_TIMEOUT,
    sub {
      return if !$tx || headers_read($req);
      my $stream = Mojo::IOLoop->stream($tx->connection // '');
      $stream->close if $stream;
    }
  );
  $req->on(finish => sub { Mojo::IOLoop->remove($timer) });
};

hook before_dispatch => sub ($c) { $c->res->headers->access_control_allow_origin('*') };

# Mojolicious' own 404 and 500 pages are HTML: answer JSON instead.
hook before_render => sub ($c, $args) {
  my $template = $args->{template} // '';
  if    ($template eq 'not_found') { $args->{json} = {error => 'not found'} }
  elsif ($template eq 'exception') { $args->{json} = {error => 'internal server error'} }
};

get STREAM_PATH, sub ($c) {
  return error($c, 401, 'unauthorized') unless stream_authorized($c);
  return error($c, 503, 'too many clients') if count() >= MAX_CLIENTS;

  $c->inactivity_timeout(0);    # the daemon would close a quiet stream
  my $headers = $c->res->headers;
  $headers->content_type('text/event-stream; charset=utf-8');
  $headers->cache_control('no-store');
  $headers->header('X-Accel-Buffering' => 'no');

  # Mojolicious 9.31 has no write_sse (it came in 9.41): frames are written by hand.
  my $client = subscribe($c, last_event_id($c));

  # Fires as soon as the connection is gone: the client left (also before its first byte),
  # a write failed, or it was dropped.
  $c->on(finish => sub ($c) { unsubscribe($client) });
};
options STREAM_PATH, \&preflight;
any STREAM_PATH, not_allowed('GET, OPTIONS');

post '/publish' => sub ($c) {
  my $req = $c->req;
  return error($c, 401, 'unauthorized') unless publish_authorized($c);
  return error($c, 415, 'Content-Type must be application/json')
    unless ($req->headers->content_type // '') =~ m{\A\s*application/json\s*(?:;|\z)}i;
  return error($c, 413, 'body over 64 KiB') if (($req->error // {})->{code} // 0) == 413;

  my $body = $req->body;
  return error($c, 400, 'body is not valid UTF-8') unless defined decode('UTF-8', $body);
  return error($c, 400, 'body is nested deeper than ' . MAX_JSON_DEPTH . ' levels') if too_deep($body);
  my $message = eval { decode_json($body) };
  return error($c, 400, 'body is not JSON')           if $@;
  return error($c, 400, 'body must be a JSON object') if ref $message ne 'HASH';
  my $event = exists $message->{event} ? $message->{event} : 'message';

  # JSON strings decode to Perl strings, numbers to numbers: only created_as_string tells.
  if ( !defined $event
    || !created_as_string($event)
    || !length $event
    || length $event > MAX_EVENT_NAME
    || $event =~ /[\r\n]/)
  {
    return error($c, 400, 'event must be a string of 1-64 characters without line breaks');
  }
  my $data = $message->{data};
  my $text = defined $data && created_as_string($data) ? $data : to_json($data);
  $c->render(status => 202, json => {id => publish($event, $text)});
};
options '/publish' => \&preflight;
any '/publish' => not_allowed('POST, OPTIONS');

get '/health' => sub ($c) { $c->render(json => {status => 'ok', clients => count()}) };
any '/health' => not_allowed('GET');

for my $timed (@{+TIMED_EVENTS}) {
  my ($name, $every_ms, $data) = @$timed;
  Mojo::IOLoop->recurring($every_ms / 1000 => sub { publish($name, to_json({%$data, timestamp => timestamp()})) });
}

Mojo::IOLoop->recurring(HEARTBEAT_SECONDS, sub { send_to($_, ": heartbeat\n\n") for values %{$hub->{clients}} });

hook before_server_start => sub ($server, $app) {
  $server->silent(1);
  $server->inactivity_timeout(HEADER_TIMEOUT);            # idle connections; streams turn it off
  $server->ioloop->max_connections(MAX_CLIENTS + 100);    # streams, plus room for other requests
  my $url = $server->listen->[0];
  Mojo::IOLoop->next_tick(sub {
    say "publish token: $publish_token (set SSE_PUBLISH_TOKEN to choose your own)" if $publish_token_made;
    say SERVER_NAME . " listening on $url";
  });

  # The daemon's own handler stops the loop at once; end every stream first, then stop once
  # the connections are closed (or after 2 s, for clients that stopped reading). Not local:
  # the handler must outlive this hook.
  $SIG{TERM} = $SIG{INT} = sub {    ## no critic (RequireLocalizedPunctuationVars)
    $_->{c}->finish for values %{$hub->{clients}};
    Mojo::IOLoop->stop_gracefully;
    Mojo::IOLoop->timer(2 => sub { Mojo::IOLoop->stop });
  };
};

# PORT and HOST choose where `daemon` listens, unless MOJO_LISTEN or -l says otherwise.
$ENV{MOJO_LISTEN} //= 'http://' . ($ENV{HOST} || '0.0.0.0') . ':' . ($ENV{PORT} || DEFAULT_PORT);
STDOUT->autoflush(1);
app->start;
