// Built against mailroom_delivery, reaching up to the queue: must not compile.
#include "queue/spool.hpp"

int ladder_reaches_up() { return 0; }
