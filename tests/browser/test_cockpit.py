"""The Cockpit page in a real browser: a private bus with a master and two
workers, cockpit-ws with a local session on loopback serving the page from
the source tree, and Debian's Chromium, headless, driven by Selenium.
Everything is checked from what the page shows (and, for actions, on the
bus). Screenshots go to $BUILDYARD_ARTIFACTS."""

import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import (NOBODY_UID, SOURCE, SystemTest, free_port, gate_step, master_ini, open_gate,  # noqa: E402
                     wait_for, wait_gate_reached)
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
ARTIFACTS = os.environ.get("BUILDYARD_ARTIFACTS", os.path.join(SOURCE, "build", "browser"))
WORKER1 = "org.buildyard.Worker1"
BUILD1 = "org.buildyard.Build1"


class Page:
    """One browser on the Buildyard page of one cockpit-ws."""

    def __init__(self, test, port, profile):
        options = Options()
        options.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,860",
                    f"--user-data-dir={profile}", "--disable-gpu"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        test.addCleanup(self.driver.quit)
        self.driver.get(f"http://127.0.0.1:{port}/cockpit/@localhost/buildyard/index.html")

    def text(self, css):
        """The text of the first element matching css, or None."""
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css).text
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    def wait_text(self, css, expected, timeout=10):
        seen = []

        def matches():
            seen[:] = [self.text(css)]
            return seen[0] is not None and (expected(seen[0]) if callable(expected) else seen[0] == expected)
        try:
            wait_for(matches, timeout, f"{css} to show {expected!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; it shows {seen[0]!r}; console: {self.console()}") from None
        return seen[0]

    def click(self, css):
        wait_for(lambda: self.text(css) is not None, 10, f"{css} on the page")
        self.driver.find_element(By.CSS_SELECTOR, css).click()

    def button(self, row_css, label):
        """Clicks the button whose text starts with label inside row_css."""
        def find():
            try:
                for b in self.driver.find_elements(By.CSS_SELECTOR, f"{row_css} button"):
                    if b.text.startswith(label):
                        return b
            except StaleElementReferenceException:
                return None
            return None
        wait_for(find, 10, f"button {label} in {row_css}")
        # The row may be drawn again between finding and clicking.
        for _ in range(5):
            try:
                find().click()
                return
            except (StaleElementReferenceException, AttributeError):
                time.sleep(0.05)
        raise AssertionError(f"cannot click {label} in {row_css}")

    def confirm(self, reason=None):
        wait_for(lambda: self.driver.find_element(By.ID, "confirm-dialog").get_attribute("open") is not None, 5,
                 "the confirmation dialog")
        if reason is not None:
            self.driver.find_element(By.ID, "confirm-reason").send_keys(reason)
        self.driver.find_element(By.ID, "confirm-ok").click()

    def screenshot(self, name):
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        self.driver.save_screenshot(path)
        return path

    def console(self):
        return [e["message"] for e in self.driver.get_log("browser")]


