#include "common/tasktoken/task_token.h"

#include "gtest/gtest.h"

namespace stepflow::tasktoken {
namespace {

internal::v1::TaskTokenContent Sample() {
  internal::v1::TaskTokenContent content;
  content.set_execution_arn("arn:aws:states:us-east-1:123456789012:execution:sm:e");
  content.set_scheduled_event_id(42);
  content.set_activity_arn("arn:aws:states:us-east-1:123456789012:activity:a");
  return content;
}

TEST(TaskTokenTest, RoundTrip) {
  TaskTokenCodec codec("secret");
  std::string token = codec.Encode(Sample());
  auto back = codec.Decode(token);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->scheduled_event_id(), 42);
  EXPECT_EQ(back->execution_arn(), Sample().execution_arn());
  EXPECT_EQ(TaskTokenCodec::Peek(token)->scheduled_event_id(), 42);
}

TEST(TaskTokenTest, RejectsForgeries) {
  TaskTokenCodec codec("secret");
  std::string token = codec.Encode(Sample());
  EXPECT_FALSE(TaskTokenCodec("other").Decode(token).ok());
  std::string altered = token;
  altered[5] = altered[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(codec.Decode(altered).ok());
  auto garbage = codec.Decode("not a token!");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().message(), "InvalidToken: Invalid Token: 'not a token!'");
  EXPECT_FALSE(codec.Decode("").ok());
  EXPECT_FALSE(codec.Decode(std::string(2000, 'A')).ok());
}

}  // namespace
}  // namespace stepflow::tasktoken
