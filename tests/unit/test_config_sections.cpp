// The master's config loader, what each section and key means: every
// value error asserted with its FILE:LINE and message.
#include "config_test_support.hpp"

namespace {

TEST_F(ConfigTest, MasterSection) {
    auto c = load_ok("[master]\nlisten =\ntrusted_uids = root, 1000 ,0\n");
    EXPECT_EQ(c.master.listen, "");
    EXPECT_EQ(c.master.trusted_uids, (std::vector<uid_t>{0, 1000, 0}));
    c = load_ok("[master]\nlisten = [::1]:9989\n");
    EXPECT_EQ(c.master.listen, "[::1]:9989");

    expect_error("[master]\nname = -bad\n", "2: [master] name: invalid name '-bad'");
    expect_error("[master]\nname =\n", "2: [master] name: invalid name ''");
    for (const char* bad : {"0.0.0.0", "0.0.0.0:0", "0.0.0.0:65536", "::1:9989", "host:port"}) {
        expect_error(std::string("[master]\nlisten = ") + bad + "\n",
                     std::string("2: [master] listen: invalid address '") + bad + "'");
    }
    expect_error("[master]\ntrusted_uids = 0,,1\n", "2: [master] trusted_uids: empty entry in list");
    expect_error("[master]\ntrusted_uids = no-such-user-xyz\n",
                 "2: [master] trusted_uids: unknown user 'no-such-user-xyz'");
    expect_error("[master]\ntrusted_uids = 4294967295\n", "2: [master] trusted_uids: unknown user '4294967295'");
}

// A cluster's timing: seconds; the timeout more than twice the heartbeat,
// said at the key that was set.
TEST_F(ConfigTest, ClusterTiming) {
    auto c = load_ok("");
    EXPECT_EQ(c.master.cluster_heartbeat_usec, 2'000'000u);
    EXPECT_EQ(c.master.cluster_timeout_usec, 10'000'000u);
    c = load_ok("[master]\nname = m1\ncluster_heartbeat = 1\ncluster_timeout = 2.5\n");
    EXPECT_EQ(c.master.name, "m1");
    EXPECT_EQ(c.master.cluster_heartbeat_usec, 1'000'000u);
    EXPECT_EQ(c.master.cluster_timeout_usec, 2'500'000u);

    expect_error("[master]\ncluster_heartbeat = 0\n",
                 "2: [master] cluster_heartbeat: invalid value '0': expected a positive number of seconds up to 3600");
    expect_error("[master]\ncluster_timeout = 1d\n",
                 "2: [master] cluster_timeout: invalid value '1d': expected a positive number of seconds up to 86400");
    expect_error("[master]\ncluster_heartbeat = 1\ncluster_timeout = 2\n",
                 "3: [master] cluster_timeout: cluster_timeout (2 s) must be more than twice cluster_heartbeat (1 s)");
    // Only the heartbeat set: the default timeout is too short for it.
    expect_error("[master]\nname = m\ncluster_heartbeat = 5\n",
                 "3: [master] cluster_heartbeat: cluster_timeout (10 s) must be more than twice cluster_heartbeat "
                 "(5 s)");
}

TEST_F(ConfigTest, MailSection) {
    auto c = load_ok("[mail]\n");
    EXPECT_TRUE(c.mail.configured);
    EXPECT_FALSE(c.mail.builders_set);

    c = load_ok("[mail]\nbuilders =\nstarttls = required\nport = 587\nrecipients = a@b.org, c@localhost\n");
    EXPECT_TRUE(c.mail.builders_set);
    EXPECT_TRUE(c.mail.builders.empty());
    EXPECT_EQ(c.mail.starttls, StartTls::required);
    EXPECT_EQ(c.mail.port, 587u);
    EXPECT_EQ(c.mail.recipients, (std::vector<std::string>{"a@b.org", "c@localhost"}));
    c = load_ok("[mail]\nstarttls = no\n");
    EXPECT_EQ(c.mail.starttls, StartTls::no);

    expect_error("[mail]\nfromaddr = Buildyard <b@x.org>\n", "2: [mail] fromaddr: invalid address 'Buildyard <b@x.org>'");
    expect_error("[mail]\nrelayhost = smtp..org\n", "2: [mail] relayhost: invalid host name 'smtp..org'");
    expect_error("[mail]\nport = 0\n", "2: [mail] port: invalid port '0'");
    expect_error("[mail]\nport = 65536\n", "2: [mail] port: invalid port '65536'");
    expect_error("[mail]\nstarttls = yes\n",
                 "2: [mail] starttls: invalid value 'yes': expected no, if-available or required");
    expect_error("[mail]\nrecipients = a@b.org, nobody\n", "2: [mail] recipients: invalid address 'nobody'");
    expect_error("[mail]\nrecipients = a@b.org,\n", "2: [mail] recipients: empty entry in list");
    expect_error(local_worker + "[mail]\nbuilders = nightly\nrecipients = a@b.org\n",
                 "4: [mail] builders: unknown builder 'nightly'");
    expect_error(local_worker + "[builder b]\nworkers = w\nstep.1 = x\n[mail]\nbuilders = b\n",
                 "7: [mail] builders: results are mailed to recipients, but no recipients are set");
}

// Timeouts and intervals: seconds, fractions allowed, kept in microseconds.
TEST_F(ConfigTest, Durations) {
    auto c = load_ok("");
    EXPECT_EQ(c.master.auth_timeout_usec, 10'000'000u);
    EXPECT_EQ(c.master.duplicate_ping_timeout_usec, 10'000'000u);
    EXPECT_EQ(c.master.latent_lease_usec, 300'000'000u);
    EXPECT_EQ(c.mail.retry_interval_usec, 30'000'000u);
    EXPECT_EQ(c.mail.give_up_after_usec, 86400'000'000u);
    EXPECT_EQ(c.latentd.create_timeout_usec, 300'000'000u);
    EXPECT_EQ(c.latentd.destroy_timeout_usec, 120'000'000u);
    EXPECT_EQ(c.latentd.health_interval_usec, 10'000'000u);
    EXPECT_EQ(c.latentd.reap_interval_usec, 60'000'000u);
    EXPECT_EQ(c.latentd.lease_check_interval_usec, 1'000'000u);

    c = load_ok("[master]\nauth_timeout = 1.5\nduplicate_ping_timeout = 3600\nlatent_lease = 86400\n"
                "[mail]\nretry_interval = 0.2\ngive_up_after = 1.5\n"
                "[latentd]\ncreate_timeout = 2\ndestroy_timeout = 0.5\nhealth_interval = 0.25\n"
                "reap_interval = 0.3\nlease_check_interval = 0.1\n");
    EXPECT_EQ(c.master.auth_timeout_usec, 1'500'000u);
    EXPECT_EQ(c.master.duplicate_ping_timeout_usec, 3600'000'000u);
    EXPECT_EQ(c.master.latent_lease_usec, 86400'000'000u);
    EXPECT_EQ(c.mail.retry_interval_usec, 200'000u);
    EXPECT_EQ(c.mail.give_up_after_usec, 1'500'000u);
    EXPECT_EQ(c.latentd.create_timeout_usec, 2'000'000u);
    EXPECT_EQ(c.latentd.destroy_timeout_usec, 500'000u);
    EXPECT_EQ(c.latentd.health_interval_usec, 250'000u);
    EXPECT_EQ(c.latentd.reap_interval_usec, 300'000u);
    EXPECT_EQ(c.latentd.lease_check_interval_usec, 100'000u);

    expect_error("[master]\nauth_timeout = 3601\n",
                 "2: [master] auth_timeout: invalid value '3601': expected a positive number of seconds up to 3600");
    expect_error("[master]\nname = m\nduplicate_ping_timeout = 0\n",
                 "3: [master] duplicate_ping_timeout: invalid value '0': expected a positive number of seconds up "
                 "to 3600");
    expect_error("[master]\nlatent_lease = 5m\n",
                 "2: [master] latent_lease: invalid value '5m': expected a positive number of seconds");
    expect_error("[mail]\nretry_interval = -1\n",
                 "2: [mail] retry_interval: invalid value '-1': expected a positive number of seconds");
    expect_error("[mail]\ngive_up_after =\n",
                 "2: [mail] give_up_after: invalid value '': expected a positive number of seconds");
    for (const char* key :
         {"create_timeout", "destroy_timeout", "health_interval", "reap_interval", "lease_check_interval"}) {
        expect_error(std::string("[latentd]\n") + key + " = x\n",
                     std::string("2: [latentd] ") + key + ": invalid value 'x': expected a positive number of seconds");
    }
    expect_error("[latentd]\nreap_interval = 0\n",
                 "2: [latentd] reap_interval: invalid value '0': expected a positive number of seconds");
    expect_error("[latentd]\ncall_timeout = 1\n", "2: [latentd] call_timeout: unknown key");
    expect_error("[latentd foo]\n", "1: [latentd foo]: unknown section");

    // A drop-in's bad value is named with its own file and line.
    dir.write("master.d/10-fast.ini", "[latentd]\n; a typo\nhealth_interval = 1e400\n");
    auto r = load_text("[latentd]\nhealth_interval = 1\n");
    EXPECT_FALSE(r.config);
    EXPECT_TRUE(has_error(r.errors, dir.path("master.d/10-fast.ini") +
                                        ":3: [latentd] health_interval: invalid value '1e400'"));
}

TEST_F(ConfigTest, MailTlsCaFile) {
    EXPECT_TRUE(load_ok("[mail]\n").mail.tls_ca_file.empty());
    const auto ca = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    EXPECT_EQ(load_ok("[mail]\ntls_ca_file = " + ca + "\n").mail.tls_ca_file, ca);
    expect_error("[mail]\ntls_ca_file = ca.pem\n",
                 "2: [mail] tls_ca_file: invalid path 'ca.pem': expected an absolute path");
    expect_error("[mail]\ntls_ca_file = " + dir.path("nope.pem") + "\n",
                 "2: [mail] tls_ca_file: cannot read " + dir.path("nope.pem") + ": No such file or directory");
}

TEST_F(ConfigTest, MailPassword) {
    const auto secret = dir.write("mail.secret", "s3cret\n");
    auto c = load_ok("[mail]\nusername = ci\npassword_file = " + secret + "\n");
    EXPECT_EQ(c.mail.username, "ci");
    EXPECT_EQ(c.mail.password, "s3cret");

    env.credentials_directory = dir.path("creds");
    dir.write("creds/smtp", "from-cred");
    c = load_ok("[mail]\nusername = ci\npassword_credential = smtp\n");
    EXPECT_EQ(c.mail.password, "from-cred");

    expect_error("[mail]\nusername = ci\npassword_file = " + secret + "\npassword_credential = smtp\n",
                 "4: [mail] password_credential: set only one of password_file and password_credential");
    expect_error("[mail]\npassword_file = " + secret + "\n", "2: [mail] password_file: a mail password needs username");
    expect_error("[mail]\nusername = ci\npassword_file = mail.secret\n",
                 "3: [mail] password_file: 'mail.secret' is not an absolute path");
}

TEST_F(ConfigTest, WorkerNames) {
    expect_error("[worker]\n", "1: [worker]: missing worker name: use [worker NAME]");
    expect_error("[worker -x]\ntype = local\n", "1: [worker -x]: invalid worker name '-x'");
    expect_error("[worker a b]\n", "1: [worker a b]: invalid worker name 'a b'");
    expect_error("[builder .b]\n", "1: [builder .b]: invalid builder name '.b'");
    // Longer than inih's 50-byte section buffer, but a valid name.
    const std::string long_name(64, 'n');
    const auto c = load_ok("[worker " + long_name + "]\ntype = local\nmax_builds = 4\n");
    EXPECT_EQ(c.workers.at(long_name).max_builds, 4u);
    expect_error("[worker " + long_name + "]\nfoo = 1\n", "2: [worker " + long_name + "] foo: unknown key");
}

TEST_F(ConfigTest, WorkerPasswords) {
    const auto pwfile = dir.write("pw", "filepw\n\n");
    auto c = load_ok("[worker w]\npassword_file = " + pwfile + "\n");
    EXPECT_EQ(c.workers.at("w").password, "filepw\n");   // only one newline is stripped
    env.credentials_directory = dir.path("creds");
    dir.write("creds/w", "credpw\n");
    c = load_ok("[worker w]\npassword_credential = w\n");
    EXPECT_EQ(c.workers.at("w").password, "credpw");

    expect_error("[worker w]\nmax_builds = 1\n",
                 "1: [worker w]: standard workers need password, password_file or password_credential "
                 "(use type = local for a worker on this machine)");
    expect_error("[worker w]\ntype = local\npassword = x\n", "3: [worker w] password: local workers take no password");
    expect_error("[worker w]\npassword = x\npassword_file = " + pwfile + "\n",
                 "3: [worker w] password_file: conflicts with password (" + main + ":2)");
    expect_error("[worker w]\npassword =\n", "2: [worker w] password: the password is empty");
    expect_error("[worker w]\npassword_file = relative/pw\n",
                 "2: [worker w] password_file: 'relative/pw' is not an absolute path");
    expect_error("[worker w]\npassword_file = " + dir.path("missing") + "\n",
                 "2: [worker w] password_file: cannot read " + dir.path("missing") + ": No such file or directory");
    dir.write("empty", "\n");
    expect_error("[worker w]\npassword_file = " + dir.path("empty") + "\n",
                 "2: [worker w] password_file: " + dir.path("empty") + " is empty");
    expect_error("[worker w]\npassword_credential = nope\n",
                 "2: [worker w] password_credential: cannot read " + dir.path("creds/nope"));
    expect_error("[worker w]\npassword_credential = ../w\n",
                 "2: [worker w] password_credential: invalid credential name '../w'");
    env.credentials_directory.clear();
    expect_error("[worker w]\npassword_credential = w\n",
                 "2: [worker w] password_credential: password_credential needs $CREDENTIALS_DIRECTORY "
                 "(set LoadCredential= in the unit)");
}

TEST_F(ConfigTest, WorkerValues) {
    const std::string remote_worker = "[worker w]\npassword = s3cret\n";
    // keepalive_* are for workers that attach over TCP.
    auto c = load_ok("[worker w]\npassword = s3cret\n"
                     "max_builds = 100000\n"
                     "keepalive_interval = none\n"
                     "keepalive_timeout = 5\n"
                     "missing_timeout = 0\n"
                     "notify_on_missing = a@localhost\n"
                     "property.build-arch.x_y = amd64\n"
                     "property.empty =\n");
    const Worker& w = c.workers.at("w");
    EXPECT_EQ(w.max_builds, 100000u);
    EXPECT_EQ(w.keepalive_interval, 0u);
    EXPECT_EQ(w.keepalive_timeout, 5u);
    EXPECT_EQ(w.missing_timeout, 0u);
    EXPECT_EQ(w.notify_on_missing, std::vector<std::string>{"a@localhost"});
    EXPECT_EQ(w.properties.at("build-arch.x_y"), "amd64");
    EXPECT_EQ(w.properties.at("empty"), "");

    for (const char* bad : {"-1", "abc", "2x", "100001", "", "1 2", "+1"}) {
        expect_error(local_worker + "max_builds = " + bad + "\n",
                     std::string("3: [worker w] max_builds: invalid value '") + bad +
                         "': expected a number from 0 to 100000 (0: no limit)");
    }
    expect_error(remote_worker + "keepalive_interval = 0\n",
                 "3: [worker w] keepalive_interval: 0 is not allowed: use 'none' to turn keepalives off");
    expect_error(remote_worker + "keepalive_interval = 1h\n",
                 "3: [worker w] keepalive_interval: invalid value '1h': expected a positive number of seconds or 'none'");
    expect_error(remote_worker + "keepalive_interval = 99999999999\n",
                 "3: [worker w] keepalive_interval: invalid value '99999999999'");
    expect_error(remote_worker + "keepalive_timeout = 0\n",
                 "3: [worker w] keepalive_timeout: invalid value '0': expected a positive number of seconds");
    expect_error(local_worker + "missing_timeout = -5\n",
                 "3: [worker w] missing_timeout: invalid value '-5': expected a number of seconds (0: disabled)");
    expect_error(local_worker + "notify_on_missing = a@b.org, bob\n",
                 "3: [worker w] notify_on_missing: invalid address 'bob'");
    expect_error(local_worker + "notify_on_missing = a@b.org,,c@d.org\n",
                 "3: [worker w] notify_on_missing: empty entry in list");
    expect_error(local_worker + "property. = x\n", "3: [worker w] property.: invalid property name ''");
    expect_error(local_worker + "property.a/b = x\n", "3: [worker w] property.a/b: invalid property name 'a/b'");
}

TEST_F(ConfigTest, AddressValidation) {
    for (const char* good : {"a@localhost", "first.last+tag@sub.example.org", "x_y-z!#$%&'*/=?^`{|}~@a-b.c0"}) {
        const auto c = load_ok(local_worker + "notify_on_missing = " + good + "\n");
        EXPECT_EQ(c.workers.at("w").notify_on_missing, std::vector<std::string>{good});
    }
    for (const char* bad : {"bob", "@x.org", "a@", "a b@x.org", "a@-x.org", "a@x-.org", "a@x..org", "a@x.org.",
                            "a\"b@x.org", "a@x_y.org", "a@b@c.org", "a<b@x.org", "a;b@x.org", "a:b@x.org",
                            "a\\b@x.org", "a[b]@x.org", "\xc3\xbc@x.org"}) {
        expect_error(local_worker + "notify_on_missing = " + bad + "\n",
                     std::string("3: [worker w] notify_on_missing: invalid address '") + bad + "'");
    }
}

TEST_F(ConfigTest, LatentWorkers) {
    const std::string vm = "[master]\nlisten = 127.0.0.1:9000\n[worker vm1]\ntype = latent\nbackend = libvirt\n"
                           "libvirt.uri = test:///default\nlibvirt.xml = /etc/buildyard/vm1.xml\n";
    auto c = load_ok(vm + "libvirt.base_image = /img/base.qcow2\nlibvirt.memory = 512\nlibvirt.cpus = 2\n"
                          "build_wait_timeout = -1\nmax_builds = 1\n");
    const auto& w = c.workers.at("vm1");
    EXPECT_EQ(w.type, WorkerType::latent);
    EXPECT_EQ(w.backend, "libvirt");
    EXPECT_EQ(w.build_wait_timeout, -1);
    EXPECT_EQ(w.backend_options.at("libvirt.uri"), "test:///default");
    EXPECT_EQ(w.backend_options.at("libvirt.memory"), "512");
    EXPECT_TRUE(w.password.empty());
    // The instance dials this host at the listen port, unless told otherwise.
    EXPECT_EQ(w.master_address, std::string("testhost:9000"));
    EXPECT_EQ(load_ok(vm + "master_address = 10.0.2.2:9000\n").workers.at("vm1").master_address, "10.0.2.2:9000");
    EXPECT_EQ(load_ok(vm).workers.at("vm1").build_wait_timeout, 600);

    expect_error(vm + "password = x\n", "8: [worker vm1] password: latent workers take no password");
    expect_error(vm + "master_address = nowhere\n", "8: [worker vm1] master_address: invalid address 'nowhere'");
    expect_error(vm + "libvirt.memory = lots\n", "8: [worker vm1] libvirt.memory: invalid value 'lots'");
    expect_error(vm + "libvirt.colour = blue\n", "8: [worker vm1] libvirt.colour: unknown key");
    expect_error(vm + "libvirt.base_image = base.qcow2\n", "8: [worker vm1] libvirt.base_image: invalid path");
    expect_error(vm + "docker.image = x\n",
                 "8: [worker vm1] docker.image: belongs to backend docker, but this worker's backend is libvirt");
    expect_error("[master]\nlisten = 127.0.0.1:9000\n[worker vm1]\ntype = latent\nbackend = libvirt\n"
                 "libvirt.uri = test:///default\n",
                 "3: [worker vm1]: libvirt workers need libvirt.xml");
    expect_error("[master]\nlisten =\n[worker vm1]\ntype = latent\nbackend = libvirt\n"
                 "libvirt.uri = test:///default\nlibvirt.xml = /x.xml\n",
                 "3: [worker vm1]: latent workers attach over TCP, but [master] listen is empty");
    expect_error("[worker vm1]\ntype = latent\nbackend = nimbus\n",
                 "3: [worker vm1] backend: unknown backend 'nimbus': expected libvirt, docker, ec2 or openstack");

    expect_error(local_worker + "build_wait_timeout = 600\n",
                 "3: [worker w] build_wait_timeout: only valid for latent workers");
    expect_error(local_worker + "master_address = h:1\n", "3: [worker w] master_address: only valid for latent workers");
    expect_error(local_worker + "backend = libvirt\nlibvirt.uri = x\n", "3: [worker w] backend: only valid for latent workers");
    expect_error(local_worker + "backend = libvirt\nlibvirt.uri = x\n", "4: [worker w] libvirt.uri: only valid for latent workers");
    expect_error(local_worker + "libvirt.uri = x\n", "3: [worker w] libvirt.uri: unknown key");
    expect_error(vm + "build_wait_timeout = soon\n", "8: [worker vm1] build_wait_timeout: invalid value 'soon'");
    expect_error("[worker vm1]\ntype = latent\n", "1: [worker vm1]: latent workers need backend = NAME");
}

TEST_F(ConfigTest, Builders) {
    auto c = load_ok(local_worker + "[worker v]\ntype = local\n" +
                     "[builder b]\nworkers = v, w\nstep.10 = ten\nstep.2 = two\nstep.1 = one\n");
    EXPECT_EQ(c.builders.at("b").steps, (std::vector<std::string>{"one", "two", "ten"}));
    EXPECT_EQ(c.builders.at("b").workers, (std::vector<std::string>{"v", "w"}));

    expect_error(local_worker + "[builder b]\nstep.1 = x\n",
                 "3: [builder b]: builder has no workers (add workers = NAME, ...)");
    expect_error(local_worker + "[builder b]\nworkers = w\n", "3: [builder b]: builder has no steps (add step.1 = COMMAND)");
    expect_error(local_worker + "[builder b]\nworkers =\nstep.1 = x\n", "4: [builder b] workers: needs at least one worker");
    expect_error(local_worker + "[builder b]\nworkers = w, x\nstep.1 = x\n", "4: [builder b] workers: unknown worker 'x'");
    expect_error(local_worker + "[builder b]\nworkers = w,\nstep.1 = x\n", "4: [builder b] workers: empty entry in list");
    expect_error(local_worker + "[builder b]\nworkers = w, w\nstep.1 = x\n",
                 "4: [builder b] workers: worker 'w' is listed twice");
    for (const char* bad : {"0", "01", "x", "", "1.5", "-1"}) {
        expect_error(local_worker + "[builder b]\nworkers = w\nstep." + bad + " = x\n",
                     std::string("5: [builder b] step.") + bad + ": invalid step number '" + bad + "'");
    }
    expect_error(local_worker + "[builder b]\nworkers = w\nstep.1 =\n", "5: [builder b] step.1: the step's command is empty");
}

// A worker declared only in a drop-in satisfies a builder in master.ini.
TEST_F(ConfigTest, CrossReferencesAfterAllFiles) {
    dir.write("master.d/workers.ini", "[worker late]\ntype = local\n");
    const auto c = load_ok("[builder b]\nworkers = late\nstep.1 = x\n");
    EXPECT_EQ(c.builders.at("b").workers, std::vector<std::string>{"late"});
}


}  // namespace
