#!/bin/bash
# buildyard-worker-latent.service under real systemd: boots systemd as PID 1
# in a container (as test-units.sh does) whose system credentials
# buildyard.worker, buildyard.master, buildyard.token and
# buildyard.master_fingerprint are set the way a latent guest's are (there
# from SMBIOS OEM strings, here from nspawn's --set-credential). The unit's
# LoadCredential= must hand them to `buildyard-workerd --latent`, which
# attaches over TLS to a master in the same container that knows the token
# as vm1's password, pinning the master's certificate, and runs a build. The
# master gets that certificate as the credentials tls-certificate and
# tls-key, through the drop-in buildyard.ini(5) documents.
#   test-latent-unit.sh BUILD_DIR PREFIX
# Exit 77 (skipped) without root or systemd-nspawn.
set -euo pipefail
build=$(realpath "$1")
prefix=$2

. "$(dirname "${BASH_SOURCE[0]}")/../lib/nspawn.sh"
nspawn_test -u "buildyard*"
work=$(mktemp -d /tmp/by-latent-unit-XXXXXX)

vm1_connected() {
    local path
    path=$(ct busctl --system call org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 \
        GetWorker s vm1 | cut -d' ' -f2 | tr -d '"')
    [ "$(ct busctl --system get-property org.buildyard.Master1 "$path" org.buildyard.Worker1 Connected)" = "b true" ]
}
vm1_detached() { ! vm1_connected; }

stage=$work/stage
DESTDIR=$stage cmake --install "$build" >/dev/null
[ -e "$stage$prefix/lib/systemd/system/buildyard-worker-latent.service" ] || fail "unit not installed"
policy=$(find "$stage" -name org.buildyard.Master1.conf -path '*system.d*' | head -1)
[ -n "$policy" ] || fail "bus policy not installed"

token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=9989  # buildyard-masterd.socket's, in the container's own network namespace
etc=$work/etc-buildyard
mkdir -p "$etc/master.d"
cat >"$etc/master.ini" <<INI
[master]
name = latent-unit-test
listen = 127.0.0.1:$port

; Stands in for a latent worker: its password is the token the "guest"
; got, which is where a latent worker's handshake puts the start's token.
[worker vm1]
password = $token

[builder probe]
workers = vm1
step.1 = echo "basedir=\$PWD"
INI

# The master's certificate, made here so that its fingerprint can be set as
# a credential at boot, as latentd does for a guest.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=latent-unit-test \
    -keyout "$etc/tls.key" -out "$etc/tls.pem" 2>/dev/null || fail "openssl req failed"
fingerprint=sha256:$(openssl x509 -in "$etc/tls.pem" -outform DER | sha256sum | cut -d' ' -f1)

# The unit waits for network-online.target, as a guest's should. The host's
# /usr here enables systemd-networkd, which has no configuration in the
# container, so its wait-online would hold that target for two minutes.
units=$work/etc-systemd-system
mkdir -p "$units"
ln -s /dev/null "$units/systemd-networkd-wait-online.service"
mkdir -p "$units/buildyard-masterd.service.d"
cat >"$units/buildyard-masterd.service.d/tls.conf" <<UNIT
[Service]
LoadCredential=tls-certificate:/etc/buildyard/tls.pem
LoadCredential=tls-key:/etc/buildyard/tls.key
UNIT

# boot NAME [NSPAWN-OPTION...]: boots the container.
boot() {
    local name=$1
    shift
    nspawn_boot "$work/nspawn.log" -D / --volatile=yes -M "$name" -b --register=no --keep-unit \
        --console=read-only --private-network \
        --overlay-ro="$prefix:$stage$prefix:$prefix" \
        --bind="$etc:/etc/buildyard" \
        --bind="$units:/etc/systemd/system" \
        --bind-ro="$policy:/etc/dbus-1/system.d/org.buildyard.Master1.conf" \
        "$@" -- "${nspawn_init_args[@]}"
}

# With the host's /usr, every unit is enabled by the default preset, as a
# guest image would enable this one everywhere.
step "without an identity on offer, the unit is skipped, not failed"
boot by-latent-unit-none
ct systemctl start buildyard-worker-latent.service || fail "start failed"
[ "$(ct systemctl show -P ConditionTimestampMonotonic buildyard-worker-latent.service)" != 0 ] \
    || fail "the unit's conditions were never checked"
[ "$(ct systemctl show -P ConditionResult buildyard-worker-latent.service)" = no ] \
    || fail "buildyard-worker-latent.service ran without credentials: $(ct systemctl status --no-pager \
        buildyard-worker-latent.service)"
[ "$(ct systemctl show -P Result buildyard-worker-latent.service)" = success ] || fail "it failed"
[ "$(ct systemctl show -P NRestarts buildyard-worker-latent.service)" = 0 ] || fail "it restarted"
nspawn_stop

step "boot systemd in a container with the latent worker's credentials"
boot by-latent-unit \
    --set-credential=buildyard.worker:vm1 \
    --set-credential="buildyard.master:127.0.0.1:$port" \
    --set-credential="buildyard.token:$token" \
    --set-credential="buildyard.master_fingerprint:$fingerprint"
[ "$(ct systemctl show -P ConditionResult buildyard-worker-latent.service)" = yes ] \
    || fail "buildyard-worker-latent.service did not see the credentials"

step "the master, then the latent worker unit"
ct systemctl start buildyard-masterd.service || fail "cannot start the master"
shown=$(ct busctl --system get-property org.buildyard.Master1 /org/buildyard/Master1 org.buildyard.Master1 \
    TlsFingerprint | cut -d' ' -f2 | tr -d '"')
[ "$shown" = "$fingerprint" ] || fail "the master shows $shown, not the credential's certificate $fingerprint"
ct systemctl start buildyard-worker-latent.service || fail "cannot start buildyard-worker-latent.service"
wait_for "vm1 attached" 30 vm1_connected
journal=$(ct journalctl -u buildyard-worker-latent.service --no-pager)
grep -qF "identity from the credentials in /run/credentials/buildyard-worker-latent.service" <<<"$journal" \
    || fail "the worker did not take its identity from the unit's credentials: $journal"

step "a build runs on it, in the unit's state directory"
out=$(ct buildyardctl submit probe --wait) || fail "buildyardctl submit --wait: $out"
[[ "$out" == *success* ]] || fail "build did not succeed: $out"
log=$(ct buildyardctl log "$(grep -o '[0-9]\+' <<<"$out" | head -1)") || fail "no build log"
grep -qx "basedir=/var/lib/buildyard-worker/probe" <<<"$log" || fail "unexpected build log: $log"

step "systemctl stop detaches it"
ct systemctl stop buildyard-worker-latent.service
wait_for "vm1 detached" 30 vm1_detached
echo "OK"
