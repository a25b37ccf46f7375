#include "services/execution/peer_breaker.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::execution {
namespace {

using ::testing::HasSubstr;

TEST(PeerBreakerTest, CallsGoThroughWhileThePeerAnswers) {
  PeerBreaker breaker({"shard server 0", "shard server 1"}, absl::Seconds(10));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<PeerBreaker::Ticket> ticket = breaker.Admit(1);
    ASSERT_TRUE(ticket.ok()) << ticket.status();
    EXPECT_FALSE(ticket->probe);
    breaker.Settle(*ticket, /*hung=*/false);
  }
  EXPECT_FALSE(breaker.Unresponsive(1));
}

TEST(PeerBreakerTest, AfterAHungCallOneProbeGoesThroughAndTheRestFailAtOnce) {
  PeerBreaker breaker({"shard server 0", "shard server 1 at 10.0.0.2:7300"}, absl::Seconds(10));
  // Two calls out at once; the first runs into its deadline.
  absl::StatusOr<PeerBreaker::Ticket> first = breaker.Admit(1);
  absl::StatusOr<PeerBreaker::Ticket> second = breaker.Admit(1);
  ASSERT_TRUE(first.ok() && second.ok());
  breaker.Settle(*first, /*hung=*/true);
  EXPECT_TRUE(breaker.Unresponsive(1));

  absl::StatusOr<PeerBreaker::Ticket> probe = breaker.Admit(1);
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_TRUE(probe->probe);
  absl::StatusOr<PeerBreaker::Ticket> refused = breaker.Admit(1);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("shard server 1 at 10.0.0.2:7300"));
  EXPECT_THAT(refused.status().message(), HasSubstr("10s"));
  // Other peers are not concerned.
  EXPECT_TRUE(breaker.Admit(0).ok());

  // The probe hangs too: the next call is the next probe, one at a time.
  breaker.Settle(*probe, /*hung=*/true);
  absl::StatusOr<PeerBreaker::Ticket> next_probe = breaker.Admit(1);
  ASSERT_TRUE(next_probe.ok());
  EXPECT_TRUE(next_probe->probe);
  EXPECT_FALSE(breaker.Admit(1).ok());

  // An answer of any kind, here from the call let through before, ends it.
  breaker.Settle(*second, /*hung=*/false);
  EXPECT_FALSE(breaker.Unresponsive(1));
  absl::StatusOr<PeerBreaker::Ticket> after = breaker.Admit(1);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->probe);
  // The old probe coming back hung after that marks the peer again.
  breaker.Settle(*next_probe, /*hung=*/true);
  EXPECT_TRUE(breaker.Unresponsive(1));
}

TEST(PeerBreakerTest, MetricsCountCallsFailedAtOnce) {
  prometheus::Registry registry;
  PeerBreaker breaker({"shard server 0", "shard server 1"}, absl::Seconds(1), &registry);
  absl::StatusOr<PeerBreaker::Ticket> call = breaker.Admit(1);
  ASSERT_TRUE(call.ok());
  breaker.Settle(*call, /*hung=*/true);
  absl::StatusOr<PeerBreaker::Ticket> probe = breaker.Admit(1);
  ASSERT_TRUE(probe.ok());
  EXPECT_FALSE(breaker.Admit(1).ok());
  EXPECT_FALSE(breaker.Admit(1).ok());

  std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(text, HasSubstr("stepflow_peer_calls_failed_fast_total{peer=\"1\"} 2"));
  EXPECT_THAT(text, HasSubstr("stepflow_peer_unresponsive{peer=\"1\"} 1"));
  EXPECT_THAT(text, HasSubstr("stepflow_peer_unresponsive{peer=\"0\"} 0"));

  breaker.Settle(*probe, /*hung=*/false);
  text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(text, HasSubstr("stepflow_peer_unresponsive{peer=\"1\"} 0"));
}

}  // namespace
}  // namespace stepflow::execution
