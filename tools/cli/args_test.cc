#include "tools/cli/args.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<FlagSpec> Specs() {
  return {
      {.name = "name", .value_name = "NAME", .help = "A name."},
      {.name = "reverse", .kind = FlagKind::kBool, .help = "Reverse."},
      {.name = "max-results", .kind = FlagKind::kInt, .value_name = "N"},
      {.name = "timeout", .kind = FlagKind::kNumber, .value_name = "S"},
      {.name = "type", .value_name = "T", .choices = {"STANDARD", "EXPRESS"}},
      {.name = "help", .kind = FlagKind::kBool, .short_name = 'h'},
  };
}

TEST(ParseArgsTest, SpaceAndEqualsFormsAndPositionals) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"pos1", "--name", "a b", "--max-results=5", "pos2",
                 "--timeout=2.5", "--type", "EXPRESS"},
                Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("name"), "a b");
  EXPECT_EQ(args->GetInt("max-results"), 5);
  EXPECT_DOUBLE_EQ(args->GetNumber("timeout"), 2.5);
  EXPECT_EQ(args->Get("type"), "EXPRESS");
  EXPECT_THAT(args->positionals, ElementsAre("pos1", "pos2"));
  EXPECT_FALSE(args->Has("reverse"));
  EXPECT_EQ(args->Get("missing", "default"), "default");
  EXPECT_EQ(args->GetInt("missing", 7), 7);
}

TEST(ParseArgsTest, BooleanFlags) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"--reverse", "x", "-h"}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->IsSet("reverse"));
  EXPECT_TRUE(args->IsSet("help"));
  EXPECT_THAT(args->positionals, ElementsAre("x"));

  args = ParseArgs({"--reverse=false"}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_TRUE(args->Has("reverse"));
  EXPECT_FALSE(args->IsSet("reverse"));

  EXPECT_FALSE(ParseArgs({"--reverse=yes"}, Specs()).ok());
}

TEST(ParseArgsTest, ValuesMayLookLikeFlagsOrBeEmpty) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"--name", "--reverse", "--type="}, Specs());
  // "--type=" is an empty value, which is not among the choices.
  EXPECT_FALSE(args.ok());
  args = ParseArgs({"--name", "--reverse", "--name="}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("name"), "");
  EXPECT_FALSE(args->Has("reverse"));
}

TEST(ParseArgsTest, LastOccurrenceWins) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"--name=a", "--name", "b"}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("name"), "b");
}

TEST(ParseArgsTest, DashIsPositionalAndDoubleDashEndsFlags) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"-", "--", "--name", "-h"}, Specs());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positionals, ElementsAre("-", "--name", "-h"));
  EXPECT_TRUE(args->flags.empty());
}

TEST(ParseArgsTest, StopAtPositionalKeepsTheRestVerbatim) {
  absl::StatusOr<ParsedArgs> args =
      ParseArgs({"--name", "n", "executions", "list", "--unknown", "-x"},
                Specs(), /*stop_at_positional=*/true);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("name"), "n");
  EXPECT_THAT(args->positionals,
              ElementsAre("executions", "list", "--unknown", "-x"));
}

TEST(ParseArgsTest, Errors) {
  auto message = [](std::vector<std::string> argv) {
    absl::StatusOr<ParsedArgs> args = ParseArgs(argv, Specs());
    EXPECT_FALSE(args.ok());
    return std::string(args.status().message());
  };
  EXPECT_THAT(message({"--nope"}), HasSubstr("unknown flag --nope"));
  EXPECT_THAT(message({"--nope=1"}), HasSubstr("unknown flag --nope"));
  EXPECT_THAT(message({"-x"}), HasSubstr("unknown flag -x"));
  EXPECT_THAT(message({"--name"}), HasSubstr("needs a value"));
  EXPECT_THAT(message({"--max-results", "0"}), HasSubstr("positive integer"));
  EXPECT_THAT(message({"--max-results", "ten"}), HasSubstr("positive integer"));
  EXPECT_THAT(message({"--timeout=-1"}), HasSubstr("positive number"));
  EXPECT_THAT(message({"--type", "FAST"}),
              HasSubstr("must be one of STANDARD, EXPRESS"));
}

TEST(FormatFlagHelpTest, AlignsNamesAndContinuationLines) {
  std::string help = FormatFlagHelp(
      {{.name = "name", .value_name = "NAME", .help = "Line one.\nLine two."},
       {.name = "help",
        .kind = FlagKind::kBool,
        .help = "Help.",
        .short_name = 'h'}});
  EXPECT_EQ(help,
            "  --name NAME                 Line one.\n"
            "                              Line two.\n"
            "  -h, --help                  Help.\n");
}

}  // namespace
}  // namespace stepflow::cli
