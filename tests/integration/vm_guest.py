"""A real libvirtd and the TCG test guest, for test_vm and bench/latent.

The guest is Debian's kernel with a busybox initramfs whose /init runs
`buildyard-workerd --latent` (tests/vm/make-guest.sh); libvirtd is run by
hand (tests/lib/libvirtd.sh) and serves qemu:///system.
"""

import os
import shutil
import subprocess
import tempfile

SOURCE = os.environ.get("BUILDYARD_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
LIBVIRTD_SH = os.path.join(SOURCE, "tests", "lib", "libvirtd.sh")
MAKE_GUEST = os.path.join(SOURCE, "tests", "vm", "make-guest.sh")
URI = "qemu:///system"
XMLNS = "https://buildyard.org/xmlns/latent/1"


def run(argv, check=True, timeout=120):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def virsh(*args, check=True):
    return run(["virsh", "-q", "-c", URI, *args], check=check)


def domains():
    """Names of every domain of qemu:///system, running or not."""
    return set(virsh("list", "--all", "--name").stdout.split())


def destroy(name):
    if name in domains():
        virsh("destroy", name, check=False)


def can_run_libvirtd():
    return os.geteuid() == 0 and subprocess.run(["bash", LIBVIRTD_SH, "check"]).returncode == 0


def make_guest(bin_dir, out_dir):
    """Builds out_dir/vmlinuz and out_dir/initrd.gz around bin_dir's
    buildyard-workerd. The .debs are cached in $BUILDYARD_VM_CACHE, by
    default next to out_dir. Returns the guest's kernel release."""
    run(["bash", MAKE_GUEST, "--workerd", os.path.join(bin_dir, "buildyard-workerd"), out_dir], timeout=900)
    with open(os.path.join(out_dir, "kernel-release")) as f:
        return f.read().strip()


class Libvirtd:
    """libvirtd and virtlogd, stopped by PID (stop() is safe to call twice)."""

    def __init__(self):
        self.dir = None

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="buildyard-libvirtd-")
        try:
            run(["bash", LIBVIRTD_SH, "start", self.dir], timeout=180)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.dir:
            subprocess.run(["bash", LIBVIRTD_SH, "stop", self.dir], timeout=120)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def guest_template(guest_dir, console, memory_mib=384):
    """A domain template for latentd: the guest booted directly in TCG with
    ACPI (so a shutdown request powers it off), user networking (the host's
    loopback is 10.0.2.2), a virtio-rng (no wait for entropy), a disk for
    the overlay, and the serial console in `console`. `quiet`: printing the
    kernel's messages on an emulated serial port costs seconds."""
    return f"""<domain type='qemu'>
  <name>template</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{guest_dir}/vmlinuz</kernel>
    <initrd>{guest_dir}/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet panic=-1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>
    <interface type='user'><model type='virtio'/></interface>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def make_base(path, marker, size_mib=16):
    """A qcow2 image whose disk starts with `marker`, readable by qemu."""
    raw = path + ".raw"
    with open(raw, "wb") as f:
        f.write(marker.encode())
        f.truncate(size_mib << 20)
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path])
    os.remove(raw)
    os.chmod(path, 0o644)
    return path

