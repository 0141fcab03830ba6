"""The live D-Bus objects match the documented interfaces in dbus/*.xml:
every method with its ordered arguments, every signal, every property with
its type, access and EmitsChangedSignal behaviour; nothing missing, nothing
extra."""

import os
import unittest
import xml.etree.ElementTree as ET

from harness import MASTER, MASTER_PATH, SOURCE, System, unique_names_of

EMITS = "org.freedesktop.DBus.Property.EmitsChangedSignal"
STANDARD_PREFIX = "org.freedesktop.DBus."
AGENT_PATH = "/org/buildyard/Agent1"

# The project's policy lets only the master call a worker's Agent1; the test
# also needs to introspect it.
INTROSPECT_AGENT = f"""
  <policy user="root">
    <allow send_interface="org.freedesktop.DBus.Introspectable" send_path="{AGENT_PATH}"/>
  </policy>"""


def describe(xml_text):
    """{interface: {member: description}} of the non-standard interfaces, where
    a description is comparable: ("method", ((name, type, direction), ...)),
    ("signal", ((name, type), ...)) or ("property", type, access, emits)."""
    root = ET.fromstring(xml_text)
    out = {}
    for iface in root.findall("interface"):
        name = iface.get("name")
        if name.startswith(STANDARD_PREFIX):
            continue
        members = {}
        for m in iface.findall("method"):
            args = tuple((a.get("name"), a.get("type"), a.get("direction", "in")) for a in m.findall("arg"))
            members[m.get("name")] = ("method", args)
        for s in iface.findall("signal"):
            args = tuple((a.get("name"), a.get("type")) for a in s.findall("arg"))
            members[s.get("name")] = ("signal", args)
        for p in iface.findall("property"):
            # No annotation means "true": PropertiesChanged carries the value.
            emits = next((a.get("value") for a in p.findall("annotation") if a.get("name") == EMITS), "true")
            members[p.get("name")] = ("property", p.get("type"), p.get("access"), emits)
        out[name] = members
    return out


def documented(interface):
    with open(os.path.join(SOURCE, "dbus", f"{interface}.xml")) as f:
        return describe(f.read())[interface]


class Introspection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sys = System()
        try:
            cls.sys.start_bus(INTROSPECT_AGENT)
            cls.sys.write_config("""
                [master]
                listen =
                [worker w1]
                type = local
                property.os = linux
                [worker w2]
                type = local
                [builder hello]
                workers = w1
                step.1 = echo hello
                [builder later]
                workers = w2
                step.1 = true
                """)
            cls.sys.start_master()
            cls.worker = cls.sys.start_worker("w1")
            cls.finished = cls.sys.submit("hello")
            cls.sys.wait_build(cls.finished)
            cls.pending = cls.sys.submit("later")  # w2 never attaches
        except BaseException:
            cls.sys.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.sys.close()

    def live(self, path, service=MASTER):
        r = self.sys.run(["busctl", "--system", "introspect", "--xml-interface", service, path])
        return describe(r.stdout)

    def assert_matches(self, path, interfaces, service=MASTER):
        live = self.live(path, service)
        self.assertEqual(sorted(live), sorted(interfaces), f"interfaces on {path}")
        for iface in interfaces:
            with self.subTest(path=path, interface=iface):
                want, got = documented(iface), live[iface]
                problems = []
                for member in sorted(set(want) | set(got)):
                    if member not in got:
                        problems.append(f"missing: {member} {want[member]}")
                    elif member not in want:
                        problems.append(f"not documented: {member} {got[member]}")
                    elif want[member] != got[member]:
                        problems.append(f"differs: {member}\n    dbus/{iface}.xml: {want[member]}"
                                        f"\n    live:             {got[member]}")
                self.assertEqual(problems, [], f"{iface} on {path}:\n  " + "\n  ".join(problems))

    def test_master(self):
        self.assert_matches(MASTER_PATH, ["org.buildyard.Master1", "org.buildyard.WorkerLink1"])

    def test_worker(self):
        self.assert_matches(self.sys.worker_path("w1"), ["org.buildyard.Worker1"])
        self.assert_matches(self.sys.worker_path("w2"), ["org.buildyard.Worker1"])

    def test_builder(self):
        path = self.sys.call(MASTER_PATH, "org.buildyard.Master1", "GetBuilder", "s", "hello")[0]
        self.assert_matches(path, ["org.buildyard.Builder1"])

    def test_build(self):
        self.assert_matches(self.sys.build_path(self.finished), ["org.buildyard.Build1"])
        self.assert_matches(self.sys.build_path(self.pending), ["org.buildyard.Build1"])

    def test_agent(self):
        names = unique_names_of(self.sys, self.worker.pid)
        self.assertEqual(len(names), 1, names)
        self.assert_matches(AGENT_PATH, ["org.buildyard.Agent1"], service=names[0])

    def test_documented_files_parse_and_name_one_interface_each(self):
        for iface in ("Master1", "WorkerLink1", "Worker1", "Builder1", "Build1", "Agent1"):
            name = f"org.buildyard.{iface}"
            with open(os.path.join(SOURCE, "dbus", f"{name}.xml")) as f:
                self.assertEqual(list(describe(f.read())), [name])


if __name__ == "__main__":
    unittest.main()
