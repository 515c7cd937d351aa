// Any bytes as an aliases file: an error line or entries, never a crash; the entries
// rendered back (render_aliases) parse to the same names and targets. The same bytes
// as one right-hand side from each source: targets render and re-parse equal, and
// from outside nothing but addresses ever comes back.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "delivery/aliases_file.hpp"
#include "delivery/target_syntax.hpp"

namespace mail = mailroom::mail;

namespace {

bool same(const mail::ParsedTarget& a, const mail::ParsedTarget& b) {
    return a.kind == b.kind && a.value == b.value && a.status_code == b.status_code;
}

void check_targets(std::string_view text, mail::TargetSource source) {
    auto parsed = mail::parse_targets(text, source);
    if (!parsed.ok()) {
        if (parsed.error->what.empty() || !parsed.targets.empty()) std::abort();
        return;
    }
    for (const auto& t : parsed.targets)
        if (source == mail::TargetSource::outside && t.kind != mail::TargetKind::address) std::abort();
    auto again = mail::parse_targets(mail::render_targets(parsed.targets), source);
    if (!again.ok() || again.targets.size() != parsed.targets.size()) std::abort();
    for (size_t i = 0; i < parsed.targets.size(); ++i)
        if (!same(parsed.targets[i], again.targets[i])) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    for (auto source : {mail::TargetSource::aliases, mail::TargetSource::forward, mail::TargetSource::outside})
        check_targets(text, source);

    auto file = mail::parse_aliases(text, "fuzz");
    if (!file) {
        if (file.error().message().rfind("fuzz", 0) != 0) std::abort();
        return 0;
    }
    // A rendered entry is one line however many continuation lines it had.
    mail::AliasesOptions roomy;
    roomy.max_line_bytes = roomy.max_entry_bytes * 4;
    auto again = mail::parse_aliases(mail::render_aliases(file->entries), "rendered", roomy);
    if (!again || again->entries.size() != file->entries.size() || !again->warnings.empty()) std::abort();
    for (size_t i = 0; i < file->entries.size(); ++i) {
        const auto& a = file->entries[i];
        const auto& b = again->entries[i];
        if (a.name != b.name || a.targets.size() != b.targets.size()) std::abort();
        for (size_t k = 0; k < a.targets.size(); ++k)
            if (!same(a.targets[k], b.targets[k])) std::abort();
    }
    return 0;
}
