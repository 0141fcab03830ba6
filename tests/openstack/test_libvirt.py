"""Nova's libvirt driver boots a real guest: the fixture's Nova runs its
compute host with `compute_driver = libvirt.LibvirtDriver` and
`virt_type = qemu` (TCG) against a real libvirtd that this module starts
(tests/lib/libvirtd.sh, as the `vm` tests do), and the backend's user
boots the `vm` tests' guest (tests/vm/make-guest.sh: Debian's kernel and
a busybox initramfs, uploaded to Glance as kernel, ramdisk and a small
root disk) to ACTIVE, sees its kernel and /init on the serial console,
deletes it, and libvirt has no domain left.

The guest has no network: the Neutron stub moves no packets, so the
server is created with `"networks": "none"` and its /init, finding no
eth0, powers off. It therefore cannot reach a master and attach as a
worker; the builds themselves run on the fake driver's servers (whose
workers the tests start on the host)."""

import glob
import os
import sys
import threading
import time
import unittest

import openstack_fixture
from openstack_fixture import COMPUTE_HOST, OpenStack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from vm_guest import Libvirtd, can_run_libvirtd, domains, make_guest, virsh  # noqa: E402

BIN = os.environ.get("BUILDYARD_BIN", "")
GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(BIN or ".")), "vm-guest")  # shared with test_vm
BOOT_TIMEOUT = 300  # TCG on a loaded 2-core machine: tens of seconds; this only bounds a broken run

os_ = None
_libvirtd = Libvirtd()


def setUpModule():
    global os_
    why = openstack_fixture.can_run()
    if why:
        raise unittest.SkipTest(why)
    if not can_run_libvirtd() or not os.path.exists("/usr/lib/python3/dist-packages/libvirt.py"):
        raise unittest.SkipTest("needs root, libvirtd, virtlogd, virsh, qemu-system-x86_64 and python3-libvirt "
                                "(nova-compute-qemu)")
    if not os.access(os.path.join(BIN, "buildyard-workerd"), os.X_OK):
        raise unittest.SkipTest(f"no buildyard-workerd in BUILDYARD_BIN={BIN!r} (build first)")
    unittest.addModuleCleanup(_libvirtd.stop)
    _libvirtd.start()  # before Nova's compute host, which connects at its start
    # After Nova's stop (cleanups run last first): libvirtd leaves running
    # guests alone when it stops, and keeps their definitions, so a failed
    # test's guest goes here.
    unittest.addModuleCleanup(_remove_domains)
    # The guest is built while the fixture starts (both take a minute).
    guest = {}
    builder = threading.Thread(target=lambda: guest.update(_build_guest()))
    builder.start()
    os_ = OpenStack(compute_driver="libvirt.LibvirtDriver")
    unittest.addModuleCleanup(os_.stop)
    try:
        os_.start()
    finally:
        builder.join()
    if "error" in guest:
        raise guest["error"]
    print(f"guest made in {guest['seconds']:.1f} s", file=sys.stderr)
    kernel = os_.upload_image("by-kernel", os.path.join(GUEST_DIR, "vmlinuz"), "aki", "aki")
    ramdisk = os_.upload_image("by-ramdisk", os.path.join(GUEST_DIR, "initrd.gz"), "ari", "ari")
    root = os.path.join(os_.dir, "by-guest-root.raw")
    with open(root, "wb") as f:
        f.truncate(16 << 20)
    os_.guest_image = os_.upload_image("by-guest", root, properties={
        "kernel_id": kernel, "ramdisk_id": ramdisk, "os_command_line": "console=ttyS0 quiet panic=-1"})


def _remove_domains():
    if os_ is None:
        return
    for name in domains():
        if name.startswith(os_.instance_prefix):
            virsh("destroy", name, check=False)
            virsh("undefine", "--nvram", name, check=False)


def _build_guest():
    t0 = time.monotonic()
    try:
        make_guest(BIN, GUEST_DIR)
    except Exception as e:  # noqa: BLE001 - raised in setUpModule
        return {"error": e}
    return {"seconds": time.monotonic() - t0}


class LibvirtTest(unittest.TestCase):
    def test_the_guest_boots_to_active_and_is_deleted(self):
        vm = os_.admin.post("compute", "/flavors", {"flavor": {"name": "by.vm", "vcpus": 1, "ram": 384,
                                                               "disk": 1}})["flavor"]["id"]
        before = domains()
        t0 = time.monotonic()
        sv = os_.create_server("by-libvirt", flavor=vm, image=os_.guest_image, metadata={"buildyard:owner": "libvirt-test"},
                               user_data="identity", timeout=BOOT_TIMEOUT)
        active = time.monotonic() - t0
        self.assertEqual(sv["status"], "ACTIVE", sv.get("fault"))
        name = sv["OS-EXT-SRV-ATTR:instance_name"]
        self.assertTrue(name.startswith(os_.instance_prefix), name)
        self.assertIn(name, domains() - before, "libvirt runs the server's domain")
        self.assertEqual(sv["OS-EXT-SRV-ATTR:host"], COMPUTE_HOST)

        # The guest's own kernel and /init speak on its serial console,
        # which Nova's libvirt driver logs under the instance's directory.
        console = os.path.join(os_.dir, "nova", "instances", sv["id"], "console.log")
        deadline = time.monotonic() + BOOT_TIMEOUT
        text = ""
        while "buildyard-guest: kernel" not in text:
            self.assertLess(time.monotonic(), deadline, f"no /init on the console after {BOOT_TIMEOUT} s:\n"
                            + text[-2000:])
            time.sleep(1)
            text = _read(console)
        booted = time.monotonic() - t0
        print(f"libvirt guest: ACTIVE after {active:.1f} s, /init on its console after {booted:.1f} s",
              file=sys.stderr)

        t1 = time.monotonic()
        os_.user_session.request("compute", "DELETE", f"/servers/{sv['id']}")
        os_.wait_gone(sv["id"], timeout=120)
        print(f"libvirt guest: deleted in {time.monotonic() - t1:.1f} s", file=sys.stderr)
        self.assertNotIn(name, domains())
        self.assertEqual(glob.glob(os.path.join(os_.dir, "nova", "instances", sv["id"])), [])


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


if __name__ == "__main__":
    unittest.main()
