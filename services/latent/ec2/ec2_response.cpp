#include "latent/ec2/ec2_response.hpp"

#include <climits>
#include <memory>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/raii.hpp"

namespace by::latent::ec2 {

namespace {

using XmlDocPtr = std::unique_ptr<xmlDoc, FreeWith<xmlFreeDoc>>;

// Larger answers are not EC2's for the calls the backend makes.
constexpr std::size_t max_body = 16 * 1024 * 1024;
constexpr std::size_t max_field = 4096;

// EC2 answers carry a namespace (http://ec2.amazonaws.com/doc/VERSION/),
// its errors none: elements are matched by local name.
bool is(const xmlNode* n, const char* name) {
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

const xmlNode* child(const xmlNode* parent, const char* name) {
    for (const xmlNode* c = parent ? parent->children : nullptr; c; c = c->next) {
        if (is(c, name)) {
            return c;
        }
    }
    return nullptr;
}

std::vector<const xmlNode*> children(const xmlNode* parent, const char* name) {
    std::vector<const xmlNode*> out;
    for (const xmlNode* c = parent ? parent->children : nullptr; c; c = c->next) {
        if (is(c, name)) {
            out.push_back(c);
        }
    }
    return out;
}

// The text directly inside `n` (EC2 puts no markup in its values).
std::string text(const xmlNode* n) {
    std::string out;
    for (const xmlNode* c = n ? n->children : nullptr; c && out.size() < max_field; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            out += reinterpret_cast<const char*>(c->content);
        }
    }
    return out.substr(0, max_field);
}

std::string text_at(const xmlNode* n, std::initializer_list<const char*> path) {
    for (const char* p : path) {
        n = child(n, p);
    }
    return n ? text(n) : std::string();
}

Instance read_instance(const xmlNode* item) {
    Instance i;
    i.id = text_at(item, {"instanceId"});
    i.state = text_at(item, {"instanceState", "name"});
    if (i.state.empty()) {
        i.state = text_at(item, {"currentState", "name"});  // TerminateInstances
    }
    i.lifecycle = text_at(item, {"instanceLifecycle"});
    i.state_reason = text_at(item, {"stateReason", "message"});
    for (const xmlNode* tag : children(child(item, "tagSet"), "item")) {
        i.tags[text_at(tag, {"key"})] = text_at(tag, {"value"});
    }
    return i;
}

void read_instances_set(const xmlNode* set, Response& r) {
    for (const xmlNode* item : children(set, "item")) {
        r.instances.push_back(read_instance(item));
    }
}

}  // namespace

bool ending(const std::string& state) {
    return state == "shutting-down" || state == "terminated" || state == "stopping" || state == "stopped";
}

std::string state_text(const Instance& i) {
    return "instance " + i.id + " is " + i.state + (i.state_reason.empty() ? "" : " (" + i.state_reason + ")");
}

Response parse_response(std::string_view body) {
    Response r;
    if (body.empty()) {
        r.parse_error = "an empty answer";
        return r;
    }
    if (body.size() > max_body) {
        r.parse_error = "an answer of more than 16 MiB";
        return r;
    }
    // No network, no entities, no DTD: the body is data from the wire.
    XmlDocPtr doc(xmlReadMemory(body.data(), static_cast<int>(body.size()), "ec2.xml", nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA));
    const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
    if (!root) {
        r.parse_error = "an answer that is not XML";
        return r;
    }
    if (is(root, "Response")) {
        // <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
        for (const xmlNode* e : children(child(root, "Errors"), "Error")) {
            r.errors.push_back({text_at(e, {"Code"}), text_at(e, {"Message"})});
        }
        r.request_id = text_at(root, {"RequestID"});
        if (r.errors.empty()) {
            r.parse_error = "an error answer without an error";
            return r;
        }
        r.parsed = true;
        return r;
    }
    const std::string name = reinterpret_cast<const char*>(root->name);
    if (!name.ends_with("Response")) {
        r.parse_error = "an answer of an unknown kind <" + name.substr(0, 64) + ">";
        return r;
    }
    r.request_id = text_at(root, {"requestId"});
    read_instances_set(child(root, "instancesSet"), r);
    for (const xmlNode* reservation : children(child(root, "reservationSet"), "item")) {
        read_instances_set(child(reservation, "instancesSet"), r);
    }
    r.next_token = text_at(root, {"nextToken"});
    if (const xmlNode* image = child(child(root, "imagesSet"), "item")) {
        r.root_device_name = text_at(image, {"rootDeviceName"});
    }
    r.parsed = true;
    return r;
}

}  // namespace by::latent::ec2
