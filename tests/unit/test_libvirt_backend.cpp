// The libvirt backend on libvirt's test driver (test:///default and a
// custom test:///PATH world), with real qcow2 overlays made by qemu-img.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "latent/libvirt/libvirt_backend.hpp"
#include "latent/libvirt/libvirt_overlay.hpp"
#include "libvirt_test_support.hpp"

namespace {
const std::string node_uri = "test://" TEST_DATA_DIR "/libvirt-node.xml";
}  // namespace

TEST(LibvirtBackendFactory, KnowsTheBackendsOfThisVersion) {
    EXPECT_NE(make_backend("libvirt", "/tmp"), nullptr);
    EXPECT_NE(make_backend("docker", "/tmp"), nullptr);
    EXPECT_NE(make_backend("ec2", "/tmp"), nullptr);
    EXPECT_NE(make_backend("openstack", "/tmp"), nullptr);
    EXPECT_EQ(make_backend("openstack2", "/tmp"), nullptr);
    EXPECT_EQ(make_backend("", "/tmp"), nullptr);
}

class LibvirtBackendTest : public ::testing::Test {
protected:
    void SetUp() override {
        const std::string cmd = "qemu-img create -q -f qcow2 '" + base + "' 16M 2>&1";
        ASSERT_EQ(run(cmd), "") << "qemu-img (qemu-utils) is needed";
        ASSERT_TRUE(fs::exists(base));
    }

    by::config::Worker worker(const std::string& name, const std::string& uri = "test:///default") const {
        by::config::Worker w;
        w.name = name;
        w.type = by::config::WorkerType::latent;
        w.backend = "libvirt";
        w.backend_options = {{"libvirt.uri", uri},
                             {"libvirt.xml", template_path},
                             {"libvirt.base_image", base},
                             {"libvirt.memory", "256"},
                             {"libvirt.cpus", "2"}};
        return w;
    }

    StartSpec spec(const by::config::Worker& w, const std::string& start) const {
        return StartSpec{Tag{"m", w.name, start}, "10.0.2.2:9989", token, "", &w};
    }

    std::string overlay(const std::string& worker_name, const std::string& start) const {
        return libvirt::overlay_path(dir.path("state/overlays"), Tag{"m", worker_name, start});
    }

    // The domain as libvirt has it, through the backend's own connection.
    DomainPtr domain(const std::string& uri, const std::string& name) {
        auto c = backend.connection(uri);
        EXPECT_TRUE(c.ok()) << c.error;
        return DomainPtr(c.ok() ? virDomainLookupByName(c.value.get(), name.c_str()) : nullptr);
    }

    std::vector<Found> list(const std::vector<const by::config::Worker*>& workers) {
        auto l = backend.list("m", workers, not_cancelled);
        EXPECT_TRUE(l.ok()) << l.error;
        return l.value;
    }

    TempDir dir{"by-libvirt"};
    std::string base = dir.path("base.qcow2");
    std::string console_log = dir.path("console.log");
    std::string template_path = dir.write("vm.xml", test_template(console_log));
    LibvirtBackend backend{LibvirtBackend::Options{dir.path("state")}};
    Cancelled not_cancelled{false};
};

