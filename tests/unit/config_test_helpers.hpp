// Shared by the config_*_test.cpp files: parse a text that must be good or bad.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <string_view>

#include "core/config.hpp"

namespace config_test {

inline mailroom::core::Config parsed(std::string_view text) {
    auto c = mailroom::core::Config::parse(text, "t.conf");
    INFO(text);
    if (!c) FAIL(c.error().message());
    return std::move(c).value();
}

// The error line for a bad text, or "(no error)".
inline std::string error_of(std::string_view text) {
    auto c = mailroom::core::Config::parse(text, "t.conf");
    if (c) return "(no error)";
    return c.error().message();
}

}  // namespace config_test
