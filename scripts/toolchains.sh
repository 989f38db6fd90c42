#!/usr/bin/env bash
# Install every target's toolchain on Debian 12 (npm run toolchains; .ci/run runs it too).
# Idempotent: asks apt only for missing packages, and fetches Go and Rust only when the
# installed ones are missing or too old. Needs root or sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
say() { echo "toolchains: $*"; }

# 1. Debian packages named by templates/*/target.json (toolchains and linters), plus luajit2
#    (OpenResty's LuaJIT, which the nginx Lua module also uses; Debian's plain `luajit` would
#    remove that module) for the literal tests, chromium for the browser tests and B1, and
#    redis-server for the broker checks (group R), openssl for R7's private CA.
packages=$(node scripts/debian-packages.mjs luajit2 chromium redis-server openssl)
missing=$(for p in $packages; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  say "installing Debian packages: $(echo $missing)"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  say "Debian packages: all installed"
fi

version_at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
arch=$(dpkg --print-architecture)

# 2. Go 1.22+ (Debian 12's golang-go is 1.19): the official tarball in /usr/local/go.
go_version=$(go version 2>/dev/null | sed -n 's/^go version go\([0-9.]*\).*/\1/p' || true)
if [ -n "$go_version" ] && version_at_least "$go_version" 1.22; then
  say "Go $go_version: ok"
else
  latest=$(curl -fsSL 'https://go.dev/VERSION?m=text' | head -1)
  say "installing $latest from go.dev"
  curl -fsSL "https://go.dev/dl/$latest.linux-$arch.tar.gz" -o /tmp/go.tar.gz
  $SUDO rm -rf /usr/local/go && $SUDO tar -C /usr/local -xzf /tmp/go.tar.gz && rm /tmp/go.tar.gz
  $SUDO ln -sf /usr/local/go/bin/go /usr/local/bin/go
fi

# 3. Rust 1.89+ with cargo (Debian 12's is older): rustup, minimal profile.
cargo_version=$(cargo --version 2>/dev/null | awk '{print $2}' || true)
if [ -n "$cargo_version" ] && version_at_least "$cargo_version" 1.89; then
  say "Rust $cargo_version: ok"
else
  say "installing Rust (stable) with rustup"
  curl -fsSL https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt --default-toolchain stable >/dev/null
  for tool in cargo rustc; do $SUDO ln -sf "$HOME/.cargo/bin/$tool" /usr/local/bin/$tool; done
fi

# Deno needs nothing here: the deno-oak project installs it into its node_modules with npm.
say "done; \`node bin/create-sse-server.js list\` shows what each target finds"
