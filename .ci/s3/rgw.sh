#!/usr/bin/env bash
# A single-node Ceph RGW (Debian's ceph-mon, ceph-osd, radosgw) on
# 127.0.0.1, for the S3 tests: one monitor, one memstore OSD, one gateway,
# no cephx, pool size 1, and one S3 user and bucket.
#
#   rgw.sh start DIR    start it (state and logs in DIR); prints the
#                       environment the tests read (REEF_S3_*), also
#                       written to DIR/env
#   rgw.sh stop DIR     stop every daemon started from DIR; no process is
#                       left behind
#
# `cargo xtask ci` starts it before the tests and stops it after. The
# credentials are made up for this throwaway server and are not secrets.
set -euo pipefail

cmd=${1:?usage: rgw.sh start|stop DIR}
dir=${2:?usage: rgw.sh start|stop DIR}

stop() {
    for pidfile in "$dir"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || true
    done
    # Wait (up to 10 s) for them to go, then make sure.
    for _ in $(seq 100); do
        alive=0
        for pidfile in "$dir"/run/*.pid; do
            [ -e "$pidfile" ] || continue
            kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pidfile in "$dir"/run/*.pid; do
        [ -e "$pidfile" ] || continue
        kill -9 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: rgw.sh start|stop DIR" >&2; exit 2; }

for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl; do
    command -v "$bin" >/dev/null || {
        echo "rgw.sh: $bin is missing; install ceph-mon ceph-osd radosgw (.ci/run does)" >&2
        exit 1
    }
done

stop
rm -rf "$dir"
mkdir -p "$dir"/{mon,osd,run,log}
dir=$(cd "$dir" && pwd)
mon_port=$(free_port)
rgw_port=$(free_port)
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
conf="$dir/ceph.conf"
cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = [v1:127.0.0.1:$mon_port]
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
ms bind ipv6 = false
public addr = 127.0.0.1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $dir/run
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
keyring = $dir/keyring
[mon]
mon data = $dir/mon/\$id
[osd]
osd data = $dir/osd/\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 460
osd max object namespace len = 64
# The OSD would send these at boot, and sometimes before it has the
# monitor map, which the monitor refuses ("wrong fsid") and the OSD dies
# of; the script places it in the CRUSH map instead.
osd crush update on start = false
osd class update on start = false
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw enable usage log = false
debug rgw = 1
rgw log http headers = http_if_match
CONF
touch "$dir/keyring"

monmaptool --create --clobber --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >/dev/null 2>&1
ceph-mon -c "$conf" -i a 2>>"$dir/log/stderr" || {
    rc=$?
    # 28 is ENOSPC: Ceph's monitor refuses to start with under 5% of the
    # disk free (mon_data_avail_crit), however much that is.
    echo "ceph-mon did not start (exit $rc$([ "$rc" = 28 ] && echo ': under 5% of the disk is free')); see $dir/log" >&2
    exit 1
}
osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
ceph -c "$conf" osd create "$osd_uuid" >/dev/null 2>>"$dir/log/stderr"
ceph -c "$conf" osd crush create-or-move osd.0 1.0 root=default host=localhost \
    >/dev/null 2>>"$dir/log/stderr"
mkdir -p "$dir/osd/0"
ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
ceph-osd -c "$conf" -i 0 2>>"$dir/log/stderr"
mkdir -p "$dir/rgw"
radosgw -c "$conf" -n client.rgw 2>>"$dir/log/stderr"

access=reeftestaccess
secret=reeftestsecretnotasecret0123456789
ready=0
for _ in $(seq 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$rgw_port/"; then
        ready=1
        break
    fi
    sleep 0.1
done
[ $ready = 1 ] || { echo "rgw.sh: the gateway did not answer on 127.0.0.1:$rgw_port" >&2; stop; exit 1; }
radosgw-admin -c "$conf" user create --uid=reef --display-name=reef \
    --access-key="$access" --secret-key="$secret" >/dev/null 2>>"$dir/log/stderr"
bucket=reef-test
for _ in $(seq 100); do
    # S3 wants the payload's SHA-256 (here: of nothing) in a header, which
    # curl's SigV4 does not add by itself.
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        --user "$access:$secret" "http://127.0.0.1:$rgw_port/$bucket")
    [ "$code" = 200 ] && break
    sleep 0.2
done
[ "$code" = 200 ] || { echo "rgw.sh: creating bucket $bucket answered $code" >&2; [ -n "${RGW_KEEP:-}" ] || stop; exit 1; }
cat > "$dir/env" <<ENV
REEF_S3_ENDPOINT=http://127.0.0.1:$rgw_port
REEF_S3_BUCKET=$bucket
REEF_S3_ACCESS_KEY_ID=$access
REEF_S3_SECRET_ACCESS_KEY=$secret
REEF_S3_ACCESS_LOG=$dir/log/client.rgw.log
ENV
cat "$dir/env"
