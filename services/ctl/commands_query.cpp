// status, workers, builds: the commands that only read.
#include <iostream>

#include "ctl/client.hpp"
#include "ctl/commands.hpp"
#include "ctl/format.hpp"

namespace by::ctl {

int run_status(const Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    if (auto rc = parse_invocation(inv, "status", options, nullptr, nullptr, vm)) {
        return *rc;
    }
    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    auto props = client->get_all(by::bus::master_path, by::bus::master_iface);
    if (!props) {
        return report(props.error());
    }
    auto workers = client->list_workers();
    if (!workers) {
        return report(workers.error());
    }

    // A master that cannot read its members (its database is down) still
    // has a status: the members are left out, with the reason.
    auto members = client->list_cluster_members();

    if (wants_json(inv, vm)) {
        auto doc = to_json(*props);
        doc["workers"] = workers->size();
        if (members) {
            auto& list = doc["cluster"] = nlohmann::json::array();
            for (const ClusterMember& c : *members) {
                list.push_back({{"name", c.name},
                                {"state", c.state},
                                {"fence", c.fence},
                                {"heartbeat_age", static_cast<double>(c.heartbeat_age) / 1e6},
                                {"started_at", c.started_at},
                                {"this_master", c.self},
                                {"host", c.host},
                                {"address", c.address},
                                {"pid", c.pid}});
            }
        } else {
            doc["cluster"] = nullptr;
            doc["cluster_error"] = members.error().message;
        }
        return print_json(doc);
    }
    MasterStatus s;
    s.version = prop_string(*props, "Version");
    s.name = prop_string(*props, "Name");
    s.tls_fingerprint = prop_string(*props, "TlsFingerprint");
    s.workers = workers->size();
    s.connected_workers = prop_uint(*props, "ConnectedWorkers");
    s.running_builds = prop_uint(*props, "RunningBuilds");
    s.pending_builds = prop_uint(*props, "PendingBuilds");
    std::cout << format_status(s);
    if (members) {
        std::cout << format_cluster(*members);
    } else {
        std::cout << "cluster members: unknown (" << members.error().message << ")\n";
    }
    return exit_code::success;
}

int run_workers(const Invocation& inv) {
    po::options_description options("Options");
    po::variables_map vm;
    if (auto rc = parse_invocation(inv, "workers", options, nullptr, nullptr, vm)) {
        return *rc;
    }
    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    auto workers = client->list_workers();
    if (!workers) {
        return report(workers.error());
    }

    bool json = wants_json(inv, vm);
    auto doc = nlohmann::json::array();
    Table table(worker_columns);
    for (const auto& w : *workers) {
        auto props = client->get_all(w.path, by::bus::worker_iface);
        if (!props) {
            return report(props.error());
        }
        props->try_emplace("Name", w.name);
        props->try_emplace("State", w.state);
        if (json) {
            auto j = to_json(*props);
            j["path"] = w.path;
            doc.push_back(std::move(j));
        } else {
            table.add_row(worker_row(*props));
        }
    }
    if (json) {
        return print_json(doc);
    }
    std::cout << table.render();
    return exit_code::success;
}

int run_builds(const Invocation& inv) {
    po::options_description options("Options");
    options.add_options()  //
        ("limit,n", po::value<std::string>()->default_value("20")->value_name("N"),
         "show the N newest builds; 0 shows all");
    po::variables_map vm;
    if (auto rc = parse_invocation(inv, "builds", options, nullptr, nullptr, vm)) {
        return *rc;
    }
    auto limit = parse_number(vm["limit"].as<std::string>(), "limit");
    if (!limit) {
        return usage_error(std::cerr, "builds", limit.error().message);
    }
    auto client = Client::connect();
    if (!client) {
        return report(client.error());
    }
    auto builds = client->list_builds(*limit);
    if (!builds) {
        return report(builds.error());
    }

    // Exit status and times are not in ListBuilds: one GetAll per build.
    std::vector<PropertyMap> details;
    for (const auto& b : *builds) {
        auto props = client->get_all(b.path, by::bus::build_iface);
        if (!props) {
            return report(props.error());
        }
        details.push_back(std::move(*props));
    }
    const uint64_t now = by::bus::now_realtime_usec();
    if (wants_json(inv, vm)) {
        auto doc = nlohmann::json::array();
        for (std::size_t i = 0; i < builds->size(); ++i) {
            const auto& b = (*builds)[i];
            doc.push_back({{"id", b.id},
                           {"builder", b.builder},
                           {"worker", b.worker},
                           {"state", b.state},
                           {"result", b.result},
                           {"exit_status", build_exit_json(details[i])},
                           {"duration", build_duration_json(details[i], now)},
                           {"path", b.path}});
        }
        return print_json(doc);
    }
    Table table(build_columns);
    for (std::size_t i = 0; i < builds->size(); ++i) {
        const auto& b = (*builds)[i];
        table.add_row({std::to_string(b.id), b.builder, b.worker, b.state, b.result, build_exit_cell(details[i]),
                       build_duration_cell(details[i], now)});
    }
    std::cout << table.render();
    return exit_code::success;
}

}  // namespace by::ctl
