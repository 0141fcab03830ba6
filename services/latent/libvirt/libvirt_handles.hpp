// Owners for the libvirt and libxml2 handles of the libvirt backend. They sit
// here, not in common/raii.hpp, so that only latentd links libvirt.
#pragma once

#include <cstdlib>
#include <memory>

#include <libvirt/libvirt.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "common/raii.hpp"

namespace by::latent {

// Shared: a call in flight keeps its connection even if another thread
// replaces a dead one in the backend's map meanwhile.
using ConnectPtr = std::shared_ptr<virConnect>;
inline ConnectPtr own_connection(virConnectPtr c) {
    return c ? ConnectPtr(c, [](virConnectPtr p) { virConnectClose(p); }) : ConnectPtr();
}

using DomainPtr = std::unique_ptr<virDomain, FreeWith<virDomainFree>>;
using XmlDocPtr = std::unique_ptr<xmlDoc, FreeWith<xmlFreeDoc>>;
using XPathContextPtr = std::unique_ptr<xmlXPathContext, FreeWith<xmlXPathFreeContext>>;
using XPathObjectPtr = std::unique_ptr<xmlXPathObject, FreeWith<xmlXPathFreeObject>>;

// xmlFree is a function pointer variable, not a function, so it cannot be a
// template argument.
struct XmlFree {
    void operator()(xmlChar* p) const noexcept { xmlFree(p); }
};
using XmlStringPtr = std::unique_ptr<xmlChar, XmlFree>;

// Strings that libvirt returns (virDomainGetXMLDesc, virDomainGetMetadata).
struct CFree {
    void operator()(char* p) const noexcept { std::free(p); }
};
using CStringPtr = std::unique_ptr<char, CFree>;

}  // namespace by::latent
