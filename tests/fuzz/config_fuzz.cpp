// Any bytes as mailroom.conf: an error or a configuration, never a crash; a
// configuration printed with dump(true) parses back to the same configuration.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto config = mailroom::core::Config::parse(text, "fuzz.conf");
    if (!config) {
        if (config.error().message().empty()) std::abort();
        return 0;
    }
    auto again = mailroom::core::Config::parse(config->dump(true), "dump.conf");
    if (!again || again->dump(true) != config->dump(true)) std::abort();
    return 0;
}
