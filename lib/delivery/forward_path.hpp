// forward_path: the configured list of .forward locations (SPEC 2), expanded for one
// recipient into the absolute paths ForwardFile::read tries in order (docs/forward.md).
//
// Variables: $home, $user, $extension, $recipient_delimiter, each also as ${name}.
// (The configuration already replaced ${recipient_delimiter} when it was loaded; it is
// understood here too so that a list given by other means expands the same.) A `$`
// not followed by a name is kept as it is, as core::Config keeps it.
// Invariants: an item that names the extension (or the delimiter) when the address has
// none is skipped: that is how the default tries .forward+ext only for user+ext. The
// extension comes from outside (the address), so an item that uses it is skipped when
// it holds '/', starts with '.', or holds a control byte: nothing it holds can climb
// out of the home or name another file than the administrator's pattern meant. An
// item that does not come out as an absolute path, or comes out with a `..`
// component, is skipped. Every skip says why, in one line without control bytes.
// Must never: throw, touch the file system, let the extension choose a folder.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/users.hpp"

namespace mailroom::mail {

struct ForwardPathSettings {
    std::vector<std::string> items = {"$home/.forward${recipient_delimiter}${extension}", "$home/.forward"};
    std::string recipient_delimiter = "+";

    // forward_path (already split into items) and recipient_delimiter.
    static ForwardPathSettings from_config(const core::Config& config);
};

// One item of forward_path that was not tried, and why.
struct SkippedForwardPath {
    enum class Why {
        no_extension,       // names $extension (or $recipient_delimiter) and there is none: normal
        unsafe_extension,   // the extension holds '/', a control byte, or starts with '.'
        unknown_variable,   // $name that is not one of the four
        not_absolute,       // does not come out as an absolute path ($home empty or relative...)
        parent_component,   // comes out with a ".." component
    };
    std::string item;    // as configured (escaped)
    Why why = Why::no_extension;
    std::string reason;  // one line, e.g. "extension \"../x\" holds '/'"

    // False only for no_extension: the one skip that is not worth a log line.
    bool worth_reporting() const { return why != Why::no_extension; }
};

struct ForwardPaths {
    std::vector<std::string> paths;           // absolute, in the configured order
    std::vector<SkippedForwardPath> skipped;  // in the configured order
};

// The paths to try for `user` whose address carried `extension` ("" for none: bob,
// or bob+ with nothing after the delimiter). With an empty recipient_delimiter the
// extension is ignored: extensions are off.
ForwardPaths expand_forward_path(const ForwardPathSettings& settings, const core::UserInfo& user,
                                 std::string_view extension);

// Why an extension may not be put into a path, or "" when it may.
std::string unsafe_extension_reason(std::string_view extension);

}  // namespace mailroom::mail
