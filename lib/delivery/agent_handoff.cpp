#include "delivery/agent_handoff.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "core/descriptors.hpp"
#include "delivery/command_output.hpp"
#include "delivery/packet_fields.hpp"
#include "delivery/write_job.hpp"

namespace mailroom::mail {

namespace {

constexpr std::string_view request_version = "agent1";
constexpr std::string_view mailbox_version = "mailbox1";
constexpr size_t fixed_fields = 5;  // version, uid, gid, root rule, name; then the groups
// setgroups(2) takes at most NGROUPS_MAX (65536) groups.
constexpr size_t max_groups = 65536;
constexpr std::string_view ok_word = "ok ";
constexpr size_t max_answer = 4096;

core::Error bad_request(std::string_view what) {
    return core::input_error(fmt::format("malformed agent request: {}", what));
}

}  // namespace

std::string encode_agent_request(const AgentIdentity& as) {
    std::string packet;
    append_field(packet, request_version);
    append_field(packet, std::to_string(as.credentials.uid));
    append_field(packet, std::to_string(as.credentials.gid));
    append_field(packet, as.root == core::PrivilegeSwitch::RootTarget::allow ? "allow-root" : "refuse-root");
    append_field(packet, as.name);
    for (gid_t group : as.credentials.groups) append_field(packet, std::to_string(group));
    return packet;
}

bool is_agent_request(std::string_view packet) {
    return packet.size() > request_version.size() && packet.substr(0, request_version.size()) == request_version &&
           packet[request_version.size()] == '\0';
}

core::Result<AgentIdentity> decode_agent_request(std::string_view packet) {
    auto fields = split_fields(packet);
    if (!fields) return core::unexpected(bad_request("a field without its end"));
    if (fields->size() < fixed_fields || (*fields)[0] != request_version)
        return core::unexpected(bad_request("unknown version or too few fields"));
    if (fields->size() - fixed_fields > max_groups) return core::unexpected(bad_request("too many groups"));
    AgentIdentity as;
    if (!parse_number((*fields)[1], as.credentials.uid) || !parse_number((*fields)[2], as.credentials.gid))
        return core::unexpected(bad_request("an id that is not a number"));
    if ((*fields)[3] == "allow-root") as.root = core::PrivilegeSwitch::RootTarget::allow;
    else if ((*fields)[3] != "refuse-root") return core::unexpected(bad_request("unknown root rule"));
    as.name = (*fields)[4];
    for (size_t i = fixed_fields; i < fields->size(); ++i) {
        gid_t group;
        if (!parse_number((*fields)[i], group)) return core::unexpected(bad_request("a group that is not a number"));
        as.credentials.groups.push_back(group);
    }
    return as;
}

namespace {

void send_offer(int channel, const AgentOffer& offer) {
    if (!offer.failure.is_ok()) {
        (void)core::send_with_fds(channel, writer_report_line(offer.failure), {});
        return;
    }
    const AgentConnection& c = offer.connection;
    const int fds[2] = {c.socket.get(), c.process.get()};
    // Sent, the descriptors are the worker's: ours close when the offer goes.
    (void)core::send_with_fds(channel, fmt::format("{}{}", ok_word, c.pid), {fds, c.process ? 2u : 1u});
}

}  // namespace

void answer_agent_request(int channel, std::string_view packet, AgentSource& source) {
    auto as = decode_agent_request(packet);
    if (!as) {
        (void)core::send_with_fds(channel, writer_report_line(Status::temp("4.3.0", as.error().message())), {});
        return;
    }
    send_offer(channel, source.connect(*as));
}

std::string encode_mailbox_request(const MailboxRequest& request) {
    std::string packet;
    append_field(packet, mailbox_version);
    append_field(packet, request.user);
    append_field(packet, std::to_string(request.lane));
    return packet;
}

core::Result<MailboxRequest> decode_mailbox_request(std::string_view packet) {
    auto fields = split_fields(packet);
    if (!fields) return core::unexpected(bad_request("a field without its end"));
    if (fields->size() != 3 || (*fields)[0] != mailbox_version)
        return core::unexpected(bad_request("unknown version or wrong number of fields"));
    MailboxRequest request;
    request.user = std::string((*fields)[1]);
    // A login name: what NSS would be asked for, nothing that could name a path.
    if (request.user.empty() || request.user.size() > 256 || request.user.find_first_of("/\n\r") != std::string::npos)
        return core::unexpected(bad_request("not a user name"));
    if (!parse_number((*fields)[2], request.lane) || request.lane >= max_mailbox_lanes)
        return core::unexpected(bad_request("a lane out of range"));
    return request;
}

void answer_mailbox_request(int channel, std::string_view packet, AgentSource& source, const MailboxResolver& resolve) {
    auto request = decode_mailbox_request(packet);
    if (!request) {
        (void)core::send_with_fds(channel, writer_report_line(Status::temp("4.3.0", request.error().message())), {});
        return;
    }
    auto resolved = resolve(request->user);
    if (auto* refused = std::get_if<Status>(&resolved)) {
        (void)core::send_with_fds(channel, writer_report_line(*refused), {});
        return;
    }
    auto& as = std::get<AgentIdentity>(resolved);
    as.lane = request->lane;
    send_offer(channel, source.connect(as));
}

AgentOffer ChannelAgentSource::connect(const AgentIdentity& as) {
    AgentOffer offer;
    auto fail = [&](std::string text) {
        offer.failure = Status::temp("4.3.0", "no delivery agent from the daemon: " + text);
        return std::move(offer);
    };
    if (broken_) return fail("an earlier request went unanswered");
    std::string request =
        request_ == Request::mailbox ? encode_mailbox_request({as.name, as.lane}) : encode_agent_request(as);
    if (!core::send_with_fds(channel_, request, {})) return fail(std::strerror(errno));
    struct pollfd ready {channel_, POLLIN, 0};
    int r;
    do {
        r = ::poll(&ready, 1, static_cast<int>(std::min<int64_t>(reply_wait_.count(), INT_MAX)));
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        broken_ = true;
        return fail(r == 0 ? "no answer" : std::strerror(errno));
    }
    char answer[max_answer];
    core::ReceivedPacket packet = core::receive_with_fds(channel_, answer, sizeof answer, 2);
    if (packet.length <= 0) return fail("the daemon has gone");
    std::string_view text(answer, static_cast<size_t>(packet.length));
    if (packet.truncated) return fail("an answer cut short");
    if (text.substr(0, ok_word.size()) == ok_word) {
        pid_t pid;
        if (packet.fds.empty() || !parse_number(text.substr(ok_word.size()), pid)) return fail("a malformed answer");
        offer.connection.socket = std::move(packet.fds[0]);
        if (packet.fds.size() > 1) offer.connection.process = std::move(packet.fds[1]);
        offer.connection.pid = pid;
        return offer;
    }
    auto status = status_from_output(text);
    if (!status || status->is_ok() || !packet.fds.empty()) return fail("a malformed answer");
    offer.failure = std::move(*status);
    return offer;
}

}  // namespace mailroom::mail
