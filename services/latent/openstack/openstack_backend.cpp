#include "latent/openstack/openstack_backend.hpp"

#include <set>

#include "common/log.hpp"
#include "latent/http_call.hpp"

namespace by::latent {

using openstack::Server;
using openstack::Session;

namespace {

Outcome<config::OpenStackOptions> options_of(const config::Worker* worker) {
    if (!worker) {
        return failed<config::OpenStackOptions>("no configuration: the worker is no longer an openstack worker");
    }
    std::string error;
    auto o = config::openstack_options(worker->backend_options, error);
    if (!o) {
        return failed<config::OpenStackOptions>("worker " + worker->name + ": " + error);
    }
    return succeeded(std::move(*o));
}

}  // namespace

Outcome<std::string> OpenStackBackend::create(const StartSpec& spec, const Cancelled& cancelled) {
    auto options = options_of(spec.worker);
    if (!options.ok()) {
        return failed<std::string>(options.error);
    }
    const config::OpenStackOptions& o = options.value;
    auto session = session_of(o);
    if (!session.ok()) {
        return failed<std::string>(session.error);
    }
    Session& s = *session.value;
    auto resolved = resolve(s, o, cancelled);
    if (!resolved.ok()) {
        return failed<std::string>(resolved.error);
    }
    const auto body = openstack::create_request(spec, o, resolved.value, base64(user_data(spec)));
    // No idempotency token in Nova: a POST retried after a lost answer may
    // make a second server. Both carry the start's metadata, so destroy()
    // finds both.
    auto r = s.call("compute", "POST", "/servers", body.dump(), cancelled);
    if (!r.ok()) {
        return failed<std::string>("creating server " + instance_name(spec.tag) + ": " + r.error);
    }
    const auto j = nlohmann::json::parse(r.value.body, nullptr, false);
    std::string id;
    if (j.is_object() && j.contains("server") && j["server"].is_object() && j["server"].contains("id") &&
        j["server"]["id"].is_string()) {
        id = j["server"]["id"].get<std::string>();
    }
    if (id.empty()) {
        return failed<std::string>("Nova's answer to POST /servers names no server");
    }
    {
        std::lock_guard lock(mutex_);
        server_of_start_[spec.tag.start] = id;
        found_on_[id] = session.value;
    }
    auto active = wait_active(s, id, cancelled);
    if (!active.ok()) {
        // latentd destroys what a failed creation made; the metadata find it.
        return failed<std::string>(active.error);
    }
    return succeeded(id);
}

Outcome<bool> OpenStackBackend::destroy(const Tag& tag, const config::Worker* worker, uint64_t,
                                        const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<bool>(options.error);
    }
    auto session = session_of(options.value);
    if (!session.ok()) {
        return failed<bool>(session.error);
    }
    Session& s = *session.value;
    std::set<std::string> ids;
    {
        std::lock_guard lock(mutex_);
        if (auto it = server_of_start_.find(tag.start); it != server_of_start_.end()) {
            ids.insert(it->second);
        }
    }
    auto all = servers(s, cancelled);
    if (!all.ok()) {
        return failed<bool>(all.error);
    }
    for (const auto& server : all.value) {
        if (openstack::tagged(server, tag)) {
            ids.insert(server.id);
        }
    }
    bool any = false;
    for (const auto& id : ids) {
        auto d = delete_server(s, id, cancelled);
        if (!d.ok()) {
            return d;
        }
        any = any || d.value;
    }
    std::lock_guard lock(mutex_);
    server_of_start_.erase(tag.start);
    for (const auto& id : ids) {
        found_on_.erase(id);
    }
    return succeeded(any);
}

Outcome<std::vector<Found>> OpenStackBackend::list(const std::string& master,
                                                   const std::vector<const config::Worker*>& workers,
                                                   const Cancelled& cancelled) {
    std::map<std::string, std::shared_ptr<Session>> sessions;  // one listing per login
    Outcome<std::vector<Found>> out;
    for (const auto* w : workers) {
        if (!w || w->backend != "openstack") {
            continue;
        }
        auto o = options_of(w);
        auto session = o.ok() ? session_of(o.value) : failed<std::shared_ptr<Session>>(o.error);
        if (!session.ok()) {
            out.error += (out.error.empty() ? "" : "; ") + session.error;
            continue;
        }
        sessions.emplace(session.value->cloud().session_key(), session.value);
    }
    std::set<std::string> seen;
    for (const auto& [key, session] : sessions) {
        auto all = servers(*session, cancelled);
        if (!all.ok()) {
            out.error += (out.error.empty() ? "" : "; ") + all.error;
            continue;
        }
        std::lock_guard lock(mutex_);
        for (const auto& server : all.value) {
            Found f;
            f.tag = openstack::tag_of(server);
            // One already being deleted is on its way out: not a leak to count again.
            if (f.tag.master != master || f.tag.worker.empty() || f.tag.start.empty() ||
                server.status == "DELETED" || server.task_state == "deleting" || !seen.insert(server.id).second) {
                continue;
            }
            f.kind = "server";
            f.id = server.id;
            f.running = server.status == "ACTIVE" || server.status == "BUILD";
            found_on_[server.id] = session;
            out.value.push_back(std::move(f));
        }
    }
    return out;
}

Outcome<bool> OpenStackBackend::remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) {
    std::shared_ptr<Session> session;
    {
        std::lock_guard lock(mutex_);
        if (auto it = found_on_.find(found.id); it != found_on_.end()) {
            session = it->second;
        }
    }
    if (!session) {
        auto options = options_of(worker);
        if (!options.ok()) {
            return failed<bool>(options.error);
        }
        auto s = session_of(options.value);
        if (!s.ok()) {
            return failed<bool>(s.error);
        }
        session = s.value;
    }
    auto got = get_server(*session, found.id, cancelled);
    if (!got.ok()) {
        return failed<bool>(got.error);
    }
    if (!got.value || !openstack::tagged(*got.value, found.tag)) {
        return succeeded(false);
    }
    auto d = delete_server(*session, found.id, cancelled);
    if (d.ok()) {
        std::lock_guard lock(mutex_);
        found_on_.erase(found.id);
    }
    return d;
}

Outcome<HealthReport> OpenStackBackend::check(const Tag& tag, const config::Worker* worker,
                                              const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<HealthReport>(options.error);
    }
    auto session = session_of(options.value);
    if (!session.ok()) {
        return failed<HealthReport>(session.error);
    }
    Session& s = *session.value;
    std::string id;
    {
        std::lock_guard lock(mutex_);
        if (auto it = server_of_start_.find(tag.start); it != server_of_start_.end()) {
            id = it->second;
        }
    }
    std::vector<Server> found;
    if (!id.empty()) {
        auto got = get_server(s, id, cancelled);
        if (!got.ok()) {
            return failed<HealthReport>(got.error);
        }
        if (got.value) {
            found.push_back(std::move(*got.value));
        }
    } else {
        // After a restart of latentd: the metadata.
        auto all = servers(s, cancelled);
        if (!all.ok()) {
            return failed<HealthReport>(all.error);
        }
        found = std::move(all.value);
    }
    HealthReport report;
    const Server* last = nullptr;
    for (const auto& server : found) {
        if (!openstack::tagged(server, tag)) {
            continue;
        }
        if (!openstack::ending(server)) {
            return succeeded(report);  // BUILD, ACTIVE, REBOOT, ...
        }
        last = &server;
    }
    report.health = Health::gone;
    report.reason = last ? openstack::status_text(*last)
                         : "no server of start " + tag.start + " in cloud " + s.cloud().name;
    return succeeded(report);
}

}  // namespace by::latent