TEST_F(LibvirtBackendTest, CreateListCheckDestroy) {
    const auto w = worker("vm1");
    auto created = backend.create(spec(w, start_a), not_cancelled);
    ASSERT_TRUE(created.ok()) << created.error;
    EXPECT_EQ(created.value, "buildyard-m-vm1");

    // The overlay is a real qcow2 file on the base image.
    const std::string path = overlay("vm1", start_a);
    ASSERT_TRUE(fs::exists(path));
    EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::group_write);
    auto info = nlohmann::json::parse(run("qemu-img info --output=json '" + path + "'"));
    EXPECT_EQ(info.value("format", ""), "qcow2");
    EXPECT_EQ(info.value("backing-filename", ""), base);

    // libvirt has the edited domain: tag, credentials, overlay, sizes.
    DomainPtr d = domain("test:///default", "buildyard-m-vm1");
    ASSERT_TRUE(d);
    CStringPtr md(virDomainGetMetadata(d.get(), VIR_DOMAIN_METADATA_ELEMENT, libvirt::tag_namespace, 0));
    ASSERT_TRUE(md);
    EXPECT_EQ(libvirt::parse_tag_element(md.get()), (Tag{"m", "vm1", start_a}));
    CStringPtr live(virDomainGetXMLDesc(d.get(), 0));
    Xml x(live.get());
    EXPECT_NE(x.str("/domain/uuid"), "6b0a3a53-2cf9-4c55-9f3b-59c1c4a1d2e0");
    EXPECT_EQ(x.str("/domain/devices/disk[@device='disk']/source/@file"), path);
    EXPECT_EQ(x.str("/domain/sysinfo/oemStrings/entry[3]"), oem("token", token));
    EXPECT_EQ(x.str("/domain/vcpu"), "2");
    EXPECT_EQ(virDomainGetMaxMemory(d.get()), 256UL * 1024);

    // list: the domain (not test:///default's own untagged "test") and the
    // overlay, both with the tag.
    auto found = list({&w});
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0].kind, "domain");
    EXPECT_EQ(found[0].id, "buildyard-m-vm1");
    EXPECT_EQ(found[0].tag, (Tag{"m", "vm1", start_a}));
    EXPECT_TRUE(found[0].running);
    EXPECT_EQ(found[1].kind, "overlay");
    EXPECT_EQ(found[1].id, path);
    EXPECT_EQ(found[1].tag, (Tag{"m", "vm1", start_a}));

    auto health = backend.check(Tag{"m", "vm1", start_a}, &w, not_cancelled);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::running);

    auto destroyed = backend.destroy(Tag{"m", "vm1", start_a}, &w, 5'000'000, not_cancelled);
    ASSERT_TRUE(destroyed.ok()) << destroyed.error;
    EXPECT_FALSE(domain("test:///default", "buildyard-m-vm1"));
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(list({&w}).empty());
    EXPECT_TRUE(domain("test:///default", "test")) << "the untagged domain is untouched";

    // Nothing left to remove is success.
    EXPECT_TRUE(backend.destroy(Tag{"m", "vm1", start_a}, &w, 0, not_cancelled).ok());
}

TEST_F(LibvirtBackendTest, ASecondStartOfARunningWorkerFails) {
    const auto w = worker("vm1");
    ASSERT_TRUE(backend.create(spec(w, start_a), not_cancelled).ok());
    auto second = backend.create(spec(w, start_b), not_cancelled);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.error, "worker vm1 already has a domain on test:///default: buildyard-m-vm1 of start " + start_a +
                                " (running); it must be stopped before another start");
    EXPECT_FALSE(fs::exists(overlay("vm1", start_b)));
    EXPECT_TRUE(fs::exists(overlay("vm1", start_a)));
    EXPECT_EQ(backend.check(Tag{"m", "vm1", start_a}, &w, not_cancelled).value.health, Health::running);

    // Destroying another start of the worker leaves this one running.
    ASSERT_TRUE(backend.destroy(Tag{"m", "vm1", start_b}, &w, 0, not_cancelled).ok());
    EXPECT_TRUE(domain("test:///default", "buildyard-m-vm1"));
    EXPECT_TRUE(fs::exists(overlay("vm1", start_a)));
}

TEST_F(LibvirtBackendTest, ListsOnlyThisMastersDomainsAndRemovesALeak) {
    const auto w = worker("vm1", node_uri);
    auto found = list({&w});
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].kind, "domain");
    EXPECT_EQ(found[0].id, "buildyard-m-leak");
    EXPECT_EQ(found[0].tag, (Tag{"m", "leak", std::string(32, 'a')}));
    EXPECT_TRUE(found[0].running);

    // The leak's worker is no longer configured: remove() finds it anyway.
    auto removed = backend.remove(found[0], nullptr, not_cancelled);
    ASSERT_TRUE(removed.ok()) << removed.error;
    EXPECT_FALSE(domain(node_uri, "buildyard-m-leak")) << "persistent leaks are undefined too";
    EXPECT_TRUE(list({&w}).empty());
    for (const char* name : {"plain", "buildyard-other-vm1", "buildyard-m-vm2"}) {
        DomainPtr d = domain(node_uri, name);
        ASSERT_TRUE(d) << name;
        EXPECT_EQ(virDomainIsActive(d.get()), 1) << name;
    }
}

TEST_F(LibvirtBackendTest, RemoveLeavesADomainThatIsNoLongerTheListedOne) {
    const auto w = worker("vm1", node_uri);
    Found forged{Tag{"m", "vm1", start_a}, "domain", "buildyard-other-vm1", true};
    auto removed = backend.remove(forged, &w, not_cancelled);
    EXPECT_FALSE(removed.ok());
    EXPECT_NE(removed.error.find("left alone"), std::string::npos) << removed.error;
    EXPECT_TRUE(domain(node_uri, "buildyard-other-vm1"));
    Found container{Tag{"m", "vm1", start_a}, "container", "abc", true};
    EXPECT_FALSE(backend.remove(container, &w, not_cancelled).ok());
}

