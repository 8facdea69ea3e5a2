# Shell helpers shared by deploy/quickstart.sh and tests/run.sh. Source it; it defines
# functions only.

# Prints a TCP port on 127.0.0.1 that nothing listens on.
portico_free_port() {
  local port
  while :; do
    # Below Linux's ephemeral range (32768-60999): a port picked there can be taken as the
    # source port of an outgoing connection before our server binds it.
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

# portico_build <build dir> [cmake args...] [-- targets...]: configures (every time: a no-op
# when nothing changed, and it picks up packages installed since, such as the test set after a
# quickstart) and builds everything, or only the given targets. Uses ccache when installed.
portico_build() {
  local dir=$1
  shift
  local args=() targets=()
  while (($#)); do
    if [[ $1 == -- ]]; then
      shift
      targets=("$@")
      break
    fi
    args+=("$1")
    shift
  done
  if command -v ccache >/dev/null; then
    args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    # Every target compiles with a precompiled header, which ccache only caches with these
    # sloppiness settings; a base dir makes another clone's build hit the same cache.
    export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
    export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PORTICO_ROOT}
  fi
  cmake -S "$PORTICO_ROOT" -B "$dir" -G Ninja "${args[@]}" >/dev/null
  if ((${#targets[@]})); then
    cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"
  else
    cmake --build "$dir" -j "$(nproc)"
  fi
}

# portico_pg_start <folder> <port>: a private PostgreSQL 15 server with its data in <folder>,
# listening on 127.0.0.1:<port>, run as the `postgres` user when we are root. Trust auth on
# loopback only: this is a developer/test instance.
portico_pg_start() {
  local dir=$1 port=$2 bin=/usr/lib/postgresql/15/bin
  local as=()
  if [[ $(id -u) -eq 0 ]]; then
    as=(runuser -u postgres --)
  fi
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$dir"
    # The server runs as `postgres`, which must be able to traverse every folder above its
    # data folder (a checkout under /root, a mktemp folder). Grant search (x) only, no read.
    local up=$dir
    while [[ $up != / ]]; do
      up=$(dirname "$up")
      if ! runuser -u postgres -- test -x "$up"; then
        echo "note: allowing the postgres user to traverse $up (chmod o+x)" >&2
        chmod o+x "$up"
      fi
    done
  fi
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; return 1; }
  fi
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${PORTICO_PG_EXTRA_OPTS:-}" start >/dev/null ||
    { tail -n 20 "$dir/server.log" >&2; return 1; }
}

# portico_pg_stop <folder>
portico_pg_stop() {
  local dir=$1 bin=/usr/lib/postgresql/15/bin
  local as=()
  if [[ $(id -u) -eq 0 ]]; then as=(runuser -u postgres --); fi
  if [[ -f $dir/data/postmaster.pid ]]; then
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# portico_redis_start <folder> <port>: a private redis-server on 127.0.0.1:<port> without
# persistence (the rate-limit plugins' redis policy tests), its pid file and log in <folder>.
portico_redis_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" || return 1
  local _
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$dir/redis.log" >&2
  return 1
}

# portico_redis_stop <folder>
portico_redis_stop() {
  local dir=$1
  if [[ -f $dir/redis.pid ]]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    local _
    for _ in $(seq 50); do
      [[ -f $dir/redis.pid ]] || return 0
      sleep 0.1
    done
  fi
}
