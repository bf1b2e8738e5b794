#!/usr/bin/env bash
# A load balancer on loopback in front of registry replicas: HAProxy (Debian haproxy), round-robin
# per request, each replica health-checked with GET /v2/ (200 or 401 is up); its own config under
# DIR, never the packaged service.
#
#   scripts/haproxy.sh start PORT DIR HOST:PORT...   start (installs haproxy when missing) on
#                                                    127.0.0.1:PORT; prints HAPROXY_URL,
#                                                    HAPROXY_SOCKET and HAPROXY_PID as shell
#                                                    assignments (for eval)
#   scripts/haproxy.sh stop DIR                      stop it by the PID it recorded under DIR
#
# HAPROXY_INTER (default 500ms) is the check interval: a replica is taken out after 2 failed
# checks (or at once when a request finds it refusing connections) and back after 2 good ones.
# HAPROXY_SOCKET is the admin socket (`echo "show servers state" | socat - UNIX:$HAPROXY_SOCKET`).
set -euo pipefail
say() { printf 'haproxy.sh: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/apt-quiet.sh"

install_missing() {
    command -v haproxy >/dev/null && return 0
    say "installing haproxy (Debian package)"
    apt_install_quietly haproxy
}

write_config() {  # write_config DIR PORT BACKEND...
    local dir=$1 port=$2 inter=${HAPROXY_INTER:-500ms} n=0
    shift 2
    {
        cat <<EOF
global
    maxconn 2000
    stats socket $dir/admin.sock mode 600 level admin
    pidfile $dir/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    timeout check 2s
    option redispatch
    retries 2
    retry-on conn-failure empty-response

frontend registry
    bind 127.0.0.1:$port
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /v2/ ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect rstatus ^(200|401)$
    default-server inter $inter fastinter $inter downinter $inter fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
EOF
        for backend in "$@"; do
            n=$((n + 1))
            printf '    server r%d %s check\n' "$n" "$backend"
        done
    } >"$dir/haproxy.cfg"
}

answers() { curl -s -o /dev/null --max-time 2 "$1"; }

start() {
    [ $# -ge 3 ] || fail "usage: $0 start PORT DIR HOST:PORT..."
    local port=$1 dir=$2
    shift 2
    install_missing
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    write_config "$dir" "$port" "$@"
    haproxy -c -q -f "$dir/haproxy.cfg" || fail "bad config $dir/haproxy.cfg"
    haproxy -D -f "$dir/haproxy.cfg" || fail "haproxy did not start"
    for _ in $(seq 100); do answers "http://127.0.0.1:$port/" && break; sleep 0.1; done
    answers "http://127.0.0.1:$port/" || fail "haproxy does not answer on 127.0.0.1:$port"
    cat <<EOF
HAPROXY_URL=http://127.0.0.1:$port
HAPROXY_SOCKET=$dir/admin.sock
HAPROXY_PID=$(cat "$dir/haproxy.pid")
EOF
}

stop() {
    [ $# = 1 ] || fail "usage: $0 stop DIR"
    local pid
    pid=$(cat "$1/haproxy.pid" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1/haproxy.cfg"; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ! kill -0 "$pid" 2>/dev/null || kill -9 "$pid"
    fi
    rm -f "$1/haproxy.pid"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
