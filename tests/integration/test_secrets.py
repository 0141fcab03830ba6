"""Secrets: a builder's secret.KEY (file: or credential:) and a build's
secret.KEY property reach the steps' environment, and nothing else: not
Build1.Properties, Describe, ListBuilds, the master's log, nor the stored
build log, where every occurrence becomes *** even when the worker's
output chunks cut a secret in two."""

import json
import os

from harness import MASTER_PATH, SystemTest

MASTER1 = "org.buildyard.Master1"
BUILD1 = "org.buildyard.Build1"

FILE_SECRET = "file-s3cret-0f1e2d"
CRED_SECRET = "cred-s3cret-9a8b7c"
SUBMITTED = "submitted-t0ken-5566"


class Secrets(SystemTest):
    def setUp(self):
        super().setUp()
        s = self.sys
        secret_file = os.path.join(s.dir, "api-key")
        with open(secret_file, "w") as f:
            f.write(FILE_SECRET + "\n")
        creds = os.path.join(s.dir, "creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "deploy"), "w") as f:
            f.write(CRED_SECRET)
        token_file = os.path.join(s.dir, "token")
        with open(token_file, "w") as f:
            f.write(SUBMITTED)
        s.env["CREDENTIALS_DIRECTORY"] = creds
        # Step 3 prints each secret in two pieces 0.3 s apart, so they reach
        # the master in separate Output calls.
        s.write_config(f"""
            [master]
            listen =
            [worker w1]
            type = local
            [builder deploy]
            workers = w1
            secret.api = file:{secret_file}
            secret.deploy = credential:deploy
            step.1 = echo "api=$BUILDYARD_SECRET_api deploy=$BUILDYARD_SECRET_deploy token=$BUILDYARD_SECRET_token"
            step.2 = test "$BUILDYARD_SECRET_api" = "$(cat {secret_file})" && test "$BUILDYARD_SECRET_token" = "$(cat {token_file})"
            step.3 = for v in $BUILDYARD_SECRET_api $BUILDYARD_SECRET_token; do echo $v | cut -c1-6 | tr -d '\\n'; sleep 0.3; echo $v | cut -c7-; done
        """)
        s.start_master()
        s.start_worker("w1")

    def test_secrets_reach_the_steps_and_nothing_else(self):
        s = self.sys
        bid = s.submit("deploy", branch="main", **{"secret.token": SUBMITTED})
        self.assertEqual(s.wait_build(bid)[1], "success", s.read_log(bid))
        log = s.read_log(bid)
        self.assertIn("api=*** deploy=*** token=***\n", log)
        # Step 3's two lines each came in two Output calls.
        self.assertEqual(log.count("***"), 5, log)
        self.assertTrue(log.endswith("cut -c7-; done\n***\n***\n"), log)
        for secret in (FILE_SECRET, CRED_SECRET, SUBMITTED):
            self.assertNotIn(secret, log)
            self.assertNotIn(secret[:6] + "\n", log, "a split secret is masked whole")
            with open(os.path.join(s.state_dir, "logs", f"{bid}.log")) as f:
                self.assertNotIn(secret, f.read())
        props = s.build_prop(bid, "Properties")
        self.assertEqual(props.get("branch"), "main")
        self.assertNotIn("secret.token", props)
        shown = json.dumps([props, s.call(MASTER_PATH, MASTER1, "Describe")[0],
                            s.call(MASTER_PATH, MASTER1, "ListBuilds", "t", 0)[0],
                            s.get(s.build_path(bid), BUILD1, "Properties")])
        master_log = s.master.log()
        for secret in (FILE_SECRET, CRED_SECRET, SUBMITTED):
            self.assertNotIn(secret, shown)
            self.assertNotIn(secret, master_log)

    def test_a_secret_that_cannot_be_read_keeps_the_old_config(self):
        s = self.sys
        with open(s.config_path) as f:
            text = f.read()
        with open(s.config_path, "w") as f:
            f.write(text.replace("secret.deploy = credential:deploy", "secret.deploy = credential:missing"))
        r = s.call(MASTER_PATH, MASTER1, "Reload", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("[builder deploy] secret.deploy:", s.master.log())
        self.assertTrue(s.master.alive())
