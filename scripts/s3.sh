#!/usr/bin/env bash
# A real S3 server on loopback for the registry's S3 backend tests: Ceph's RADOS Gateway
# (Debian radosgw) over a throw-away one-node Ceph cluster (one mon, one osd; no mgr, no systemd),
# everything under DIR.
#
#   scripts/s3.sh start PORT DIR   start (installs the Debian packages when missing); prints
#                                  S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                                  AWS_REGION and S3_PIDS as shell assignments (for eval)
#   scripts/s3.sh stop DIR         stop radosgw, osd and mon by the PIDs they wrote under DIR/run
#
# S3 listens on 127.0.0.1:PORT, the mon on 127.0.0.1:PORT+1 (msgr v1), the osd on loopback ports
# of Ceph's 6800-7300 range. The osd keeps its data in a sparse file DIR/osd.block (32 GiB at most).
# Logs are in DIR/log. Start-up takes about 20 s on a new DIR.
set -euo pipefail
say() { printf 's3.sh: %s\n' "$*" >&2; }
fail() { say "error: $*"; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/apt-quiet.sh"

install_missing() {
    local missing=()
    command -v ceph-mon >/dev/null || missing+=(ceph-mon)
    command -v ceph-osd >/dev/null || missing+=(ceph-osd)
    command -v radosgw >/dev/null || missing+=(radosgw)
    command -v ceph >/dev/null || missing+=(ceph-common)
    command -v uuidgen >/dev/null || missing+=(uuid-runtime)
    command -v curl >/dev/null || missing+=(curl)
    [ ${#missing[@]} -gt 0 ] || return 0
    say "installing ${missing[*]} (Debian packages)"
    apt_install_quietly "${missing[@]}"
}

running() {  # running DIR DAEMON: its recorded PID is alive and runs DIR's config
    local pid
    pid=$(cat "$1/run/$2.pid" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-c $1/ceph.conf"
}

answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)" = 200 ]; }

write_config() {  # write_config DIR PORT
    local dir=$1 port=$2
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $(uuidgen)
mon host = v1:127.0.0.1:$((port + 1))
public addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
run dir = $dir/run
crash dir = $dir/log
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
keyring = $dir/admin.keyring
osd objectstore = bluestore
bluestore block path = $dir/osd.block
bluestore block create = true
bluestore block size = 34359738368
osd memory target = 1073741824
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
keyring = $dir/osd/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port tcp_nodelay=1
rgw data = $dir/rgw
keyring = $dir/rgw/keyring
EOF
}

create_cluster() {  # create_cluster DIR PORT: a new mon and osd, and the S3 user's keys
    local dir=$1 port=$2 fsid uuid secret
    mkdir -p "$dir"/{mon,osd,rgw,run,log}
    write_config "$dir" "$port"
    fsid=$(sed -n 's/^fsid = //p' "$dir/ceph.conf")
    ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool --create-keyring "$dir/admin.keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/admin.keyring" >/dev/null
    monmaptool --create --addv a "[v1:127.0.0.1:$((port + 1))]" --fsid "$fsid" "$dir/monmap" >/dev/null
    ceph-mon -c "$dir/ceph.conf" -i a --mkfs --monmap "$dir/monmap" --keyring "$dir/mon.keyring" \
        2>>"$dir/log/setup.log"
    ceph-mon -c "$dir/ceph.conf" -i a 2>>"$dir/log/setup.log"
    uuid=$(uuidgen)
    secret=$(ceph-authtool --gen-print-key)
    [ "$(echo "{\"cephx_secret\": \"$secret\"}" | ceph -c "$dir/ceph.conf" --connect-timeout 20 \
        osd new "$uuid" -i - 2>>"$dir/log/setup.log")" = 0 ] || fail "osd new failed (see $dir/log)"
    ceph-authtool --create-keyring "$dir/osd/keyring" --name osd.0 --add-key "$secret" >/dev/null
    ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$uuid" >>"$dir/log/setup.log" 2>&1
    ceph -c "$dir/ceph.conf" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
        -o "$dir/rgw/keyring" 2>>"$dir/log/setup.log"
    printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
        "$(od -An -N10 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)" \
        "$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/credentials"
    chmod 600 "$dir/credentials"
    touch "$dir/.needs-user"
}

start() {
    [ $# = 2 ] || fail "usage: $0 start PORT DIR"
    local port=$1 dir=$2
    install_missing
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -f "$dir/ceph.conf" ]; then
        create_cluster "$dir" "$port"
    else
        grep -q "endpoint=127.0.0.1:$port " "$dir/ceph.conf" || fail "$dir was made for another port"
        running "$dir" mon.a || ceph-mon -c "$dir/ceph.conf" -i a 2>>"$dir/log/setup.log"
    fi
    running "$dir" osd.0 || ceph-osd -c "$dir/ceph.conf" -i 0 2>>"$dir/log/setup.log"
    running "$dir" client.rgw.a || radosgw -c "$dir/ceph.conf" -n client.rgw.a 2>>"$dir/log/setup.log"
    local url="http://127.0.0.1:$port/"
    for _ in $(seq 240); do answers "$url" && break; sleep 0.25; done
    answers "$url" || { tail -5 "$dir"/log/*.log >&2; fail "radosgw does not answer on $url"; }
    # shellcheck disable=SC1091
    . "$dir/credentials"
    if [ -f "$dir/.needs-user" ]; then
        radosgw-admin -c "$dir/ceph.conf" -n client.admin user create --uid=mdl --display-name=mdl \
            --access-key="$AWS_ACCESS_KEY_ID" --secret-key="$AWS_SECRET_ACCESS_KEY" \
            >>"$dir/log/setup.log" 2>&1 || fail "radosgw-admin user create failed (see $dir/log)"
        rm "$dir/.needs-user"
    fi
    cat <<EOF
S3_ENDPOINT=$url
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_REGION=us-east-1
S3_PIDS="$(cat "$dir/run/client.rgw.a.pid") $(cat "$dir/run/osd.0.pid") $(cat "$dir/run/mon.a.pid")"
EOF
}

stop() {
    [ $# = 1 ] || fail "usage: $0 stop DIR"
    local dir pid
    dir=$(cd "$1" && pwd)
    for daemon in client.rgw.a osd.0 mon.a; do
        if running "$dir" "$daemon"; then
            pid=$(cat "$dir/run/$daemon.pid")
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            ! kill -0 "$pid" 2>/dev/null || kill -9 "$pid"
        fi
        rm -f "$dir/run/$daemon.pid"
    done
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
