"""The EC2 stand-in is as strict as the EC2 backend's tests need: requests
signed by curl's own SigV4 (--aws-sigv4) with the right secret pass, and a
wrong secret, a changed body, another host, an unknown parameter, a bad
enum value, a missing required one or a wrong API version are refused with
AWS's error codes. Without this, a passing test_ec2 would prove little."""

import subprocess
import tempfile
import unittest

from ec2_standin import Ec2StandIn

KEY_ID = "AKIDSTANDINTEST"
SECRET = "standin-secret"
RUN = ("Action=RunInstances&Version=2016-11-15&ImageId=ami-0123456789abcdef0&InstanceType=t3.micro"
       "&MinCount=1&MaxCount=1")


class StandInTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.standin = Ec2StandIn(self.dir.name, {KEY_ID: SECRET}).start()
        self.addCleanup(self.standin.stop)
        self.addCleanup(self.dir.cleanup)

    def curl(self, body, secret=SECRET, region="us-east-1", extra=()):
        out = subprocess.run(["curl", "-sS", "--aws-sigv4", f"aws:amz:{region}:ec2", "--user", f"{KEY_ID}:{secret}",
                              "-H", "Content-Type: application/x-www-form-urlencoded", *extra, "--data", body,
                              "-w", "\n%{http_code}", self.standin.url], capture_output=True, text=True, timeout=30,
                             check=True).stdout
        text, _, status = out.rpartition("\n")
        return int(status), text

    def refused(self, code, *args, **kwargs):
        status, text = self.curl(*args, **kwargs)
        self.assertGreaterEqual(status, 400, text)
        self.assertIn(f"<Code>{code}</Code>", text)

    def test_a_valid_signed_request_passes(self):
        status, text = self.curl(RUN + "&TagSpecification.1.ResourceType=instance"
                                 "&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v")
        self.assertEqual(status, 200, text)
        self.assertIn("<instanceState><code>0</code><name>pending</name>", text)
        (params,) = self.standin.actions("RunInstances")
        self.assertEqual(params["TagSpecifications"], [{"ResourceType": "instance", "Tags": [{"Key": "k",
                                                                                               "Value": "v"}]}])
        self.assertEqual(params["MinCount"], 1)

    def test_bad_signatures_are_refused(self):
        self.refused("SignatureDoesNotMatch", RUN, secret="not-the-secret")
        self.refused("AuthFailure", RUN, region="eu-west-1")
        unsigned = subprocess.run(["curl", "-sS", "--data", RUN, self.standin.url], capture_output=True, text=True,
                                  timeout=30).stdout
        self.assertIn("<Code>AuthFailure</Code>", unsigned)
        self.assertFalse(self.standin.requests)

    def test_a_changed_body_or_host_is_refused(self):
        from ec2_model import ApiError, verify_signature
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        req = botocore.awsrequest.AWSRequest(method="POST", url="http://127.0.0.1:1/", data=RUN.encode(),
                                             headers={"Host": "127.0.0.1:1"})
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY_ID, SECRET), "ec2", "us-east-1").add_auth(req)
        headers = req.headers  # case-insensitive, as http.server's
        verify_signature("POST", headers, "/", RUN.encode(), "us-east-1", {KEY_ID: SECRET})
        with self.assertRaises(ApiError) as e:
            verify_signature("POST", headers, "/", (RUN + "&DryRun=true").encode(), "us-east-1", {KEY_ID: SECRET})
        self.assertEqual(e.exception.code, "SignatureDoesNotMatch")
        # The same request arriving with another Host header.
        headers.replace_header("Host", "127.0.0.1:2")
        with self.assertRaises(ApiError) as e:
            verify_signature("POST", headers, "/", RUN.encode(), "us-east-1", {KEY_ID: SECRET})
        self.assertEqual(e.exception.code, "SignatureDoesNotMatch")

    def test_requests_are_checked_against_the_model(self):
        self.refused("UnknownParameter", RUN + "&Colour=blue")
        self.refused("UnknownParameter", RUN + "&TagSpecification.1.Tags.1.Key=k")
        self.refused("InvalidParameterValue", RUN.replace("t3.micro", "t3.gigantic"))
        self.refused("InvalidParameterValue", RUN.replace("MinCount=1", "MinCount=one"))
        self.refused("MissingParameter", RUN.replace("&MinCount=1", ""))
        self.refused("InvalidParameterValue", RUN.replace("2016-11-15", "2014-01-01"))
        self.refused("InvalidAction", "Action=LaunchRockets&Version=2016-11-15")
        self.refused("InvalidParameterCombination",
                     "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&MaxResults=1000")
        # Only the last was a valid request (refused for what it asks).
        self.assertEqual([a for a, _ in self.standin.requests], ["DescribeInstances"])

    def test_new_instances_are_not_found_once_and_tokens_are_idempotent(self):
        body = RUN + "&ClientToken=tok-1"
        status, first = self.curl(body)
        self.assertEqual(status, 200, first)
        (instance_id,) = list(self.standin.instances)
        _, again = self.curl(body)
        self.assertIn(instance_id, again)
        self.assertEqual(len(self.standin.instances), 1)
        self.refused("IdempotentParameterMismatch", body.replace("t3.micro", "t3.small"))
        describe = f"Action=DescribeInstances&Version=2016-11-15&InstanceId.1={instance_id}"
        self.refused("InvalidInstanceID.NotFound", describe)
        status, text = self.curl(describe)
        self.assertEqual(status, 200, text)
        self.standin.throttle_next = 1
        status, text = self.curl(describe)
        self.assertEqual(status, 503)
        self.assertIn("RequestLimitExceeded", text)


if __name__ == "__main__":
    unittest.main()
