// The table of every mailroom.conf key (SPEC section 2): name, value type, default
// text exactly as SPEC gives it, and a one-line doc. It is the single source of
// truth: Config validates against it, etc/mailroom.conf is checked against it by a
// unit test, and `mta -N` prints it in this order. Nothing here reads files or the
// environment; the value checks are pure functions of the text.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mailroom::core {

enum class KeyType {
    string,            // any text
    path,              // absolute file or folder path: a relative one would depend on the cwd
    optional_path,     // empty (the feature is off) or an absolute path
    host_name,         // DNS name: dot-separated labels of letters, digits, '-' and '_'
    list,              // items separated by commas and/or white space
    size,              // bytes: number with optional K, M or G (1024-based)
    number,            // plain decimal count
    time,              // seconds: number with optional s, m, h or d
    mailbox_format,    // mbox | maildir
    bare_newline,      // reject | normalize
    tls_level,         // none | may | encrypt
    lock_list,         // fcntl | dotlock, each at most once, at least one
    allow_list,        // alias | forward | include, may be empty
    listen_list,       // list of listen addresses, any non-empty items
    local_transport,   // local | lmtp:unix:PATH | lmtp:inet:HOST:PORT
    log,               // syslog | stderr | absolute path
};

// Where a key's default comes from. Only the two host keys depend on the system.
enum class DefaultKind {
    literal,      // default_value, expanded like any value
    host_name,    // the system host name (see Config)
    host_domain,  // myhostname minus its first label, or "localdomain"
};

struct ConfigKey {
    std::string_view name;
    KeyType type;
    std::string_view default_value;  // unexpanded; empty for computed defaults
    std::string_view doc;            // one line, as written in etc/mailroom.conf
    DefaultKind default_kind = DefaultKind::literal;
};

// Every key, in SPEC order.
std::span<const ConfigKey> config_keys();
// Index into config_keys(), or nullopt for a name that is not a key.
std::optional<size_t> config_key_index(std::string_view name);

// Checks an expanded value against its type. Returns nullopt when the value is good,
// else what a good one looks like, for the error line ("a time: number with s, m, h or d").
std::optional<std::string_view> check_value(KeyType type, std::string_view value);

// Splits a list value at commas and white space; empty items are dropped.
std::vector<std::string> split_list(std::string_view value);
// "50M" -> 52428800; nullopt on a bad suffix, no digits or overflow.
std::optional<uint64_t> parse_size(std::string_view value);
// "5m" -> 300s; nullopt on a bad suffix, no digits or overflow.
std::optional<std::chrono::seconds> parse_time(std::string_view value);
// "1000" -> 1000; digits only.
std::optional<uint64_t> parse_number(std::string_view value);

}  // namespace mailroom::core
