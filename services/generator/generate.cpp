#include "generator/generate.hpp"

#include <system_error>

namespace by::generator {

std::vector<std::string> local_worker_units(const config::Config& config) {
    std::vector<std::string> units;
    for (const auto& [name, worker] : config.workers) {
        if (worker.type == config::WorkerType::local) {
            units.push_back("buildyard-worker@" + config::escape_unit_instance(name) + ".service");
        }
    }
    return units;
}

std::vector<std::string> write_wants(const std::filesystem::path& dir, const std::vector<std::string>& units,
                                     const std::filesystem::path& unit_template) {
    std::vector<std::string> errors;
    if (units.empty()) {
        return errors;
    }
    const auto wants = dir / "buildyard-workers.target.wants";
    std::error_code ec;
    std::filesystem::create_directories(wants, ec);
    if (ec) {
        errors.push_back("cannot create " + wants.string() + ": " + ec.message());
        return errors;
    }
    for (const auto& unit : units) {
        std::filesystem::create_symlink(unit_template, wants / unit, ec);
        if (ec) {
            errors.push_back("cannot create " + (wants / unit).string() + ": " + ec.message());
        }
    }
    return errors;
}

}  // namespace by::generator
