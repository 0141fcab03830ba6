#include "latent/ec2/ec2_backend.hpp"

#include <random>
#include <set>

#include "common/log.hpp"

namespace by::latent {

namespace {

using ec2::Market;
using ec2::Next;

Outcome<config::Ec2Options> options_of(const config::Worker* worker) {
    if (!worker) {
        return failed<config::Ec2Options>("no configuration: the worker is no longer an ec2 worker");
    }
    std::string error;
    auto o = config::ec2_options(worker->backend_options, error);
    if (!o) {
        return failed<config::Ec2Options>("worker " + worker->name + ": " + error);
    }
    return succeeded(std::move(*o));
}

std::string tag_of(const ec2::Instance& i, const char* key) {
    auto it = i.tags.find(key);
    return it == i.tags.end() ? "" : it->second;
}

bool tagged(const ec2::Instance& i, const Tag& tag) {
    return tag_of(i, ec2::tag_owner) == tag.master && tag_of(i, ec2::tag_worker) == tag.worker &&
           tag_of(i, ec2::tag_start) == tag.start;
}

}  // namespace

Ec2Backend::Ec2Backend(Options options) : options_(std::move(options)) {
    if (!options_.jitter) {
        options_.jitter = [] {
            thread_local std::mt19937 rng{std::random_device{}()};
            return std::uniform_real_distribution<double>(0.5, 1.0)(rng);
        };
    }
}

Outcome<std::string> Ec2Backend::create(const StartSpec& spec, const Cancelled& cancelled) {
    auto options = options_of(spec.worker);
    if (!options.ok()) {
        return failed<std::string>(options.error);
    }
    const config::Ec2Options& o = options.value;
    const Place place = place_of(o);
    std::string root_device;
    if (o.volume_size_gib) {
        // The root volume is named by the AMI's own device name.
        auto image = call(place, "DescribeImages", ec2::describe_image(o.ami), cancelled);
        if (!image.ok()) {
            return failed<std::string>(image.error);
        }
        if (image.value.root_device_name.empty()) {
            return failed<std::string>("AMI " + o.ami + " is not visible to these credentials, or has no root device");
        }
        root_device = image.value.root_device_name;
    }
    Market market = o.spot == config::Ec2Spot::no ? Market::on_demand : Market::spot;
    std::string code;
    auto id = launch(spec, o, market, root_device, cancelled, code);
    std::string note = ec2::to_string(market);
    if (!id.ok() && market == Market::spot && o.spot == config::Ec2Spot::fallback &&
        ec2::classify(400, code) == Next::spot_refused) {
        log::write(log::Level::notice,
                   fmt::format("worker {}: spot launch refused ({}); launching on-demand instead (ec2.spot = "
                               "fallback)",
                               spec.tag.worker, id.error),
                   {{"BUILDYARD_WORKER", spec.tag.worker}, {"BUILDYARD_START", spec.tag.start}});
        market = Market::on_demand;
        note = "on-demand, spot refused: " + code;
        code.clear();
        id = launch(spec, o, market, root_device, cancelled, code);
    }
    if (!id.ok()) {
        return failed<std::string>(id.error);
    }
    {
        std::lock_guard lock(mutex_);
        instance_of_start_[spec.tag.start] = id.value;
        found_on_[id.value] = place;
    }
    auto running = wait_running(place, id.value, cancelled);
    if (!running.ok()) {
        // latentd destroys what a failed creation made; the tags find it.
        return failed<std::string>(running.error);
    }
    return succeeded(id.value + " (" + note + ")");
}

Outcome<bool> Ec2Backend::destroy(const Tag& tag, const config::Worker* worker, uint64_t, const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<bool>(options.error);
    }
    const Place place = place_of(options.value);
    std::set<std::string> ids;
    {
        std::lock_guard lock(mutex_);
        if (auto it = instance_of_start_.find(tag.start); it != instance_of_start_.end()) {
            ids.insert(it->second);
        }
    }
    auto found = describe(place, ec2::describe_tagged(tag), cancelled);
    if (!found.ok()) {
        return failed<bool>(found.error);
    }
    for (const auto& i : found.value) {
        if (tagged(i, tag)) {
            ids.insert(i.id);
        }
    }
    bool any = false;
    for (const auto& id : ids) {
        auto t = terminate(place, id, cancelled);
        if (!t.ok()) {
            return t;
        }
        any = any || t.value;
    }
    std::lock_guard lock(mutex_);
    instance_of_start_.erase(tag.start);
    for (const auto& id : ids) {
        found_on_.erase(id);
    }
    return succeeded(any);
}

