#include "latent/backend.hpp"

#include "latent/docker/docker_backend.hpp"
#include "latent/ec2/ec2_backend.hpp"
#include "latent/libvirt/libvirt_backend.hpp"
#include "latent/openstack/openstack_backend.hpp"

namespace by::latent {

std::string user_data(const StartSpec& spec) {
    std::string text = "buildyard.worker=" + spec.tag.worker + "\nbuildyard.master=" + spec.master_address +
                       "\nbuildyard.token=" + spec.token + "\n";
    if (!spec.master_fingerprint.empty()) {
        text += "buildyard.master_fingerprint=" + spec.master_fingerprint + "\n";
    }
    return text;
}

std::unique_ptr<Backend> make_backend(const std::string& name, const std::string& state_directory) {
    if (name == "libvirt") {
        LibvirtBackend::Options options;
        options.state_directory = state_directory;
        return std::make_unique<LibvirtBackend>(std::move(options));
    }
    if (name == "docker") {
        return std::make_unique<DockerBackend>();
    }
    if (name == "ec2") {
        return std::make_unique<Ec2Backend>();
    }
    if (name == "openstack") {
        return std::make_unique<OpenStackBackend>();
    }
    return nullptr;
}

}  // namespace by::latent
