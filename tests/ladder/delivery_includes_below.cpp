// Built against mailroom_delivery: its own headers and those of mail and core.
#include "core/result.hpp"
#include "delivery/mbox_writer.hpp"
#include "mail/status.hpp"

int ladder_reaches_down() { return 0; }
