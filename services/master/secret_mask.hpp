// Masks secrets in a build's log output before it is stored: each
// occurrence of a secret's value becomes "***", also when the value arrives
// split across Output chunks. Plain data, no I/O, unit-tested.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace by::master {

// The prefix that marks a property of SubmitBuild as secret: "secret.KEY".
inline constexpr std::string_view secret_prefix = "secret.";
bool is_secret_property(std::string_view key);
// The properties anyone may see: `all` without the secret ones.
std::map<std::string, std::string> public_properties(const std::map<std::string, std::string>& all);

class SecretMask {
public:
    SecretMask() = default;
    explicit SecretMask(const std::vector<std::string>& secrets);

    // Output that is safe to store now, masked. What might be the start of a
    // secret is held back (at most the longest secret's length - 1 bytes)
    // until the next chunk or finish().
    std::string feed(std::string_view chunk);
    // The held-back tail: at the end of the build's output.
    std::string finish();
    // Bytes held back now.
    std::size_t held() const { return pending_.size(); }

private:
    std::string scan(std::string_view chunk, bool last);

    std::vector<std::string> secrets_;  // longest first, none empty
    std::string pending_;
};

}  // namespace by::master
