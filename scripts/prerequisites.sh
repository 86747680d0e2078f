# Sourced by dev.sh and test.sh: what they need of the machine. The packages the build links
# against (installed when the user may: root or passwordless sudo), and a Postgres server:
# the one on 127.0.0.1:5432 when it lets user `postgres` in without a password, otherwise a
# private cluster in a folder under target/ (trust auth, 127.0.0.1 only, on a port of its
# own kept in the folder; its socket in the folder too). As root the cluster runs as the
# `postgres` system user, which initdb requires.
#
#   require_build_packages            libpq-dev, make and a C compiler, or one line and exit 1
#   postgres_answers_on_5432          true when DEV_POSTGRES_PROBE_URL (default
#                                     postgres://postgres@127.0.0.1:5432/postgres) takes `select 1`
#   private_postgres_start DIR WHAT [OPTION...]
#                                     starts the cluster in DIR (or finds it running) and sets
#                                     PRIVATE_POSTGRES_PORT; WHAT is the user's alternative, for the
#                                     message when no server can be installed; OPTIONs go to postgres
#   private_postgres_stop             stops the cluster if private_postgres_start started it

PRIVATE_POSTGRES_PROG="${0##*/}"
PRIVATE_POSTGRES_STARTED=0
# Ports of private clusters are taken from here upwards.
PRIVATE_POSTGRES_FIRST_PORT=55432
# A Unix socket's path must fit in 107 bytes: the folder, then `/.s.PGSQL.NNNNN.lock`.
PRIVATE_POSTGRES_MAX_DIR_LENGTH=86

# Installs Debian packages when the user may; false when they may not (or have no apt-get).
install_packages() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local as_root=()
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || return 1
        as_root=(sudo -n)
    fi
    echo "$PRIVATE_POSTGRES_PROG: installing $* (apt-get)" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    "${as_root[@]}" apt-get update -qq >/dev/null &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The Postgres client library to link against (pq-sys looks in these places too).