class CockpitPageTest(SystemTest):

    def start_cockpit(self, user=None):
        """cockpit-ws with a local session (the bridge runs as `user`), serving
        the page from the source tree through $XDG_DATA_HOME."""
        s = self.sys
        data = os.path.join(s.dir, "xdg-data")
        if not os.path.exists(data):
            os.makedirs(os.path.join(data, "cockpit"))
            os.symlink(os.path.join(SOURCE, "cockpit", "buildyard"), os.path.join(data, "cockpit", "buildyard"))
        port = free_port()
        home = os.path.join(s.dir, f"home-{user or 'root'}")
        os.makedirs(home, exist_ok=True)
        if user is not None:
            os.chown(home, user, user)
        env = dict(s.env, XDG_DATA_HOME=data, HOME=home, XDG_RUNTIME_DIR=home)
        proc = s._spawn(f"cockpit-ws-{port}", [COCKPIT_WS, "--port", str(port), "--address", "127.0.0.1",
                                               "--local-session=cockpit-bridge"], env=env, user=user)

        def listening():
            with socket.socket() as c:
                return c.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 10, "cockpit-ws to listen")
        self.assertTrue(proc.alive(), proc.log())
        return port

    def page(self, port, name):
        profile = os.path.join(self.sys.dir, f"chromium-{name}")
        os.makedirs(profile)
        return Page(self, port, profile)

    def test_workers_builds_log_and_actions(self):
        s = self.sys
        s.write_config(master_ini(
            {"w1": "max_builds = 2", "w2": ""},
            {"hello": (["w1", "w2"], ['echo "hello from $BUILDYARD_PROP_greeting on $BUILDYARD_WORKER"', gate_step(s),
                                     'for i in 1 2 3; do echo "line $i"; sleep 0.3; done']),
             "slow": (["w1", "w2"], [gate_step(s)])},
            name="cockpit-demo"))
        s.start_master()
        s.start_worker("w1")
        s.start_worker("w2")
        page = self.page(self.start_cockpit(), "root")
        w1, w2 = 'tr[data-worker="w1"]', 'tr[data-worker="w2"]'

        # Both workers, idle.
        page.wait_text(f"{w1} .badge", "idle", timeout=20)
        page.wait_text(f"{w2} .badge", "idle")
        self.assertEqual(page.text("#master-name"), "cockpit-demo")
        self.assertEqual(page.text("#count-workers"), "2 of 2")

        # A build submitted from the page appears, runs, shows its log and result.
        page.click("#submit-open")
        wait_for(lambda: page.text("#submit-builder option"), 10, "the builders in the submit dialog")
        Select(page.driver.find_element(By.ID, "submit-builder")).select_by_value("hello")
        page.driver.find_element(By.ID, "submit-properties").send_keys("greeting=cockpit")
        page.screenshot("cockpit-submit.png")
        page.click("#submit-ok")
        page.wait_text("#log-build", lambda t: t.startswith("#"))
        build = int(page.text("#log-build")[1:])
        row = f'tr[data-build="{build}"]'
        # It waits at its gate in step 2 until the page has shown it running
        # and its first output: the log follows a running build.
        wait_gate_reached(s, build)
        page.wait_text(f"{row} td.status .badge", "running")
        page.wait_text("#log", lambda t: "hello from cockpit on w" in t)
        open_gate(s, build)
        page.wait_text("#log", lambda t: "line 3" in t, timeout=20)
        try:
            page.wait_text(f"{row} td.status .badge", "success")
        except AssertionError as e:
            raise AssertionError(f"{e}\nbuild {build}: {s.build_prop(build, 'Result')}, "
                                 f"log:\n{s.read_log(build)}") from None
        page.wait_text("#log-status", "success")
        self.assertEqual(s.build_prop(build, "Properties")["greeting"], "cockpit")
        self.assertEqual(s.build_prop(build, "Result"), "success")
        page.screenshot("cockpit-build-log.png")

        # Cancel from the page: a build waiting at its gate ends cancelled.
        slow = s.submit("slow")
        wait_gate_reached(s, slow)
        row = f'tr[data-build="{slow}"]'
        page.wait_text(f"{row} td.status .badge", "running")
        page.button(row, "Cancel")
        page.confirm()
        wait_for(lambda: s.build_prop(slow, "Result") == "cancelled", 10, "the build to be cancelled on the bus")
        page.wait_text(f"{row} td.status .badge", "cancelled")

        # Pause from the page, with a reason: Worker1.Paused on the bus, and
        # the reason on the page.
        page.button(w2, "Pause")
        page.confirm(reason="disk full, cleaning up")
        wait_for(lambda: s.worker_prop("w2", "Paused") is True, 10, "w2 paused on the bus")
        self.assertEqual(s.worker_prop("w2", "PauseReason"), "disk full, cleaning up")
        page.wait_text(f"{w2} .badge", "paused")
        page.wait_text(f"{w2} td.reason", "disk full, cleaning up")

        # The workers view for the README: one building, one paused.
        busy = s.submit("slow")
        wait_gate_reached(s, busy)
        page.wait_text(f"{w1} .badge", "building")
        page.wait_text(f"{w1} td.builds", "1 of 2")
        page.driver.execute_script("document.getElementById('log-section').hidden = true")
        page.screenshot("cockpit-workers.png")
        open_gate(s, busy)
        page.wait_text(f'tr[data-build="{busy}"] td.status .badge', "success")

        # A worker killed with SIGKILL is offline on the page within a second.
        page.wait_text(f"{w1} .badge", "idle")
        start = time.monotonic()
        s.workers["w1"].signal(signal.SIGKILL)
        page.wait_text(f"{w1} .badge", "offline", timeout=5)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 1.0, f"w1 turned offline on the page after {elapsed:.2f} s")
        page.wait_text("#count-workers", "1 of 2")

        # Unpause from the page.
        page.button(w2, "Unpause")
        wait_for(lambda: s.worker_prop("w2", "Paused") is False, 10, "w2 unpaused on the bus")
        page.wait_text(f"{w2} .badge", "idle")

        severe = [m for m in page.console() if "SEVERE" in m or "Content Security Policy" in m]
        self.assertEqual(severe, [])

    def test_what_the_bus_policy_refuses_is_said_clearly(self):
        s = self.sys
        s.write_config(master_ini(["w1"], {"hello": (["w1"], ["echo hi"])}))
        s.start_master()
        s.start_worker("w1")
        build = s.submit("hello")
        s.wait_build(build)
        # The bridge runs as nobody: it may read, but not change anything.
        page = self.page(self.start_cockpit(user=NOBODY_UID), "nobody")
        w1 = 'tr[data-worker="w1"]'
        page.wait_text(f"{w1} .badge", "idle", timeout=20)

        page.button(w1, "Pause")
        page.confirm(reason="not mine to pause")
        alert = page.wait_text("#alerts .alert.error", lambda t: "Not allowed: pause worker w1" in t)
        self.assertIn("group “buildyard”", alert)
        self.assertIs(s.worker_prop("w1", "Paused"), False)

        # Reading a log is an admin's call too: the page says so.
        page.click(f'tr[data-build="{build}"] a')
        page.wait_text("#alerts", lambda t: f"Not allowed: read the log of build {build}" in t)
        page.wait_text("#log-refused", lambda t: t.startswith(f"Not allowed: read the log of build {build}"))
        # The page itself still works: the worker list is live.
        s.workers["w1"].signal(signal.SIGKILL)
        page.wait_text(f"{w1} .badge", "offline")
        page.screenshot("cockpit-refused.png")


if __name__ == "__main__":
    unittest.main()
