#include "common/rpc/status.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::rpc {
namespace {

TEST(StatusConversionTest, RoundTripsEveryCodeAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code),
                   "message " + std::to_string(code));
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "message " + std::to_string(code));
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
}

TEST(StatusConversionTest, OkAndNamedCodes) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")),
            absl::UnavailableError("down"));
}

TEST(StatusConversionTest, OutOfRangeCodesBecomeUnknown) {
  absl::Status weird(static_cast<absl::StatusCode>(42), "odd");
  EXPECT_EQ(ToGrpcStatus(weird).error_code(), grpc::StatusCode::UNKNOWN);
}

TEST(AwsErrorTest, PutsTheNameFirst) {
  absl::Status s = NotFound("StateMachineDoesNotExist",
                            "State Machine Does Not Exist: 'arn:aws:x'");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(),
            "StateMachineDoesNotExist: State Machine Does Not Exist: "
            "'arn:aws:x'");
  EXPECT_EQ(ErrorName(s), "StateMachineDoesNotExist");
  EXPECT_EQ(ErrorMessage(s), "State Machine Does Not Exist: 'arn:aws:x'");
}

TEST(AwsErrorTest, ConvenienceCodes) {
  EXPECT_EQ(AlreadyExists("A", "m").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(InvalidArgument("ValidationException", "m").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FailedPrecondition("A", "m").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResourceExhausted("ThrottlingException", "m").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(AwsError(absl::StatusCode::kAborted, "Conflict", "m"),
            absl::AbortedError("Conflict: m"));

  absl::Status u = Unimplemented("ListTagsForResource");
  EXPECT_EQ(u, absl::UnimplementedError(
                   "ListTagsForResource is not implemented yet"));
  EXPECT_EQ(ErrorName(u), "");
  EXPECT_EQ(ErrorMessage(u), "ListTagsForResource is not implemented yet");
}

TEST(AwsErrorTest, EmptyMessageKeepsTheName) {
  absl::Status s = InvalidArgument("InvalidArn", "");
  EXPECT_EQ(s.message(), "InvalidArn:");
  EXPECT_EQ(ErrorName(s), "InvalidArn");
  EXPECT_EQ(ErrorMessage(s), "");
}

TEST(ErrorNameTest, OnlyIdentifiersCount) {
  auto name = [](const char* message) {
    return std::string(ErrorName(absl::InternalError(message)));
  };
  EXPECT_EQ(name("States.Timeout: took too long"), "States.Timeout");
  EXPECT_EQ(name("Task_Failed2: x"), "Task_Failed2");
  EXPECT_EQ(name("IO error: disk gone"), "");  // Space in the name.
  EXPECT_EQ(name("failed to open: x"), "");    // Lower-case start.
  EXPECT_EQ(name("arn:aws:states:x"), "");     // ':' not followed by ' '.
  EXPECT_EQ(name("NoColonHere"), "");
  EXPECT_EQ(name(": leading colon"), "");
  EXPECT_EQ(name(""), "");
  EXPECT_EQ(name((std::string(129, 'A') + ": too long").c_str()), "");
  EXPECT_EQ(ErrorName(absl::OkStatus()), "");

  absl::Status plain = absl::InternalError("IO error: disk gone");
  EXPECT_EQ(ErrorMessage(plain), "IO error: disk gone");
}

TEST(ErrorNameTest, SurvivesGrpcRoundTrip) {
  absl::Status s = FromGrpcStatus(ToGrpcStatus(
      NotFound("ExecutionDoesNotExist", "Execution Does Not Exist")));
  EXPECT_EQ(ErrorName(s), "ExecutionDoesNotExist");
  EXPECT_EQ(ErrorMessage(s), "Execution Does Not Exist");
}

}  // namespace
}  // namespace stepflow::rpc