Outcome<std::vector<Found>> Ec2Backend::list(const std::string& master,
                                             const std::vector<const config::Worker*>& workers,
                                             const Cancelled& cancelled) {
    std::set<Place> places;
    for (const auto* w : workers) {
        if (w && w->backend == "ec2") {
            if (auto o = options_of(w); o.ok()) {
                places.insert(place_of(o.value));
            }
        }
    }
    Outcome<std::vector<Found>> out;
    for (const auto& place : places) {
        auto found = describe(place, ec2::describe_tagged(Tag{master, "", ""}), cancelled);
        if (!found.ok()) {
            out.error += (out.error.empty() ? "" : "; ") + found.error;
            continue;
        }
        std::lock_guard lock(mutex_);
        for (const auto& i : found.value) {
            Found f;
            f.tag = {tag_of(i, ec2::tag_owner), tag_of(i, ec2::tag_worker), tag_of(i, ec2::tag_start)};
            // The filter is EC2's; the check is ours.
            // One already shutting down is on its way out: not a leak to count again.
            if (f.tag.master != master || f.tag.worker.empty() || f.tag.start.empty() || i.state == "terminated" ||
                i.state == "shutting-down") {
                continue;
            }
            f.kind = "instance";
            f.id = i.id;
            f.running = i.state == "running" || i.state == "pending";
            found_on_[i.id] = place;
            out.value.push_back(std::move(f));
        }
    }
    return out;
}

Outcome<bool> Ec2Backend::remove(const Found& found, const config::Worker* worker, const Cancelled& cancelled) {
    std::optional<Place> place;
    {
        std::lock_guard lock(mutex_);
        if (auto it = found_on_.find(found.id); it != found_on_.end()) {
            place = it->second;
        }
    }
    if (!place) {
        auto options = options_of(worker);
        if (!options.ok()) {
            return failed<bool>(options.error);
        }
        place = place_of(options.value);
    }
    auto d = describe_one(*place, found.id, cancelled);
    if (!d.ok()) {
        return failed<bool>(d.error);
    }
    if (!d.value || !tagged(*d.value, found.tag) || d.value->state == "terminated") {
        return succeeded(false);
    }
    auto t = terminate(*place, found.id, cancelled);
    if (t.ok()) {
        std::lock_guard lock(mutex_);
        found_on_.erase(found.id);
    }
    return t;
}

Outcome<HealthReport> Ec2Backend::check(const Tag& tag, const config::Worker* worker, const Cancelled& cancelled) {
    auto options = options_of(worker);
    if (!options.ok()) {
        return failed<HealthReport>(options.error);
    }
    const Place place = place_of(options.value);
    std::string id;
    {
        std::lock_guard lock(mutex_);
        if (auto it = instance_of_start_.find(tag.start); it != instance_of_start_.end()) {
            id = it->second;
        }
    }
    std::vector<ec2::Instance> instances;
    if (!id.empty()) {
        auto d = describe_one(place, id, cancelled);
        if (!d.ok()) {
            return failed<HealthReport>(d.error);
        }
        if (d.value) {
            instances.push_back(std::move(*d.value));
        }
    } else {
        // After a restart of latentd: the tags, terminated ones included.
        auto d = describe(place, ec2::describe_tagged(tag, false), cancelled);
        if (!d.ok()) {
            return failed<HealthReport>(d.error);
        }
        instances = std::move(d.value);
    }
    HealthReport report;
    const ec2::Instance* last = nullptr;
    for (const auto& i : instances) {
        if (!tagged(i, tag)) {
            continue;
        }
        if (!ec2::ending(i.state)) {
            return succeeded(report);  // pending or running
        }
        last = &i;
    }
    report.health = Health::gone;
    report.reason = last ? ec2::state_text(*last) : "no instance of start " + tag.start + " on " + place.endpoint;
    return succeeded(report);
}

}  // namespace by::latent
