// Config: the parsed, expanded and validated mailroom.conf (SPEC section 2). It is
// built once in main and passed down by reference; there is no global instance.
// Invariants: a Config holds a value for every key of config_keys(), each one
// already expanded and valid for its type, so the accessors cannot fail. Bad input
// (unknown key, bad value, expansion loop, binary garbage) is a Result error naming
// FILE:LINE and the key; asking for a key that is not in the table is a bug and aborts.
//
// Syntax, as Postfix's main.cf: `key = value`; a line whose first non-blank character
// is `#` is a comment; blank lines are ignored; a line starting with white space
// continues the previous logical line (joined with one space, even across comments);
// a key given twice takes the last value. `$key` and `${key}` expand to another key's
// value; `$name` that is not a key is kept as is (forward_path's `$home`, expanded at
// delivery time); `$$` is a literal `$`. A CR before LF is dropped; any other control
// character, a line longer than 64 KiB and a file larger than 4 MiB are errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace mailroom::core {

// Which configuration file a program reads (Config::choose_source).
struct ConfigSource {
    std::string path;
    bool named = false;  // given by -C or MAILROOM_CONF: it must exist
};

class Config {
public:
    // Reads and parses path; "cannot open PATH: No such file or directory" and the like.
    static Result<Config> load(const std::string& path);
    // Parses text; name stands for the file in error lines ("NAME:LINE: ...").
    static Result<Config> parse(std::string_view text, const std::string& name);
    // Every key at its default (the host keys from the system).
    static Config defaults();
    // The installed file, MAILROOM_SYSCONFDIR "/mailroom.conf".
    static std::string installed_path();
    // The file to use: dash_c when not empty, else env_conf ($MAILROOM_CONF) when
    // not null nor empty, else installed_path(). When set_id (core/set_id.hpp), a
    // file the caller chose is refused, before anything opens it, so that the
    // answer never tells whether it exists: an input error "will not read FILE given
    // by -C (...)"; the program exits EX_NOPERM (77). Naming installed_path() itself
    // is no choice and is allowed, as Postfix allows MAIL_CONFIG to name the default.
    static Result<ConfigSource> choose_source(const std::string& dash_c, const char* env_conf, bool set_id);
    // The same for this process: $MAILROOM_CONF and core::running_set_id().
    static Result<ConfigSource> choose_source(const std::string& dash_c);
    // Loads the chosen file. A file named by -C or $MAILROOM_CONF must exist; the
    // installed one may be missing, and then every key keeps its default (a fresh
    // install works before it is configured). Errors exit EX_CONFIG (78).
    static Result<Config> load_for_program(const ConfigSource& source);

    // The expanded value.
    const std::string& str(std::string_view key) const;
    // The expanded value split at commas and white space (any key).
    std::vector<std::string> list(std::string_view key) const;
    // Bytes, for a size key (message_size_limit).
    uint64_t size(std::string_view key) const;
    // A count, for a number key (max_recipients).
    uint64_t number(std::string_view key) const;
    // For a time key (lock_timeout, queue_run_delay...).
    std::chrono::seconds duration(std::string_view key) const;
    // True when the file does not give the key, or gives exactly its default text.
    bool is_default(std::string_view key) const;
    // `key = value` lines in table order with the unexpanded values, as `mta -n`
    // (all = false: only keys that are not default) and `mta -N` (all = true) print.
    std::string dump(bool all) const;
    // The name given to load or parse.
    const std::string& name() const { return name_; }

private:
    struct Entry {
        std::string raw;    // as written (continuations joined), or the default text
        std::string value;  // raw after expansion
        unsigned line = 0;  // where the file gave it; 0 = default
    };
    class Resolver;

    size_t index_of(std::string_view key) const;
    std::string default_text(size_t index) const;

    std::string name_;
    std::vector<Entry> entries_;  // one per config_keys() entry, same order
};

}  // namespace mailroom::core
