#!/bin/bash
# make-guest.sh [--workerd PATH] OUTDIR
#
# Builds the test guest for latent workers: OUTDIR/vmlinuz (Debian's kernel)
# and OUTDIR/initrd.gz, an initramfs whose /init brings up eth0 for qemu user
# networking and runs `buildyard-workerd --latent`, which takes its identity
# from the kernel command line that latentd appends to. Boot it directly
# (<os><kernel>/<initrd>) in a <domain type='qemu'> with <features><acpi/>,
# an <interface type='user'> of model virtio and a serial console.
#
# Offline but for apt: the kernel and busybox come from `apt-get download`
# (linux-image-amd64's exact linux-image-* dependency, busybox-static),
# cached in $BUILDYARD_VM_CACHE (default: OUTDIR/../vm-cache) so a CI run
# downloads them once. workerd is copied with every library it loads
# (tests/lib/worker-libraries.sh) and the dynamic loader. Default --workerd: OUTDIR/../bin/buildyard-workerd.
#
# In the guest:
#   - the serial console (ttyS0) gets the kernel's and /init's messages, and
#     workerd's log;
#   - the ACPI power button (virDomainShutdown) makes busybox acpid run
#     /etc/acpi/PWRF/00000080, which stops workerd with SIGTERM; /init then
#     powers off. So does workerd exiting for any reason;
#   - the first virtio disk, if any, is /dev/vda (virtio_blk is loaded).
set -euo pipefail
# shellcheck source=../lib/worker-libraries.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/worker-libraries.sh"

