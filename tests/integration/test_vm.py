"""Latent workers end to end: a real libvirtd, buildyard-latentd with the
libvirt backend, and a real TCG guest (tests/vm/make-guest.sh: Debian's
kernel and a busybox initramfs whose /init runs buildyard-workerd --latent).

CTest label "vm"; it needs root and takes minutes (each guest boots in
emulation). Everything it starts it stops by PID, and it destroys its own
domains, also on failure.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import unittest

import harness
from harness import BIN, System, free_port, wait_for
from vm_guest import (URI, XMLNS, Libvirtd, can_run_libvirtd, destroy, domains, guest_template,
                      make_base, make_guest, run, virsh)

BUILD_DIR = os.path.dirname(os.path.abspath(BIN))
GUEST_DIR = os.path.join(BUILD_DIR, "vm-guest")
MASTER_NAME = "vmit"
DOMAIN = f"buildyard-{MASTER_NAME}-vm1"
LATENT = harness.LATENT
LATENT_PATH = harness.LATENT_PATH

# Generous: under TCG on a loaded 2-core machine a guest takes 20-60 s to
# boot; the bounds only keep a broken run from hanging.
BOOT_TIMEOUT = 300

_libvirtd = Libvirtd()
_kernel_release = None


def setUpModule():
    global _kernel_release
    if not can_run_libvirtd():
        raise unittest.SkipTest("needs root, libvirtd, virtlogd, virsh and qemu-system-x86_64")
    _kernel_release = make_guest(BIN, GUEST_DIR)
    unittest.addModuleCleanup(_libvirtd.stop)
    _libvirtd.start()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def first_bytes(image, n):
    """The first n bytes of a qcow2 image's disk, read while qemu may hold it (-U)."""
    with tempfile.NamedTemporaryFile() as out:
        run(["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=512", "count=1", f"if={image}",
             f"of={out.name}"])
        with open(out.name, "rb") as f:
            return f.read(n)


