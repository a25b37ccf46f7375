#include "common/config/signals.h"

#include <signal.h>

#include <thread>

#include "gtest/gtest.h"

namespace stepflow::config {
namespace {

// Its own test binary: it blocks SIGTERM and sends it to the whole process.
TEST(SignalsTest, RequestedTerminationEndsTheWaitFromAnotherThread) {
  BlockTerminationSignals();
  std::thread requester([] { RequestTermination(); });
  EXPECT_EQ(WaitForTerminationSignal(), SIGTERM);
  requester.join();
}

}  // namespace
}  // namespace stepflow::config
