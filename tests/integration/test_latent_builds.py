"""What a latent worker's builds get from its section, as a remote worker's
do (test_remote.py): max_builds holds the second build back while the first
runs on the one machine, and property.* wins over a build's own properties,
which win over default_property.*. The fixture (master, latentd, libvirt's
test driver, fake guests) is test_latent.py's."""

import test_latent
from harness import gate_step, open_gate, wait_gate_reached


class LatentBuilds(test_latent.LatentFixture):
    def test_max_builds_and_properties_on_a_latent_worker(self):
        s = self.sys
        builder = (f"[builder g]\nworkers = vm1\nstep.1 = echo $BUILDYARD_PROP_os $BUILDYARD_PROP_branch\n"
                   f"step.2 = {gate_step(s)}\n")
        self.start(self.config(build_wait=-1, extra="max_builds = 1\nproperty.os = vm\n"
                                                    "default_property.branch = main\n" + builder))
        first, second = s.submit("g", os="mine"), s.submit("g", branch="dev")
        wait_gate_reached(s, first, timeout=30)
        # max_builds = 1: the second waits while the first runs, on the one
        # machine that the first started.
        self.assertEqual(s.build_prop(second, "State"), "pending")
        self.assertEqual(s.worker_prop("vm1", "RunningBuilds"), 1)
        open_gate(s, first)
        self.assertEqual(s.wait_build(first), (first, "success"))
        wait_gate_reached(s, second)
        open_gate(s, second)
        self.assertEqual(s.wait_build(second), (second, "success"))
        self.assertEqual(len(self.guests.identities), 1, "a second machine for the second build")
        # property.os wins over the build's own os; the build's branch wins
        # over default_property.branch.
        self.assertIn("\nvm main\n", s.read_log(first))
        self.assertIn("\nvm dev\n", s.read_log(second))
        self.assertEqual(s.build_prop(first, "Properties"), {"os": "vm", "branch": "main", "workername": "vm1"})
        self.assertEqual(s.build_prop(second, "Properties"), {"os": "vm", "branch": "dev", "workername": "vm1"})