libpq_present() {
    [ -n "${PQ_LIB_DIR:-}" ] && return 0
    local dir
    for dir in "$(pg_config --libdir 2>/dev/null)" /usr/lib/*-linux-gnu /usr/lib64 /usr/lib /usr/local/lib /usr/local/pgsql/lib; do
        [ -n "$dir" ] && [ -e "$dir/libpq.so" ] && return 0
    done
    return 1
}

require_build_packages() {
    local missing=()
    libpq_present || missing+=(libpq-dev)
    # jemalloc, the services' allocator, is built from source.
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    ((${#missing[@]} == 0)) && return 0
    install_packages "${missing[@]}" && return 0
    local them=them
    ((${#missing[@]} == 1)) && them=it
    echo "$PRIVATE_POSTGRES_PROG: ${missing[*]} not found (needed to build): install $them (sudo apt-get install ${missing[*]})" >&2
    exit 1
}

postgres_answers_on_5432() {
    PGCONNECT_TIMEOUT=3 psql -w "${DEV_POSTGRES_PROBE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" \
        -Atqc 'select 1' >/dev/null 2>&1
}

# The bin folder of the newest Postgres server installed, or of `version` when given and present.
postgres_bin_dir() {
    local version="${1:-}"
    if [ -n "${PG_BIN_DIR:-}" ]; then
        echo "$PG_BIN_DIR"
    elif [ -n "$version" ] && [ -x "/usr/lib/postgresql/$version/bin/initdb" ]; then
        echo "/usr/lib/postgresql/$version/bin"
    else
        local newest
        newest="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null | sort -V | tail -1)"
        if [ -n "$newest" ]; then
            dirname "$newest"
        elif command -v initdb >/dev/null 2>&1; then
            dirname "$(command -v initdb)"
        fi
    fi
}

# Runs a Postgres program as the cluster's owner: `postgres` when this shell is root.
as_cluster_owner() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Why the cluster cannot live in DIR (its owner cannot create, reach or write it, or its
# socket's path would be too long); nothing when it can.
cluster_folder_problem() {
    local dir="$1" owner=(env)
    [ "$(id -u)" = 0 ] && owner=(runuser -u postgres --)
    if ((${#dir} > PRIVATE_POSTGRES_MAX_DIR_LENGTH)); then
        echo "its path is too long for a Unix socket"
    elif ! mkdir -p "$dir" 2>/dev/null || { [ "$(id -u)" = 0 ] && ! chown postgres: "$dir"; } ||
        ! "${owner[@]}" test -w "$dir" -a -x "$dir"; then
        echo "user $("${owner[@]}" id -un) cannot reach or write it"
    fi
}

port_in_use() {
    (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

private_postgres_start() {
    local dir="$1" alternative="$2"
    shift 2
    [[ "$dir" = /* ]] || dir="$PWD/$dir"
    local bin
    bin="$(postgres_bin_dir)"
    if [ -z "$bin" ]; then
        install_packages postgresql || true
        bin="$(postgres_bin_dir)"
    fi
    if [ -z "$bin" ]; then
        echo "$PRIVATE_POSTGRES_PROG: PostgreSQL server not found: install it (sudo apt-get install postgresql) or $alternative" >&2
        exit 1
    fi
    if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
        echo "$PRIVATE_POSTGRES_PROG: initdb does not run as root and there is no 'postgres' user to run it: run as another user or $alternative" >&2
        exit 1
    fi
    local problem
    problem="$(cluster_folder_problem "$dir")"
    if [ -n "$problem" ]; then
        # Named after the repository's path, so that the next run finds it again.
        local elsewhere
        elsewhere="/tmp/$(basename "$dir")-$(printf %s "$PWD" | sha256sum | cut -c1-12)"
        local problem_elsewhere
        problem_elsewhere="$(cluster_folder_problem "$elsewhere")"
        if [ -n "$problem_elsewhere" ]; then
            echo "$PRIVATE_POSTGRES_PROG: no folder for a private Postgres: $dir ($problem), $elsewhere ($problem_elsewhere); $alternative" >&2
            exit 1
        fi
        echo "$PRIVATE_POSTGRES_PROG: the private Postgres lives in $elsewhere: $dir will not do ($problem)" >&2
        dir="$elsewhere"
    fi
    PRIVATE_POSTGRES_DIR="$dir"
    # A cluster made by another major version than the newest needs its own server.
    [ -s "$dir/data/PG_VERSION" ] && bin="$(postgres_bin_dir "$(cat "$dir/data/PG_VERSION")")"
    PRIVATE_POSTGRES_BIN="$bin"

    if as_cluster_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # Line 4 of postmaster.pid is the port it listens on.
        PRIVATE_POSTGRES_PORT="$(sed -n 4p "$dir/data/postmaster.pid")"
        PRIVATE_POSTGRES_STARTED=0
        echo "$PRIVATE_POSTGRES_PROG: private Postgres in $dir on 127.0.0.1:$PRIVATE_POSTGRES_PORT (already running; left running)" >&2
        return 0
    fi
    if [ ! -f "$dir/initdb.done" ]; then
        rm -rf "$dir/data"
        if ! as_cluster_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C \
            >"$dir/initdb.log" 2>&1; then
            echo "$PRIVATE_POSTGRES_PROG: initdb failed; see $dir/initdb.log" >&2
            exit 1
        fi
        touch "$dir/initdb.done"
    fi
    local port
    port="$(cat "$dir/port" 2>/dev/null || true)"
    if [ -z "$port" ] || port_in_use "$port"; then
        port="$PRIVATE_POSTGRES_FIRST_PORT"
        while port_in_use "$port"; do port=$((port + 1)); done
        echo "$port" >"$dir/port"
    fi
    local options="-p $port -c listen_addresses=127.0.0.1 -k $(printf %q "$dir")"
    if ! as_cluster_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$options $*" -w -t 60 start \
        >/dev/null 2>&1; then
        echo "$PRIVATE_POSTGRES_PROG: the private Postgres in $dir did not start; see $dir/postgres.log" >&2
        exit 1
    fi
    PRIVATE_POSTGRES_STARTED=1
    PRIVATE_POSTGRES_PORT="$port"
    echo "$PRIVATE_POSTGRES_PROG: private Postgres in $dir on 127.0.0.1:$port (started; stopped on exit)" >&2
}

private_postgres_stop() {
    [ "$PRIVATE_POSTGRES_STARTED" = 1 ] || return 0
    PRIVATE_POSTGRES_STARTED=0
    as_cluster_owner "$PRIVATE_POSTGRES_BIN/pg_ctl" -D "$PRIVATE_POSTGRES_DIR/data" -m fast -w stop >/dev/null 2>&1 ||
        echo "$PRIVATE_POSTGRES_PROG: could not stop the private Postgres in $PRIVATE_POSTGRES_DIR" >&2
}