workerd=
while [ $# -gt 0 ]; do
    case "$1" in
    --workerd) workerd=$2; shift 2 ;;
    -*) echo "usage: $0 [--workerd PATH] OUTDIR" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -eq 1 ] || { echo "usage: $0 [--workerd PATH] OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
workerd=${workerd:-$out/../bin/buildyard-workerd}
cache=${BUILDYARD_VM_CACHE:-$out/../vm-cache}
[ -x "$workerd" ] || { echo "make-guest.sh: no buildyard-workerd at $workerd (build it first)" >&2; exit 1; }
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The modules /init loads, with what they depend on (resolved below):
# networking, the first disk, entropy (a virtio-rng device spares workerd a
# wait of seconds for the crng under TCG), and the power button for acpid.
modules="virtio_pci virtio_net virtio_blk virtio_rng button evdev"

log() { echo "make-guest.sh: $*" >&2; }

# download PACKAGE: the .deb of PACKAGE's candidate version, from the cache
# or apt. Prints its path.
download() {
    local pkg=$1 version file
    version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
    [ -n "$version" ] && [ "$version" != "(none)" ] || {
        log "apt knows no $pkg (run apt-get update)"
        return 1
    }
    # apt-get download names files PKG_VERSION_ARCH.deb with ':' escaped as %3a.
    file=$(ls "$cache/${pkg}_${version//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$file" ]; then
        log "downloading $pkg $version"
        # -o APT::Sandbox::User=root: the _apt user cannot write to the cache here.
        (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" >&2)
        file=$(ls "$cache/${pkg}_${version//:/%3a}_"*.deb | head -1)
    fi
    echo "$file"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# linux-image-amd64 is a metapackage: its one dependency is the real image.
meta=$(download linux-image-amd64)
image_pkg=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ (]*\).*/\1/p' | head -1)
[ -n "$image_pkg" ] || { log "cannot tell the kernel package from $meta"; exit 1; }
kernel_deb=$(download "$image_pkg")
busybox_deb=$(download busybox-static)

mkdir -p "$work/kernel" "$work/busybox"
dpkg-deb -x "$kernel_deb" "$work/kernel"
dpkg-deb -x "$busybox_deb" "$work/busybox"
vmlinuz=$(ls "$work/kernel/boot/"vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$work/kernel/lib/modules/$kver

# --- the initramfs tree ----------------------------------------------------
root=$work/root
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/lib/buildyard-worker,lib/modules,etc/acpi/PWRF}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# workerd and exactly what the dynamic loader would load for it.
cp "$workerd" "$root/sbin/buildyard-workerd"
strip --strip-debug "$root/sbin/buildyard-workerd" 2>/dev/null || true
libs=$(worker_libraries "$workerd")
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

# Modules in load order: each after the modules it depends on. Debian's
# kernel package has no modules.dep (depmod runs at install), so the
# dependencies come from each module's own .modinfo "depends=" field.
declare -A module_path=()
while read -r path; do
    name=${path##*/}
    name=${name%%.ko*}
    module_path[$name]=$path
    module_path[${name//-/_}]=$path
done < <(find "$moddir/kernel" -name '*.ko*')
builtin=$(sed 's|.*/||; s|\.ko$||' "$moddir/modules.builtin" | tr '-' '_')
declare -A placed=()
order=()
place() {
    local m=${1//-/_} path deps d
    [ -n "${placed[$m]:-}" ] && return 0
    placed[$m]=1
    if grep -qx "$m" <<<"$builtin"; then
        return 0
    fi
    path=${module_path[$m]:-}
    [ -n "$path" ] || { log "no module $m in $image_pkg"; exit 1; }
    case "$path" in
    *.ko.xz) xz -dc "$path" >"$work/$m.ko"; path=$work/$m.ko ;;
    *.ko.zst) zstd -qdc "$path" >"$work/$m.ko"; path=$work/$m.ko ;;
    esac
    deps=$(tr '\0' '\n' <"$path" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do
        place "$d"
    done
    cp "$path" "$root/lib/modules/$m.ko"
    order+=("$m")
}
for m in $modules; do
    place "$m"
done
printf '%s\n' "${order[@]}" >"$root/etc/modules"

cat >"$root/etc/os-release" <<'EOF'
NAME="Buildyard test guest"
PRETTY_NAME="Buildyard test guest (busybox initramfs)"
ID=buildyard-guest
EOF
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

# The power button: stop workerd (it detaches from the master and ends its
# builds); /init powers off when it is gone. If it does not go within 20 s
# (a step ignoring SIGTERM), power off anyway: the host's grace is longer.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "buildyard-guest: power button: stopping buildyard-workerd" >/dev/console
pid=$(cat /run/buildyard-workerd.pid 2>/dev/null)
[ -n "$pid" ] && kill -TERM "$pid"
sleep 20
echo "buildyard-guest: buildyard-workerd still running after 20 s; powering off" >/dev/console
poweroff -f
EOF
chmod 755 "$root/etc/acpi/PWRF/00000080"

cat >"$root/init" <<'EOF'
#!/bin/sh
# PID 1 of the Buildyard test guest (tests/vm/make-guest.sh).
export PATH=/sbin:/bin HOME=/
say() { echo "buildyard-guest: $*"; }
end() {
    say "powering off: $*"
    sync
    poweroff -f
    while :; do sleep 60; done  # never return: PID 1 exiting panics the kernel
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
say "kernel $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s"

for m in $(cat /etc/modules); do
    insmod "/lib/modules/$m.ko" || say "cannot load $m"
done

i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -e /sys/class/net/eth0 ] || end "no eth0"
# qemu user networking: the guest is 10.0.2.15, the host's loopback 10.0.2.2.
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
hostname buildyard-guest

acpid -c /etc/acpi -l /dev/console

say "starting buildyard-workerd --latent after $(cut -d' ' -f1 /proc/uptime) s"
/sbin/buildyard-workerd --latent &
echo $! >/run/buildyard-workerd.pid
wait $!
end "buildyard-workerd exited with status $?"
EOF
chmod 755 "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner 0:0) \
    | gzip -6 >"$work/initrd.gz"
cp "$vmlinuz" "$out/vmlinuz.new"
mv "$out/vmlinuz.new" "$out/vmlinuz"
mv "$work/initrd.gz" "$out/initrd.gz"
chmod 644 "$out/vmlinuz" "$out/initrd.gz"
echo "$kver" >"$out/kernel-release"
log "$out/vmlinuz ($image_pkg) and $out/initrd.gz ($(du -k "$out/initrd.gz" | cut -f1) KiB; modules: ${order[*]})"
