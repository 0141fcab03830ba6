// Editing a domain template, reading tags and console logs back, and the
// overlay paths: pure functions, no libvirt.
#include <gtest/gtest.h>

#include "common/config.hpp"
#include "latent/libvirt/libvirt_overlay.hpp"
#include "libvirt_test_support.hpp"

TEST(LibvirtDomainXml, EditsTheTemplate) {
    auto s = settings();
    s.memory_mib = 512;
    s.cpus = 3;
    auto out = libvirt::edit_domain_template(test_template("/tmp/c.log"), s);
    ASSERT_TRUE(out.ok()) << out.error;
    Xml x(out.value);
    ASSERT_TRUE(x.ok()) << out.value;
    EXPECT_EQ(x.str("/domain/name"), "buildyard-m-vm1");
    EXPECT_EQ(x.count("/domain/uuid"), 0);
    EXPECT_EQ(x.count("/domain/metadata/b:instance"), 1);
    EXPECT_EQ(x.str("/domain/metadata/b:instance/@master"), "m");
    EXPECT_EQ(x.str("/domain/metadata/b:instance/@worker"), "vm1");
    EXPECT_EQ(x.str("/domain/metadata/b:instance/@start"), start_a);
    EXPECT_EQ(x.str("/domain/memory"), "512");
    EXPECT_EQ(x.str("/domain/memory/@unit"), "MiB");
    EXPECT_EQ(x.str("/domain/currentMemory"), "512");
    EXPECT_EQ(x.str("/domain/vcpu"), "3");
    EXPECT_EQ(x.count("/domain/vcpu/@current"), 0);
    // The first disk with device='disk' (not the cdrom) boots the overlay.
    EXPECT_EQ(x.str("/domain/devices/disk[1]/source/@file"), "/tmp/cd.iso");
    EXPECT_EQ(x.str("/domain/devices/disk[2]/@type"), "file");
    EXPECT_EQ(x.str("/domain/devices/disk[2]/source/@file"), s.overlay);
    EXPECT_EQ(x.count("/domain/devices/disk[2]/source"), 1);
    EXPECT_EQ(x.str("/domain/devices/disk[2]/driver/@name"), "qemu");
    EXPECT_EQ(x.str("/domain/devices/disk[2]/driver/@type"), "qcow2");
    EXPECT_EQ(x.str("/domain/devices/disk[2]/target/@dev"), "vda");
    EXPECT_EQ(x.str("/domain/sysinfo[@type='smbios']/oemStrings/entry[1]"), oem("worker", "vm1"));
    EXPECT_EQ(x.str("/domain/sysinfo[@type='smbios']/oemStrings/entry[2]"), oem("master", "10.0.2.2:9989"));
    EXPECT_EQ(x.str("/domain/sysinfo[@type='smbios']/oemStrings/entry[3]"), oem("token", token));
    EXPECT_EQ(x.str("/domain/os/smbios/@mode"), "sysinfo");
    EXPECT_EQ(x.str("/domain/os/cmdline"),
              "console=ttyS0 buildyard.worker=vm1 buildyard.master=10.0.2.2:9989 buildyard.token=" + token);
}

TEST(LibvirtDomainXml, AddsADiskWhenThereIsNoneAndNoCmdlineWithoutAKernel) {
    const std::string tmpl = "<domain type='test'><name>t</name><memory>1024</memory><vcpu>1</vcpu>"
                             "<os><type>hvm</type></os></domain>";
    auto out = libvirt::edit_domain_template(tmpl, settings());
    ASSERT_TRUE(out.ok()) << out.error;
    Xml x(out.value);
    EXPECT_EQ(x.str("/domain/devices/disk/@device"), "disk");
    EXPECT_EQ(x.str("/domain/devices/disk/source/@file"), settings().overlay);
    EXPECT_EQ(x.str("/domain/devices/disk/target/@bus"), "virtio");
    EXPECT_EQ(x.count("/domain/os/cmdline"), 0);
    EXPECT_EQ(x.str("/domain/os/smbios/@mode"), "sysinfo");
    // No override: the template's values stay.
    EXPECT_EQ(x.str("/domain/memory"), "1024");
    EXPECT_EQ(x.str("/domain/vcpu"), "1");
}

TEST(LibvirtDomainXml, WithoutAnOverlayTheDisksStayAsTheyAre) {
    auto out = libvirt::edit_domain_template(test_template("/tmp/c.log"), settings(""));
    ASSERT_TRUE(out.ok()) << out.error;
    Xml x(out.value);
    EXPECT_EQ(x.str("/domain/devices/disk[2]/@type"), "block");
    EXPECT_EQ(x.str("/domain/devices/disk[2]/source/@dev"), "/dev/sdz");
    EXPECT_EQ(x.count("/domain/devices/disk[2]/driver"), 0);
}

