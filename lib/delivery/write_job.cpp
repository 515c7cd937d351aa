#include "delivery/write_job.hpp"

#include <vector>

#include <fmt/format.h>

#include "delivery/maildir_writer.hpp"
#include "delivery/mbox_writer.hpp"
#include "delivery/packet_fields.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view request_version = "write1";
constexpr size_t request_fields = 14;

std::string lock_order(const std::vector<LockKind>& order) {
    std::string text;
    for (LockKind kind : order) text += kind == LockKind::fcntl ? 'f' : 'd';
    return text;
}

core::Error bad_request(std::string_view what) {
    return core::input_error(fmt::format("malformed delivery request: {}", what));
}

}  // namespace

Status run_write_job(const WriteJob& job, const Message& message) {
    if (job.format == MailboxFormat::maildir) return MaildirWriter().deliver(message, job.info);
    return MboxWriter().deliver(message, job.info);
}

std::string encode_write_request(const WriteRequest& request) {
    const DeliveryInfo& info = request.job.info;
    const std::string fields[request_fields] = {
        std::string(request_version),
        request.job.format == MailboxFormat::maildir ? "maildir" : "mbox",
        info.path,
        info.sender,
        info.recipient,
        std::to_string(info.uid),
        std::to_string(info.gid),
        info.hostname,
        std::to_string(static_cast<long long>(info.arrival)),
        lock_order(info.locks.order),
        std::to_string(info.locks.timeout.count()),
        std::to_string(info.locks.stale_dotlock_age.count()),
        std::to_string(request.offset),
        std::to_string(request.size),
    };
    std::string packet;
    for (const auto& field : fields) append_field(packet, field);
    return packet;
}

core::Result<WriteRequest> decode_write_request(std::string_view packet) {
    auto split = split_fields(packet);
    if (!split) return core::unexpected(bad_request("a field without its end"));
    const auto& fields = *split;
    if (fields.size() != request_fields) return core::unexpected(bad_request("wrong number of fields"));
    if (fields[0] != request_version) return core::unexpected(bad_request("unknown version"));

    WriteRequest request;
    DeliveryInfo& info = request.job.info;
    if (fields[1] == "maildir") {
        request.job.format = MailboxFormat::maildir;
    } else if (fields[1] != "mbox") {
        return core::unexpected(bad_request("unknown format"));
    }
    info.path = fields[2];
    if (info.path.empty() || info.path[0] != '/') return core::unexpected(bad_request("not an absolute path"));
    info.sender = fields[3];
    info.recipient = fields[4];
    long long arrival = 0, lock_timeout = 0, stale_age = 0;
    if (!parse_number(fields[5], info.uid) || !parse_number(fields[6], info.gid) ||
        !parse_number(fields[8], arrival) || !parse_number(fields[10], lock_timeout) ||
        !parse_number(fields[11], stale_age) || !parse_number(fields[12], request.offset) ||
        !parse_number(fields[13], request.size))
        return core::unexpected(bad_request("a number that is not one"));
    info.hostname = fields[7];
    info.arrival = static_cast<std::time_t>(arrival);
    info.locks.order.clear();
    for (char kind : fields[9]) {
        if (kind != 'f' && kind != 'd') return core::unexpected(bad_request("unknown lock kind"));
        info.locks.order.push_back(kind == 'f' ? LockKind::fcntl : LockKind::dotlock);
    }
    info.locks.timeout = std::chrono::milliseconds(lock_timeout);
    info.locks.stale_dotlock_age = std::chrono::seconds(stale_age);
    return request;
}

std::string writer_report_line(const Status& status) { return status.code() + " " + status.text() + "\n"; }

Status writer_death(const core::SubprocessResult& result, std::chrono::seconds timeout) {
    if (result.timed_out)
        return Status::temp("4.3.0", fmt::format("delivery process timed out after {} s", timeout.count()));
    if (result.signal != 0)
        return Status::temp("4.3.0", "delivery process killed by signal " + std::to_string(result.signal));
    return Status::temp("4.3.0", "delivery process exited " + std::to_string(result.exit_code) + " without a report");
}

}  // namespace mailroom::mail