TEST_F(LibvirtBackendTest, CreateRefusesANameTakenBySomeoneElse) {
    const auto vm2 = worker("vm2", node_uri);
    auto untagged = backend.create(spec(vm2, start_a), not_cancelled);
    ASSERT_FALSE(untagged.ok());
    EXPECT_NE(untagged.error.find("a domain named buildyard-m-vm2 already exists on " + node_uri +
                                  " and is not this worker's: it carries no buildyard tag"),
              std::string::npos)
        << untagged.error;

    // Another master's domain, made directly on the same connection.
    const auto vm3 = worker("vm3", node_uri);
    auto conn = backend.connection(node_uri);
    ASSERT_TRUE(conn.ok());
    const std::string other =
        "<domain type='test'><name>buildyard-m-vm3</name><metadata><b:instance "
        "xmlns:b='https://buildyard.org/xmlns/latent/1' master='m-x' worker='vm3' start='" +
        start_b + "'/></metadata><os><type>hvm</type></os><memory>65536</memory><vcpu>1</vcpu></domain>";
    DomainPtr made(virDomainCreateXML(conn.value.get(), other.c_str(), 0));
    ASSERT_TRUE(made);
    auto clash = backend.create(spec(vm3, start_a), not_cancelled);
    ASSERT_FALSE(clash.ok());
    EXPECT_NE(clash.error.find("it belongs to worker vm3 of master m-x"), std::string::npos) << clash.error;
    EXPECT_FALSE(fs::exists(overlay("vm3", start_a)));
    EXPECT_TRUE(list({&vm3}).size() == 1) << "only buildyard-m-leak";
    // check() does not take it for this start's.
    auto health = backend.check(Tag{"m", "vm3", start_a}, &vm3, not_cancelled);
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health.value.health, Health::gone);
    EXPECT_NE(health.value.reason.find("is not this start's"), std::string::npos) << health.value.reason;
    EXPECT_TRUE(backend.destroy(Tag{"m", "vm3", start_a}, &vm3, 0, not_cancelled).ok());
    EXPECT_EQ(virDomainIsActive(made.get()), 1);
}

TEST_F(LibvirtBackendTest, LeakedOverlaysOfThisMasterOnly) {
    const auto w = worker("vm1");
    const std::string mine = dir.write("state/overlays/m/gone." + start_b + ".qcow2", "x");
    const std::string others = dir.write("state/overlays/other/gone." + start_b + ".qcow2", "x");
    const std::string stray = dir.write("state/overlays/m/notes.txt", "x");
    auto found = list({&w});
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].kind, "overlay");
    EXPECT_EQ(found[0].id, mine);
    EXPECT_EQ(found[0].tag, (Tag{"m", "gone", start_b}));
    auto removed = backend.remove(found[0], nullptr, not_cancelled);
    ASSERT_TRUE(removed.ok()) << removed.error;
    EXPECT_FALSE(fs::exists(mine));

    // A Found that does not match its path is refused.
    Found forged{Tag{"m", "gone", start_b}, "overlay", others, false};
    EXPECT_FALSE(backend.remove(forged, &w, not_cancelled).ok());
    EXPECT_TRUE(fs::exists(others));
    EXPECT_TRUE(fs::exists(stray));
}

TEST_F(LibvirtBackendTest, AMissingBaseImageLeavesNothing) {
    auto w = worker("vm1");
    w.backend_options["libvirt.base_image"] = dir.path("missing.qcow2");
    auto created = backend.create(spec(w, start_a), not_cancelled);
    ASSERT_FALSE(created.ok());
    EXPECT_EQ(created.error, "base image " + dir.path("missing.qcow2") + ": No such file or directory");
    EXPECT_FALSE(domain("test:///default", "buildyard-m-vm1"));
    EXPECT_FALSE(fs::exists(overlay("vm1", start_a)));
    EXPECT_TRUE(list({&w}).empty());
}

TEST_F(LibvirtBackendTest, AMissingTemplateIsAClearError) {
    auto w = worker("vm1");
    w.backend_options["libvirt.xml"] = dir.path("nope.xml");
    auto created = backend.create(spec(w, start_a), not_cancelled);
    EXPECT_EQ(created.error, "cannot read domain template " + dir.path("nope.xml") + ": No such file or directory");
    EXPECT_TRUE(list({&w}).empty());
}