TEST(LibvirtDomainXml, ReplacesAnOldTagAndOldCredentials) {
    const std::string tmpl =
        "<domain type='test' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'><name>t</name>"
        "<metadata><x:instance xmlns:x='https://buildyard.org/xmlns/latent/1' master='old' worker='w' start='s'/>"
        "<app xmlns='https://example.org/app'>kept</app></metadata>"
        "<sysinfo type='smbios'><oemStrings><entry>io.systemd.credential:buildyard.token=stale</entry>"
        "<entry>io.systemd.credential:other=kept</entry></oemStrings></sysinfo>"
        "<os><type>hvm</type></os><qemu:commandline><qemu:arg value='-S'/></qemu:commandline></domain>";
    auto out = libvirt::edit_domain_template(tmpl, settings());
    ASSERT_TRUE(out.ok()) << out.error;
    Xml x(out.value);
    EXPECT_EQ(x.count("/domain/metadata/b:instance"), 1);
    EXPECT_EQ(x.str("/domain/metadata/b:instance/@master"), "m");
    EXPECT_EQ(x.count("/domain/metadata/*"), 2);
    EXPECT_EQ(x.count("/domain/sysinfo/oemStrings/entry"), 4);
    EXPECT_EQ(x.str("/domain/sysinfo/oemStrings/entry[1]"), "io.systemd.credential:other=kept");
    EXPECT_EQ(x.str("/domain/sysinfo/oemStrings/entry[4]"), oem("token", token));
    EXPECT_NE(out.value.find("qemu:commandline"), std::string::npos);
}

TEST(LibvirtDomainXml, RefusesWhatIsNotADomainTemplate) {
    auto bad = libvirt::edit_domain_template("<domain><name>x</name>", settings());
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.error.find("invalid XML at line"), std::string::npos) << bad.error;
    auto other = libvirt::edit_domain_template("<network><name>x</name></network>", settings());
    EXPECT_FALSE(other.ok());
    EXPECT_NE(other.error.find("root element is <network>"), std::string::npos) << other.error;
}

TEST(LibvirtDomainXml, TheExampleTemplateTakesTheEdits) {
    const std::string example = read_file(TEST_DATA_DIR "/../../../etc/latent/vm1.xml");
    ASSERT_FALSE(example.empty());
    auto out = libvirt::edit_domain_template(example, settings());
    ASSERT_TRUE(out.ok()) << out.error;
    Xml x(out.value);
    EXPECT_EQ(x.str("/domain/@type"), "qemu");
    EXPECT_EQ(x.count("/domain/features/acpi"), 1);
    EXPECT_EQ(x.str("/domain/devices/interface/@type"), "user");
    EXPECT_EQ(x.str("/domain/devices/disk/source/@file"), settings().overlay);
    EXPECT_EQ(libvirt::console_log_files(out.value),
              std::vector<std::string>{"/var/log/libvirt/qemu/buildyard-vm1-console.log"});
}

TEST(LibvirtDomainXml, ReadsTagsAndConsoleLogs) {
    auto tag = libvirt::parse_tag_element(
        "<instance xmlns='https://buildyard.org/xmlns/latent/1' master='m' worker='w' start='s'/>");
    ASSERT_TRUE(tag);
    EXPECT_EQ(*tag, (Tag{"m", "w", "s"}));
    EXPECT_FALSE(libvirt::parse_tag_element("<instance master='m' worker='w'/>"));
    EXPECT_FALSE(libvirt::parse_tag_element("not xml"));
    EXPECT_EQ(libvirt::console_log_files(test_template("/var/log/c.log")), std::vector<std::string>{"/var/log/c.log"});
}

TEST(LibvirtOverlay, ThePathIsTheTag) {
    const Tag tag{"m", "vm.1", start_a};
    const std::string path = libvirt::overlay_path("/srv/overlays", tag);
    EXPECT_EQ(path, "/srv/overlays/m/vm.1." + start_a + ".qcow2");
    EXPECT_EQ(libvirt::parse_overlay_path(path), tag);
    EXPECT_FALSE(libvirt::parse_overlay_path("/srv/overlays/m/vm1.qcow2"));
    EXPECT_FALSE(libvirt::parse_overlay_path("/srv/overlays/m/vm1." + start_a + ".img"));
    EXPECT_FALSE(libvirt::parse_overlay_path("relative/m/vm1." + start_a + ".qcow2"));
    EXPECT_FALSE(libvirt::parse_overlay_path("/srv/overlays/m/vm1." + std::string(32, 'A') + ".qcow2"));
    EXPECT_EQ(libvirt::tag_problem(Tag{"../x", "w", start_a}), "invalid master name '../x'");
    EXPECT_NE(libvirt::tag_problem(Tag{"m", "w", "123"}), "");
}

TEST(LibvirtExample, TheExampleWorkerLoadsWithTheExampleMasterIni) {
    TempDir dir{"by-libvirt"};
    dir.write("master.ini", read_file(TEST_DATA_DIR "/../../../etc/master.ini"));
    dir.write("master.d/50-vm1.ini", read_file(TEST_DATA_DIR "/../../../etc/master.d/50-vm1.ini.example"));
    by::config::Environment env;
    env.hostname = "host";
    auto loaded = by::config::load(dir.path("master.ini"), env);
    std::string errors;
    for (const auto& e : loaded.errors) {
        errors += e.str() + "\n";
    }
    ASSERT_TRUE(loaded.config) << errors;
    const auto& w = loaded.config->workers.at("vm1");
    EXPECT_EQ(w.type, by::config::WorkerType::latent);
    EXPECT_EQ(w.backend, "libvirt");
    EXPECT_EQ(w.master_address, "10.0.2.2:9989");
    EXPECT_EQ(w.backend_options.at("libvirt.xml"), "/etc/buildyard/latent/vm1.xml");
    EXPECT_EQ(w.backend_options.at("libvirt.shutdown_timeout"), "60");
}
