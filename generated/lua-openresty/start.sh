#!/bin/sh
# Runs nginx in the foreground with this folder as its prefix, listening on $HOST:$PORT.
# Extra arguments go to nginx (./start.sh -t tests the configuration).
set -eu
cd "$(dirname "$0")"
default_port=3020
export PORT="${PORT:-$default_port}" HOST="${HOST:-0.0.0.0}"
case "$PORT" in '' | *[!0-9]*) echo "PORT must be a number, got '$PORT'" >&2; exit 2 ;; esac
case "$HOST" in
  *[!0-9A-Za-z.:_-]*) echo "HOST must be an address or host name, got '$HOST'" >&2; exit 2 ;;
  *:*) listen="[$HOST]:$PORT" ;;
  *) listen="$HOST:$PORT" ;;
esac
mkdir -p .nginx/tmp
echo "listen $listen backlog=4096;" > .nginx/listen.conf
# As root, nginx would run its workers as "nobody"; keep them as the user who started it.
if [ "$(id -u)" = 0 ]; then set -- -g 'user root;' "$@"; fi
# SIGTERM/SIGINT reach nginx itself: a fast shutdown closes every stream and exits 0.
exec nginx -p "$PWD/" -c nginx.conf "$@"