TEST_F(LibvirtBackendTest, CancelledBeforeCreateLeavesNothing) {
    const auto w = worker("vm1");
    Cancelled cancelled{true};
    auto created = backend.create(spec(w, start_a), cancelled);
    ASSERT_FALSE(created.ok());
    EXPECT_NE(created.error.find("cancelled"), std::string::npos) << created.error;
    EXPECT_FALSE(domain("test:///default", "buildyard-m-vm1"));
    EXPECT_TRUE(list({&w}).empty());
}

// qemu-img that hangs: a script that makes the overlay file, then sleeps.
class HangingQemuImgTest : public LibvirtBackendTest {
protected:
    void SetUp() override {
        LibvirtBackendTest::SetUp();
        fake = dir.write("qemu-img", "#!/bin/sh\nfor last; do :; done\n: >\"$last\"\nexec sleep 30\n");
        fs::permissions(fake, fs::perms::owner_all);
    }
    std::string fake;
};

TEST_F(HangingQemuImgTest, CancelledWhileMakingTheOverlay) {
    LibvirtBackend hanging{LibvirtBackend::Options{dir.path("state"), fake}};
    const auto w = worker("vm1");
    Cancelled cancelled{false};
    std::thread canceller([&] {
        // Bounded: 10 s at most, then cancel anyway.
        for (int i = 0; i < 1000 && !fs::exists(overlay("vm1", start_a)); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        cancelled = true;
    });
    auto created = hanging.create(spec(w, start_a), cancelled);
    canceller.join();
    ASSERT_FALSE(created.ok());
    EXPECT_NE(created.error.find("was stopped: the call was cancelled"), std::string::npos) << created.error;
    EXPECT_FALSE(fs::exists(overlay("vm1", start_a)));
    auto l = hanging.list("m", {&w}, not_cancelled);
    EXPECT_TRUE(l.ok() && l.value.empty());
}

TEST_F(HangingQemuImgTest, QemuImgPastItsDeadline) {
    LibvirtBackend hanging{LibvirtBackend::Options{dir.path("state"), fake, 300'000}};
    const auto w = worker("vm1");
    auto created = hanging.create(spec(w, start_a), not_cancelled);
    ASSERT_FALSE(created.ok());
    EXPECT_NE(created.error.find("did not finish within 300 ms"), std::string::npos) << created.error;
    EXPECT_FALSE(fs::exists(overlay("vm1", start_a)));
}

TEST_F(LibvirtBackendTest, AGoneDomainIsReportedWithItsConsoleLog) {
    const auto w = worker("vm1");
    ASSERT_TRUE(backend.create(spec(w, start_a), not_cancelled).ok());
    std::string lines;
    for (int i = 1; i <= 60; ++i) {
        lines += "console line " + std::to_string(i) + "\n";
    }
    dir.write("console.log", lines);
    // The domain dies behind the backend's back.
    DomainPtr d = domain("test:///default", "buildyard-m-vm1");
    ASSERT_TRUE(d);
    ASSERT_EQ(virDomainDestroy(d.get()), 0);

    auto health = backend.check(Tag{"m", "vm1", start_a}, &w, not_cancelled);
    ASSERT_TRUE(health.ok()) << health.error;
    EXPECT_EQ(health.value.health, Health::gone);
    EXPECT_EQ(health.value.reason, "domain buildyard-m-vm1 is gone (it shut down, crashed or was destroyed)");
    EXPECT_EQ(health.value.log_tail.substr(0, 16), "console line 11\n");
    EXPECT_EQ(std::count(health.value.log_tail.begin(), health.value.log_tail.end(), '\n'), 50);
    EXPECT_TRUE(health.value.log_tail.ends_with("console line 60\n"));

    // The overlay stays until destroy(), which the daemon calls next.
    EXPECT_TRUE(fs::exists(overlay("vm1", start_a)));
    EXPECT_TRUE(backend.destroy(Tag{"m", "vm1", start_a}, &w, 0, not_cancelled).ok());
    EXPECT_FALSE(fs::exists(overlay("vm1", start_a)));
}

TEST_F(LibvirtBackendTest, ManyCallsAtOnce) {
    constexpr int n = 6;
    std::vector<by::config::Worker> workers;
    for (int i = 0; i < n; ++i) {
        workers.push_back(worker("vm" + std::to_string(i)));
    }
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            const auto& w = workers[static_cast<size_t>(i)];
            const Tag tag{"m", w.name, start_a};
            Cancelled c{false};
            if (!backend.create(spec(w, start_a), c).ok() || backend.check(tag, &w, c).value.health != Health::running ||
                !backend.list("m", {&w}, c).ok() || !backend.destroy(tag, &w, 1'000'000, c).ok()) {
                ++failures;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(failures, 0);
    EXPECT_TRUE(list({&workers[0]}).empty());
}