class LatentVmTest(unittest.TestCase):

    def setUp(self):
        self.sys = System().start_bus()
        self.addCleanup(self.sys.close)
        self.addCleanup(self.keep_logs)
        self.owned_domains = {DOMAIN}
        # Runs before sys.close: no domain of ours outlives the test.
        self.addCleanup(lambda: [destroy(d) for d in sorted(self.owned_domains)])
        self.overlays = os.path.join(self.sys.dir, "overlays")
        self.latentd = None

    def keep_logs(self):
        """Copies the logs (daemons, guest console) to BUILD_DIR/Testing/test_vm/TEST/ for a look after a
        failure; the test's own directory goes with it."""
        dest = os.path.join(BUILD_DIR, "Testing", "test_vm", self._testMethodName)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        for name in os.listdir(self.sys.dir):
            if name.endswith(".log"):
                shutil.copy(os.path.join(self.sys.dir, name), dest)

    def start_latentd(self, extra_env=None, name="latentd"):
        self.latentd = harness.start_latentd(self.sys, extra_env, name=name, wait_ready=False)
        # READY=1 comes after the first reconciliation, which asks libvirtd.
        self.latentd.wait_notify("READY=1", timeout=120)
        return self.latentd

    def latent_prop(self, prop):
        r = self.sys.run(["busctl", "--system", "--json=short", "get-property", LATENT, LATENT_PATH, LATENT, prop])
        return json.loads(r.stdout)["data"]

    def make_base(self, marker):
        return make_base(os.path.join(self.sys.dir, "base.qcow2"), marker)

    def write_template(self, xml):
        path = os.path.join(self.sys.dir, "vm1.xml")
        with open(path, "w") as f:
            f.write(xml)
        return path

    def test_build_on_a_tcg_guest_booted_from_its_overlay(self):
        port = free_port()
        console = os.path.join(self.sys.dir, "console.log")
        marker = f"BUILDYARD-BASE-{secrets.token_hex(4)}"
        base = self.make_base(marker)
        base_sum = sha256(base)
        template = self.write_template(guest_template(GUEST_DIR, console))
        # The steps: what kernel and disk the worker sees, then a write to
        # the disk that must land in the overlay and not in the base.
        self.sys.write_config(f"""
            [master]
            name = {MASTER_NAME}
            listen = 127.0.0.1:{port}

            [worker vm1]
            type = latent
            backend = libvirt
            master_address = 10.0.2.2:{port}
            build_wait_timeout = 30
            missing_timeout = {BOOT_TIMEOUT}
            libvirt.uri = {URI}
            libvirt.xml = {template}
            libvirt.base_image = {base}
            libvirt.overlay_dir = {self.overlays}
            libvirt.shutdown_timeout = 60

            [builder guest]
            workers = vm1
            step.1 = echo "guest-kernel=$(uname -r) host=$(hostname)"
            step.2 = echo "disk-before=$(head -c {len(marker)} /dev/vda)"
            step.3 = printf 'BUILDYARD-GUEST-%s' "$BUILDYARD_BUILD_ID" | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null
            """)
        self.start_latentd()
        self.sys.start_master()

        build_id = self.sys.submit("guest")
        self.sys.wait_attached("vm1", timeout=BOOT_TIMEOUT)
        _, result = self.sys.wait_build(build_id, timeout=BOOT_TIMEOUT)
        log = self.sys.read_log(build_id)
        self.assertEqual(result, "success", log)
        self.assertIn(f"guest-kernel={_kernel_release} host=buildyard-guest", log)
        self.assertIn(f"disk-before={marker}", log)

        # It attached over TCP, from the guest.
        self.assertEqual(self.sys.worker_prop("vm1", "Info").get("host"), "buildyard-guest")
        self.assertRegex(self.sys.master.log(), r"worker vm1 attached \(connection tcp#\d+ from 127\.0\.0\.1:")
        with open(console, errors="replace") as f:
            self.assertIn(f"attached to the master at 10.0.2.2:{port} as worker 'vm1'", f.read())

        # The domain runs on this start's overlay, which is backed by the
        # base; the guest's write is in the overlay, the base is untouched.
        start = self.sys.worker_prop("vm1", "InstanceStart")
        self.assertRegex(start, r"^[0-9a-f]{32}$")
        self.assertEqual(self.sys.worker_prop("vm1", "Instance"), DOMAIN)
        overlay = os.path.join(self.overlays, MASTER_NAME, f"vm1.{start}.qcow2")
        self.assertTrue(os.path.exists(overlay), os.listdir(os.path.dirname(overlay)))
        xml = virsh("dumpxml", DOMAIN).stdout
        self.assertIn(f"<source file='{overlay}'", xml)
        self.assertIn(f"start='{start}'", virsh("metadata", DOMAIN, XMLNS).stdout.replace('"', "'"))
        info = json.loads(run(["qemu-img", "info", "-U", "--output=json", overlay]).stdout)
        self.assertEqual(info.get("backing-filename"), base)
        written = f"BUILDYARD-GUEST-{build_id}".encode()
        self.assertEqual(first_bytes(overlay, len(written)), written)
        self.assertEqual(first_bytes(base, len(marker)), marker.encode())
        self.assertEqual(sha256(base), base_sum)

        # Idle for build_wait_timeout: an ACPI shutdown that the guest obeys,
        # then the overlay goes.
        wait_for(lambda: DOMAIN not in domains(), 30 + 60 + 60, f"domain {DOMAIN} to go")
        wait_for(lambda: not os.path.exists(overlay), 30, "the overlay to be removed")
        wait_for(lambda: self.sys.worker_prop("vm1", "State") == "offline", 30, "vm1 to be offline")
        with open(console, errors="replace") as f:
            self.assertIn("power button: stopping buildyard-workerd", f.read())
        self.assertEqual(sha256(base), base_sum)
        self.assertNotIn("reaped leaked", self.latentd.log())

    def test_kill_9_during_a_start_leaves_nothing_behind(self):
        # Cheap domains: no kernel and an empty disk, so they sit in SeaBIOS.
        port = free_port()
        base = self.make_base("BUILDYARD-BASE-none")
        template = self.write_template("""<domain type='qemu'>
  <name>template</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'><target dev='vda' bus='virtio'/></disk>
    <memballoon model='none'/>
  </devices>
</domain>
""")
        self.sys.write_config(f"""
            [master]
            name = {MASTER_NAME}
            listen = 127.0.0.1:{port}

            [worker vm1]
            type = latent
            backend = libvirt
            master_address = 10.0.2.2:{port}
            libvirt.uri = {URI}
            libvirt.xml = {template}
            libvirt.base_image = {base}
            libvirt.overlay_dir = {self.overlays}
            libvirt.shutdown_timeout = 0
            """)

        # Things the reaper must leave alone: an untagged domain, a domain
        # and an overlay tagged for another master, and a file of no start.
        other_start = secrets.token_hex(16)
        untagged = f"bytest-untagged-{os.getpid()}"
        other = "buildyard-othermaster-vm1"
        self.owned_domains |= {untagged, other}
        for name, metadata in ((untagged, ""),
                               (other, f"<metadata><buildyard:instance xmlns:buildyard='{XMLNS}' "
                                       f"master='othermaster' worker='vm1' start='{other_start}'/></metadata>")):
            path = os.path.join(self.sys.dir, f"{name}.xml")
            with open(path, "w") as f:
                f.write(f"<domain type='qemu'><name>{name}</name>{metadata}<memory unit='MiB'>32</memory>"
                        "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>"
                        "<devices><memballoon model='none'/></devices></domain>")
            virsh("create", path)
        other_overlay = os.path.join(self.overlays, "othermaster", f"vm1.{other_start}.qcow2")
        os.makedirs(os.path.dirname(other_overlay))
        run(["qemu-img", "create", "-q", "-f", "qcow2", other_overlay, "1M"])
        own_dir = os.path.join(self.overlays, MASTER_NAME)
        os.makedirs(own_dir)
        stray = os.path.join(own_dir, "keep-me.txt")
        with open(stray, "w") as f:
            f.write("not an overlay\n")

        # A creation that answers only after 300 s: the domain and its
        # overlay exist, the start is still "creating" when latentd dies.
        first = self.start_latentd({"BUILDYARD_LATENT_TEST_CREATE_DELAY": "300"})
        start = secrets.token_hex(16)
        starter = self.sys._spawn("start-call", [
            "busctl", "--system", "--timeout=400", "call", LATENT, LATENT_PATH, LATENT, "Start", "ssssst",
            "vm1", start, f"10.0.2.2:{port}", secrets.token_hex(32), "", str(600 * 1000000)])
        wait_for(lambda: DOMAIN in domains(), 120, f"domain {DOMAIN} to be created")
        overlay = os.path.join(own_dir, f"vm1.{start}.qcow2")
        self.assertTrue(os.path.exists(overlay))
        listed = json.loads(self.sys.run(["busctl", "--system", "--json=short", "call", LATENT, LATENT_PATH,
                                          LATENT, "ListInstances"]).stdout)["data"][0]
        self.assertEqual([(i[0], i[1], i[3]) for i in listed], [("vm1", start, "creating")])

        first.signal(signal.SIGKILL)
        first.wait()
        starter.wait(timeout=60)
        self.assertNotEqual(starter.popen.returncode, 0, "Start answered although latentd was killed")
        self.assertIn(DOMAIN, domains())  # nobody removed it yet

        second = self.start_latentd(name="latentd-again")
        # Reconciled before READY=1.
        self.assertNotIn(DOMAIN, domains())
        self.assertFalse(os.path.exists(overlay))
        log = second.log()
        self.assertIn(f"reaped leaked domain {DOMAIN} of worker vm1 (start {start})", log)
        self.assertRegex(log, rf"reaped leaked overlay \S*vm1\.{start}\.qcow2 of worker vm1 \(start {start}\)")
        self.assertEqual(self.latent_prop("ReapedLeaks"), 2)
        self.assertEqual(self.latent_prop("Instances"), 0)
        # And nothing else.
        self.assertTrue({untagged, other} <= domains(), domains())
        self.assertTrue(os.path.exists(other_overlay))
        self.assertTrue(os.path.exists(stray))
        self.assertNotIn(untagged, log)
        self.assertNotIn(other, log)
        self.assertIsNone(re.search(r"reaped leaked .*othermaster", log))


if __name__ == "__main__":
    unittest.main()
