#include "latent/libvirt/libvirt_domain_xml.hpp"

#include <algorithm>

#include <libxml/parser.h>

#include "latent/libvirt/libvirt_handles.hpp"

namespace by::latent::libvirt {

namespace {

using ParserContextPtr = std::unique_ptr<xmlParserCtxt, FreeWith<xmlFreeParserCtxt>>;

const xmlChar* x(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

bool is_element(const xmlNode* n, const char* name) {
    // Only elements without a namespace: libvirt's own. A template may hold
    // <qemu:commandline> and the like, which we leave alone.
    return n && n->type == XML_ELEMENT_NODE && n->ns == nullptr && xmlStrcmp(n->name, x(name)) == 0;
}

std::vector<xmlNode*> children(xmlNode* parent, const char* name) {
    std::vector<xmlNode*> out;
    for (xmlNode* c = parent ? parent->children : nullptr; c; c = c->next) {
        if (is_element(c, name)) {
            out.push_back(c);
        }
    }
    return out;
}

xmlNode* child(xmlNode* parent, const char* name) {
    auto all = children(parent, name);
    return all.empty() ? nullptr : all.front();
}

xmlNode* ensure_child(xmlNode* parent, const char* name) {
    if (xmlNode* c = child(parent, name)) {
        return c;
    }
    return xmlNewChild(parent, nullptr, x(name), nullptr);
}

void remove_node(xmlNode* n) {
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

void remove_children(xmlNode* parent, const char* name) {
    for (xmlNode* c : children(parent, name)) {
        remove_node(c);
    }
}

std::string text_of(const xmlNode* n) {
    XmlStringPtr s(xmlNodeGetContent(n));
    return s ? reinterpret_cast<const char*>(s.get()) : "";
}

// Replaces the content with plain text; xmlNewText stores it unescaped and
// the serializer escapes it.
void set_text(xmlNode* n, const std::string& text) {
    while (n->children) {
        remove_node(n->children);
    }
    xmlAddChild(n, xmlNewText(x(text.c_str())));
}

std::string attribute(const xmlNode* n, const char* name) {
    XmlStringPtr s(xmlGetNoNsProp(n, x(name)));
    return s ? reinterpret_cast<const char*>(s.get()) : "";
}

void set_attribute(xmlNode* n, const char* name, const std::string& value) {
    xmlSetProp(n, x(name), x(value.c_str()));
}

void remove_attribute(xmlNode* n, const char* name) {
    if (xmlAttr* a = xmlHasProp(n, x(name))) {
        xmlRemoveProp(a);
    }
}

Outcome<XmlDocPtr> parse(const std::string& text, const char* what) {
    ParserContextPtr ctxt(xmlNewParserCtxt());
    if (!ctxt) {
        return {nullptr, "out of memory"};
    }
    // No network and no entity expansion: a template is data, not a program.
    XmlDocPtr doc(xmlCtxtReadMemory(ctxt.get(), text.data(), static_cast<int>(text.size()), what, nullptr,
                                    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
                                        XML_PARSE_NOWARNING));
    if (!doc) {
        const xmlError* e = xmlCtxtGetLastError(ctxt.get());
        std::string message = e && e->message ? e->message : "malformed XML";
        while (!message.empty() && message.back() == '\n') {
            message.pop_back();
        }
        return {nullptr, "invalid XML" + (e ? " at line " + std::to_string(e->line) : std::string()) + ": " +
                             message};
    }
    return {std::move(doc), ""};
}

void set_metadata(xmlNode* domain, const Tag& tag) {
    xmlNode* metadata = ensure_child(domain, "metadata");
    // A template copied from a live domain may carry an old tag.
    for (xmlNode* c = metadata->children; c;) {
        xmlNode* next = c->next;
        if (c->type == XML_ELEMENT_NODE && c->ns && xmlStrcmp(c->ns->href, x(tag_namespace)) == 0) {
            remove_node(c);
        }
        c = next;
    }
    xmlNode* instance = xmlNewChild(metadata, nullptr, x("instance"), nullptr);
    xmlSetNs(instance, xmlNewNs(instance, x(tag_namespace), x(tag_prefix)));
    set_attribute(instance, "master", tag.master);
    set_attribute(instance, "worker", tag.worker);
    set_attribute(instance, "start", tag.start);
}

void set_memory(xmlNode* domain, unsigned long long mib) {
    const std::string value = std::to_string(mib);
    // A <currentMemory> above <memory> is an error, so both change.
    for (xmlNode* n : {ensure_child(domain, "memory"), child(domain, "currentMemory")}) {
        if (n) {
            set_attribute(n, "unit", "MiB");
            set_text(n, value);
        }
    }
}

void set_cpus(xmlNode* domain, unsigned cpus) {
    xmlNode* vcpu = ensure_child(domain, "vcpu");
    remove_attribute(vcpu, "current");
    set_text(vcpu, std::to_string(cpus));
    // Per-vCPU settings and a fixed topology would contradict the new count.
    remove_children(domain, "vcpus");
    remove_children(child(domain, "cpu"), "topology");
}

void set_overlay_disk(xmlNode* domain, const std::string& overlay) {
    xmlNode* devices = ensure_child(domain, "devices");
    xmlNode* disk = nullptr;
    for (xmlNode* d : children(devices, "disk")) {
        const std::string device = attribute(d, "device");
        if (device.empty() || device == "disk") {
            disk = d;
            break;
        }
    }
    if (!disk) {
        disk = xmlNewChild(devices, nullptr, x("disk"), nullptr);
        set_attribute(disk, "device", "disk");
    }
    set_attribute(disk, "type", "file");
    xmlNode* driver = ensure_child(disk, "driver");
    set_attribute(driver, "name", "qemu");
    set_attribute(driver, "type", "qcow2");
    // The overlay names its backing file itself; a template's own chain or
    // pool volume would point elsewhere.
    remove_children(disk, "source");
    remove_children(disk, "backingStore");
    xmlNode* source = xmlNewChild(disk, nullptr, x("source"), nullptr);
    set_attribute(source, "file", overlay);
    if (!child(disk, "target")) {
        xmlNode* target = xmlNewChild(disk, nullptr, x("target"), nullptr);
        set_attribute(target, "dev", "vda");
        set_attribute(target, "bus", "virtio");
    }
}

void set_credentials(xmlNode* domain, const DomainSettings& s) {
    xmlNode* sysinfo = nullptr;
    for (xmlNode* n : children(domain, "sysinfo")) {
        if (attribute(n, "type") == "smbios") {
            sysinfo = n;
            break;
        }
    }
    if (!sysinfo) {
        sysinfo = xmlNewChild(domain, nullptr, x("sysinfo"), nullptr);
        set_attribute(sysinfo, "type", "smbios");
    }
    xmlNode* strings = ensure_child(sysinfo, "oemStrings");
    for (xmlNode* entry : children(strings, "entry")) {
        const std::string t = text_of(entry);
        if (t.starts_with("io.systemd.credential:buildyard.") ||
            t.starts_with("io.systemd.credential.binary:buildyard.")) {
            remove_node(entry);
        }
    }
    const std::pair<const char*, const std::string*> creds[] = {
        {"buildyard.worker", &s.tag.worker},
        {"buildyard.master", &s.master_address},
        {"buildyard.token", &s.token},
        {"buildyard.master_fingerprint", &s.master_fingerprint}};
    for (const auto& [key, value] : creds) {
        if (value->empty()) {
            continue;  // only the fingerprint may be
        }
        xmlNode* entry = xmlNewChild(strings, nullptr, x("entry"), nullptr);
        set_text(entry, std::string("io.systemd.credential:") + key + "=" + *value);
    }

    xmlNode* os = ensure_child(domain, "os");
    set_attribute(ensure_child(os, "smbios"), "mode", "sysinfo");
    if (child(os, "kernel")) {
        xmlNode* cmdline = ensure_child(os, "cmdline");
        std::string line = text_of(cmdline);
        if (!line.empty() && line.back() != ' ') {
            line += ' ';
        }
        line += "buildyard.worker=" + s.tag.worker + " buildyard.master=" + s.master_address +
                " buildyard.token=" + s.token;
        if (!s.master_fingerprint.empty()) {
            line += " buildyard.master_fingerprint=" + s.master_fingerprint;
        }
        set_text(cmdline, line);
    }
}

}  // namespace

Outcome<std::string> edit_domain_template(const std::string& template_xml, const DomainSettings& settings) {
    auto parsed = parse(template_xml, "template.xml");
    if (!parsed.ok()) {
        return {"", parsed.error};
    }
    xmlDoc* doc = parsed.value.get();
    xmlNode* domain = xmlDocGetRootElement(doc);
    if (!is_element(domain, "domain")) {
        return {"", std::string("not a domain template: the root element is <") +
                        (domain ? reinterpret_cast<const char*>(domain->name) : "") + ">, not <domain>"};
    }
    set_text(ensure_child(domain, "name"), settings.name);
    // libvirt gives each domain a fresh UUID; a template's fixed one would
    // make two workers' domains collide.
    remove_children(domain, "uuid");
    set_metadata(domain, settings.tag);
    if (settings.memory_mib) {
        set_memory(domain, settings.memory_mib);
    }
    if (settings.cpus) {
        set_cpus(domain, settings.cpus);
    }
    if (!settings.overlay.empty()) {
        set_overlay_disk(domain, settings.overlay);
    }
    set_credentials(domain, settings);

    xmlChar* mem = nullptr;
    int size = 0;
    xmlDocDumpFormatMemory(doc, &mem, &size, 1);
    XmlStringPtr out(mem);
    if (!out) {
        return {"", "out of memory"};
    }
    return {std::string(reinterpret_cast<const char*>(out.get()), static_cast<size_t>(size)), ""};
}

std::optional<Tag> parse_tag_element(const std::string& element_xml) {
    auto parsed = parse(element_xml, "metadata.xml");
    if (!parsed.ok()) {
        return std::nullopt;
    }
    const xmlNode* root = xmlDocGetRootElement(parsed.value.get());
    if (!root || xmlStrcmp(root->name, x("instance")) != 0) {
        return std::nullopt;
    }
    Tag tag{attribute(root, "master"), attribute(root, "worker"), attribute(root, "start")};
    if (tag.master.empty() || tag.worker.empty() || tag.start.empty()) {
        return std::nullopt;
    }
    return tag;
}

std::vector<std::string> console_log_files(const std::string& domain_xml) {
    std::vector<std::string> out;
    auto parsed = parse(domain_xml, "domain.xml");
    if (!parsed.ok()) {
        return out;
    }
    xmlNode* devices = child(xmlDocGetRootElement(parsed.value.get()), "devices");
    auto add = [&](const std::string& path) {
        if (!path.empty() && std::find(out.begin(), out.end(), path) == out.end()) {
            out.push_back(path);
        }
    };
    for (xmlNode* c = devices ? devices->children : nullptr; c; c = c->next) {
        if (!is_element(c, "serial") && !is_element(c, "console")) {
            continue;
        }
        if (xmlNode* log = child(c, "log")) {
            add(attribute(log, "file"));
        }
        if (attribute(c, "type") == "file") {
            if (xmlNode* source = child(c, "source")) {
                add(attribute(source, "path"));
            }
        }
    }
    return out;
}

}  // namespace by::latent::libvirt
