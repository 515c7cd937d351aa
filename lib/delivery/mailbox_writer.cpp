#include "delivery/mailbox_writer.hpp"

namespace mailroom::mail {

std::string delivery_headers(const DeliveryInfo& info) {
    std::string headers;
    headers.reserve(40 + info.sender.size() + info.recipient.size());
    headers += "Return-Path: <";
    headers += info.sender;
    headers += ">\nDelivered-To: ";
    headers += info.recipient;
    headers += '\n';
    return headers;
}

}  // namespace mailroom::mail
