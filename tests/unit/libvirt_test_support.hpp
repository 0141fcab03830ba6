// Shared by the libvirt backend's tests: a temporary directory, a domain
// template for the test driver, and XPath over produced XML.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <libxml/parser.h>
#include <libxml/xpathInternals.h>

#include "latent/libvirt/libvirt_domain_xml.hpp"
#include "latent/libvirt/libvirt_handles.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace by::latent;

namespace {

const std::string start_a = "0123456789abcdef0123456789abcdef";
const std::string start_b = "fedcba9876543210fedcba9876543210";
const std::string token = std::string(64, 'c');

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline std::string run(const std::string& command) {
    std::string out;
    if (FILE* p = popen(command.c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
            out.append(buf, n);
        }
        pclose(p);
    }
    return out;
}

// XPath over a produced domain XML.
class Xml {
public:
    explicit Xml(const std::string& text)
        : doc_(xmlReadMemory(text.data(), static_cast<int>(text.size()), "t.xml", nullptr, XML_PARSE_NONET)) {
        if (doc_) {
            ctx_.reset(xmlXPathNewContext(doc_.get()));
            xmlXPathRegisterNs(ctx_.get(), BAD_CAST "b", BAD_CAST libvirt::tag_namespace);
        }
    }
    bool ok() const { return doc_ && ctx_; }
    std::string str(const std::string& expr) const {
        XPathObjectPtr o(xmlXPathEvalExpression(BAD_CAST("string(" + expr + ")").c_str(), ctx_.get()));
        return o && o->stringval ? reinterpret_cast<const char*>(o->stringval) : "";
    }
    double count(const std::string& expr) const {
        XPathObjectPtr o(xmlXPathEvalExpression(BAD_CAST("count(" + expr + ")").c_str(), ctx_.get()));
        return o ? o->floatval : -1;
    }

private:
    XmlDocPtr doc_;
    XPathContextPtr ctx_;
};

inline std::string test_template(const std::string& console_log, bool kernel = true) {
    return std::string("<domain type='test'>\n"
                       "  <name>template</name>\n"
                       "  <uuid>6b0a3a53-2cf9-4c55-9f3b-59c1c4a1d2e0</uuid>\n"
                       "  <memory unit='MiB'>128</memory>\n"
                       "  <currentMemory unit='MiB'>128</currentMemory>\n"
                       "  <vcpu current='1'>2</vcpu>\n"
                       "  <os>\n"
                       "    <type>hvm</type>\n") +
           (kernel ? "    <kernel>/boot/vmlinuz</kernel>\n    <cmdline>console=ttyS0</cmdline>\n" : "") +
           "  </os>\n"
           "  <devices>\n"
           "    <disk type='file' device='cdrom'><source file='/tmp/cd.iso'/><target dev='hdc'/></disk>\n"
           "    <disk type='block' device='disk'><source dev='/dev/sdz'/><target dev='vda' bus='virtio'/></disk>\n"
           "    <serial type='file'><source path='" +
           console_log +
           "'/><target port='0'/></serial>\n"
           "  </devices>\n"
           "</domain>\n";
}

inline libvirt::DomainSettings settings(const std::string& overlay = "/srv/o/m/vm1." + start_a + ".qcow2") {
    return {"buildyard-m-vm1", Tag{"m", "vm1", start_a}, "10.0.2.2:9989", token, overlay, 0, 0, ""};
}

inline std::string oem(const std::string& key, const std::string& value) {
    return "io.systemd.credential:buildyard." + key + "=" + value;
}

}  // namespace
