// Any bytes as a dotlock's content (another program's, or a torn one): parsed or
// refused, and a parsed record formats back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/dot_lock.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    auto record = mailroom::core::parse_lock_record(text);
    // The device and inode come only after a size.
    if (record && record->file && !record->size) std::abort();
    if (record && mailroom::core::format_lock_record(*record) != text) {
        // Leading zeros or '+' would parse to the same number but format differently.
        auto again = mailroom::core::parse_lock_record(mailroom::core::format_lock_record(*record));
        if (!again || again->pid != record->pid || again->size != record->size || again->file != record->file)
            std::abort();
    }
    return 0;
}
