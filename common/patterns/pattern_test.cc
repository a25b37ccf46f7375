#include "common/patterns/pattern.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::patterns {
namespace {

// Whether `event` matches `pattern`; fails the test when either is invalid.
bool Hit(const std::string& pattern, const std::string& event) {
  absl::StatusOr<Pattern> parsed = Pattern::Parse(pattern);
  EXPECT_TRUE(parsed.ok()) << pattern << ": " << parsed.status();
  if (!parsed.ok()) return false;
  absl::StatusOr<bool> result = parsed->Matches(absl::string_view(event));
  EXPECT_TRUE(result.ok()) << event;
  return result.ok() && *result;
}

// The reason AWS gives for refusing `pattern`, or "" when it is valid.
std::string Reason(const std::string& pattern) {
  absl::StatusOr<Pattern> parsed = Pattern::Parse(pattern);
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(parsed.status().message());
  const std::string prefix = "Event pattern is not valid. Reason: ";
  EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  return message.substr(prefix.size());
}

TEST(PatternTest, ExactValues) {
  EXPECT_TRUE(Hit(R"({"source": ["shop"]})", R"({"source": "shop"})"));
  EXPECT_FALSE(Hit(R"({"source": ["shop"]})", R"({"source": "Shop"})"));
  EXPECT_TRUE(Hit(R"({"source": ["a", "shop"]})", R"({"source": "shop"})"));
  EXPECT_TRUE(Hit(R"({"n": [5]})", R"({"n": 5.0})"));
  EXPECT_FALSE(Hit(R"({"n": [5]})", R"({"n": "5"})"));
  EXPECT_FALSE(Hit(R"({"n": ["5"]})", R"({"n": 5})"));
  EXPECT_TRUE(Hit(R"({"b": [true]})", R"({"b": true})"));
  EXPECT_FALSE(Hit(R"({"b": [true]})", R"({"b": "true"})"));
  EXPECT_TRUE(Hit(R"({"b": [false]})", R"({"b": false})"));
  EXPECT_TRUE(Hit(R"({"s": [""]})", R"({"s": ""})"));
  EXPECT_FALSE(Hit(R"({"s": [""]})", R"({})"));
}

TEST(PatternTest, NullIsNotMissing) {
  EXPECT_TRUE(Hit(R"({"x": [null]})", R"({"x": null})"));
  EXPECT_FALSE(Hit(R"({"x": [null]})", R"({})"));
  EXPECT_FALSE(Hit(R"({"x": [null]})", R"({"x": "null"})"));
}

TEST(PatternTest, EventArraysMatchAnyElement) {
  EXPECT_TRUE(Hit(R"({"resources": ["b"]})", R"({"resources": ["a", "b"]})"));
  EXPECT_FALSE(Hit(R"({"resources": ["c"]})", R"({"resources": ["a", "b"]})"));
  EXPECT_FALSE(Hit(R"({"resources": ["c"]})", R"({"resources": []})"));
  EXPECT_TRUE(Hit(R"({"items": {"sku": ["x"]}})", R"({"items": [{"sku": "y"}, {"sku": "x"}]})"));
  // Both conditions must hold in the same element.
  EXPECT_FALSE(Hit(R"({"items": {"sku": ["x"], "qty": [2]}})",
                   R"({"items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 2}]})"));
  EXPECT_TRUE(Hit(R"({"items": {"sku": ["x"], "qty": [2]}})",
                  R"({"items": [{"sku": "y", "qty": 1}, {"sku": "x", "qty": 2}]})"));
}

TEST(PatternTest, NestedObjects) {
  EXPECT_TRUE(Hit(R"({"detail": {"state": ["running"]}})", R"({"detail": {"state": "running"}})"));
  EXPECT_FALSE(Hit(R"({"detail": {"state": ["running"]}})", R"({"detail": "running"})"));
  EXPECT_FALSE(Hit(R"({"detail": {"state": ["running"]}})", R"({"state": "running"})"));
  EXPECT_FALSE(Hit(R"({"detail": ["x"]})", R"({"detail": {"a": "x"}})"));
}

TEST(PatternTest, Prefix) {
  EXPECT_TRUE(Hit(R"({"t": [{"prefix": "2022-"}]})", R"({"t": "2022-07-13"})"));
  EXPECT_FALSE(Hit(R"({"t": [{"prefix": "2023-"}]})", R"({"t": "2022-07-13"})"));
  EXPECT_TRUE(Hit(R"({"t": [{"prefix": ""}]})", R"({"t": "x"})"));
  EXPECT_FALSE(Hit(R"({"t": [{"prefix": "1"}]})", R"({"t": 12})"));
  EXPECT_TRUE(Hit(R"({"t": [{"prefix": {"equals-ignore-case": "EU-"}}]})", R"({"t": "eu-west-1"})"));
  EXPECT_EQ(Reason(R"({"t": [{"prefix": 1}]})"), "prefix match pattern must be a string");
  EXPECT_EQ(Reason(R"({"t": [{"prefix": ["a"]}]})"), "prefix match pattern must be a string");
  EXPECT_EQ(Reason(R"({"t": [{"prefix": {"equals-ignore-case": 1}}]})"),
            "equals-ignore-case match pattern must be a string");
}

TEST(PatternTest, Suffix) {
  EXPECT_TRUE(Hit(R"({"f": [{"suffix": ".png"}]})", R"({"f": "a.png"})"));
  EXPECT_FALSE(Hit(R"({"f": [{"suffix": ".png"}]})", R"({"f": "a.PNG"})"));
  EXPECT_TRUE(Hit(R"({"f": [{"suffix": {"equals-ignore-case": ".png"}}]})", R"({"f": "a.PNG"})"));
  EXPECT_EQ(Reason(R"({"f": [{"suffix": 123}]})"), "suffix match pattern must be a string");
}

TEST(PatternTest, EqualsIgnoreCase) {
  EXPECT_TRUE(Hit(R"({"d": [{"equals-ignore-case": "ec2 instance"}]})", R"({"d": "EC2 Instance"})"));
  EXPECT_FALSE(Hit(R"({"d": [{"equals-ignore-case": "ec2"}]})", R"({"d": "ec2 x"})"));
  EXPECT_EQ(Reason(R"({"d": [{"equals-ignore-case": ["a"]}]})"),
            "equals-ignore-case match pattern must be a string");
}

TEST(PatternTest, AnythingBut) {
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": "x"}]})", R"({"s": "y"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": "x"}]})", R"({"s": "x"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": "x"}]})", R"({})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": "x"}]})", R"({"s": null})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": ["x", "y"]}]})", R"({"s": "z"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": ["x", "y"]}]})", R"({"s": "y"})"));
  EXPECT_FALSE(Hit(R"({"n": [{"anything-but": [1, 2]}]})", R"({"n": 2.0})"));
  EXPECT_TRUE(Hit(R"({"n": [{"anything-but": 0}]})", R"({"n": 1})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"prefix": "init"}}]})", R"({"s": "initial"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": {"prefix": "init"}}]})", R"({"s": "post-init"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"suffix": ".txt"}}]})", R"({"s": "a.txt"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"wildcard": "*/lib/*"}}]})", R"({"s": "/usr/lib/x"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": {"wildcard": ["*/lib/*", "a*"]}}]})", R"({"s": "/bin"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"equals-ignore-case": ["X", "y"]}}]})", R"({"s": "x"})"));
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": null}]})"),
            "Value of anything-but must be an array or single string/number value.");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": ["a", null]}]})"),
            "Inside anything but list, start|null|boolean is not supported.");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": ["a", 1]}]})"),
            "Inside anything but list, either all values are number or string, mixed type is not "
            "supported");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": []}]})"),
            "Inside anything but list, either all values are number or string, mixed type is not "
            "supported");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"prefix": ""}}]})"), "Null prefix/suffix not allowed");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"suffix": 1}}]})"),
            "prefix/suffix match pattern must be a string");
  // As AWS answered in October 2025 (an object is no value anything-but takes).
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"prefix": {"equals-ignore-case": "a"}}}]})"),
            "Value of anything-but must be an array or single string/number value.");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"prefix": ["a", 1]}}]})"),
            "prefix/suffix match pattern must be a string");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"suffix": ["a", ""]}}]})"),
            "Null prefix/suffix not allowed");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"contains": "a"}}]})"),
            "Unsupported anything-but pattern: contains");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {}}]})"), "Anything-But expression name not found");
  // Lists of prefixes and suffixes: none may match.
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": {"prefix": ["init", "test"]}}]})", R"({"s": "post-init"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"prefix": ["init", "post"]}}]})", R"({"s": "post-init"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": {"prefix": ["init", "test"]}}]})", R"({"s": 12})"));
  EXPECT_TRUE(Hit(R"({"s": [{"anything-but": {"suffix": [".txt", ".jpg"]}}]})", R"({"s": "a.png"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"suffix": [".txt", ".jpg"]}}]})", R"({"s": "a.jpg"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"suffix": [".txt", ".jpg"]}}]})", R"({})"));
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"equals-ignore-case": [1]}}]})"),
            "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.");
  EXPECT_EQ(Reason(R"({"s": [{"anything-but": {"wildcard": 1}}]})"),
            "wildcard match pattern must be a string");
}

TEST(PatternTest, Numeric) {
  EXPECT_TRUE(Hit(R"({"n": [{"numeric": [">", 0, "<=", 5]}]})", R"({"n": 5})"));
  EXPECT_FALSE(Hit(R"({"n": [{"numeric": [">", 0, "<", 5]}]})", R"({"n": 5})"));
  EXPECT_FALSE(Hit(R"({"n": [{"numeric": [">", 0]}]})", R"({"n": 0})"));
  EXPECT_TRUE(Hit(R"({"n": [{"numeric": [">=", 0]}]})", R"({"n": 0})"));
  EXPECT_TRUE(Hit(R"({"n": [{"numeric": ["=", 3.0]}]})", R"({"n": 3})"));
  EXPECT_TRUE(Hit(R"({"n": [{"numeric": ["=", 0.3]}]})", R"({"n": 0.30000000000000004})"));
  EXPECT_FALSE(Hit(R"({"n": [{"numeric": [">", 0]}]})", R"({"n": "5"})"));
  EXPECT_FALSE(Hit(R"({"n": [{"numeric": [">", 0]}]})", R"({"n": 6e9})"));
  EXPECT_TRUE(Hit(R"({"n": [{"numeric": ["<", 0]}]})", R"({"n": [-1, 3]})"));
  EXPECT_EQ(Reason(R"({"n": [{"numeric": 10}]})"), "Value of numeric must be an array.");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": ["<", "x"]}]})"), "Value of < must be numeric");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 0, ">", 5]}]})"), "Bad numeric range operator: >");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 5, "<", 1]}]})"), "Bottom must be less than top");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": ["!", 5]}]})"), "Unrecognized numeric range operator: !");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 6e9]}]})"), "Value of > must be numeric");
  // The other ways a numeric list can be wrong, in EventBridge's words.
  EXPECT_EQ(Reason(R"({"n": [{"numeric": ["<", 5, ">", 0]}]})"),
            "Too many elements in numeric expression");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": ["=", 5, "<", 10]}]})"),
            "Too many elements in numeric expression");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": ["=", "x"]}]})"), "Value of equals must be numeric");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [5]}]})"), "Invalid member in numeric match: 5");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": []}]})"), "Invalid member in numeric match: ]");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 0, 5]}]})"), "Bad value in numeric range: 5");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 0, "<", 5, "<", 6]}]})"),
            "Too many terms in numeric range expression");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">", 0, "<"]}]})"), "Value of < must be numeric");
  EXPECT_EQ(Reason(R"({"n": [{"numeric": [">="]}]})"), "Value of >= must be numeric");
  EXPECT_EQ(Reason(R"({"n": [{"NUMERIC": [">", 6]}]})"), "Unrecognized match type NUMERIC");
}

TEST(PatternTest, Exists) {
  EXPECT_TRUE(Hit(R"({"a": [{"exists": true}]})", R"({"a": "x"})"));
  EXPECT_TRUE(Hit(R"({"a": [{"exists": true}]})", R"({"a": null})"));
  EXPECT_FALSE(Hit(R"({"a": [{"exists": true}]})", R"({"b": 1})"));
  EXPECT_TRUE(Hit(R"({"a": [{"exists": false}]})", R"({"b": 1})"));
  EXPECT_FALSE(Hit(R"({"a": [{"exists": false}]})", R"({"a": 1})"));
  // Exists looks at leaf values only.
  EXPECT_FALSE(Hit(R"({"a": [{"exists": true}]})", R"({"a": {"b": 1}})"));
  EXPECT_TRUE(Hit(R"({"a": [{"exists": false}]})", R"({"a": {"b": 1}})"));
  EXPECT_FALSE(Hit(R"({"a": [{"exists": true}]})", R"({"a": []})"));
  EXPECT_TRUE(Hit(R"({"a": [{"exists": true}]})", R"({"a": [1]})"));
  EXPECT_TRUE(Hit(R"({"a": {"b": [{"exists": false}]}})", R"({"c": 1})"));
  EXPECT_TRUE(Hit(R"({"a": {"b": [{"exists": false}]}})", R"({"a": {"c": 1}})"));
  EXPECT_FALSE(Hit(R"({"a": {"b": [{"exists": false}]}})", R"({"a": {"b": 1}})"));
  EXPECT_EQ(Reason(R"({"a": [{"exists": "yes"}]})"), "exists match pattern must be either true or false.");
  EXPECT_EQ(Reason(R"({"a": [{"EXISTS": true}]})"), "Unrecognized match type EXISTS");
}

TEST(PatternTest, Cidr) {
  EXPECT_TRUE(Hit(R"({"ip": [{"cidr": "10.0.0.0/24"}]})", R"({"ip": "10.0.0.255"})"));
  EXPECT_FALSE(Hit(R"({"ip": [{"cidr": "10.0.0.0/24"}]})", R"({"ip": "10.0.1.0"})"));
  EXPECT_FALSE(Hit(R"({"ip": [{"cidr": "10.0.0.0/24"}]})", R"({"ip": "bogus"})"));
  EXPECT_TRUE(Hit(R"({"ip": [{"cidr": "2001:db8:1234:1a00::/64"}]})", R"({"ip": "2001:db8:1234:1a00::1"})"));
  EXPECT_FALSE(Hit(R"({"ip": [{"cidr": "2001:db8:1234:1a00::/64"}]})", R"({"ip": "2001:db8:1234:1a01::1"})"));
  EXPECT_TRUE(Hit(R"({"ip": [{"cidr": "0.0.0.0/0"}]})", R"({"ip": "1.2.3.4"})"));
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.0"}]})"), "Malformed CIDR, one '/' required");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.0/x"}]})"), "Malformed CIDR, mask bits must be an integer");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "xx.11.xx/8"}]})"), "Nonstandard IP address: xx.11.xx");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "xxxx:db8:1234:1a00::/64"}]})"),
            "Nonstandard IP address: xxxx:db8:1234:1a00::");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": 10}]})"), "prefix match pattern must be a string");
}

TEST(PatternTest, Wildcard) {
  EXPECT_TRUE(Hit(R"({"a": [{"wildcard": "arn:*:bus/*"}]})", R"({"a": "arn:x:y:bus/main"})"));
  EXPECT_FALSE(Hit(R"({"a": [{"wildcard": "arn:*:bus/*"}]})", R"({"a": "arn:x:y:rule/main"})"));
  EXPECT_TRUE(Hit(R"({"a": [{"wildcard": "a\\*b"}]})", R"({"a": "a*b"})"));
  EXPECT_FALSE(Hit(R"({"a": [{"wildcard": "a\\*b"}]})", R"({"a": "axb"})"));
  EXPECT_TRUE(Hit(R"({"a": [{"wildcard": "*"}]})", R"({"a": ""})"));
  EXPECT_TRUE(Hit(R"({"a": [{"wildcard": "*ab*ab"}]})", R"({"a": "xabyabab"})"));
  EXPECT_EQ(Reason(R"({"a": [{"wildcard": "arn:aws:events:us-east-1:**:event-bus/*"}]})"),
            "Consecutive wildcard characters at pos 26");
  // Positions count from the value's opening quote.
  EXPECT_EQ(Reason(R"({"a": [{"wildcard": "a\\b"}]})"), "Invalid escape character at pos 2");
  EXPECT_EQ(Reason(R"({"a": [{"wildcard": "ab\\"}]})"), "Invalid escape character at pos 3");
  EXPECT_EQ(Reason(R"({"a": [{"wildcard": "*:*:*:*:*:event-bus/*"}]})"),
            "Rule is too complex - try using fewer wildcard characters or fewer repeating character "
            "sequences after a wildcard character");
  EXPECT_EQ(Reason(R"({"a": [{"wildcard": 1}]})"), "wildcard match pattern must be a string");
}

TEST(PatternTest, Or) {
  const std::string pattern =
      R"({"source": ["shop"], "$or": [{"detail": {"n": [{"numeric": [">", 10]}]}}, {"detail": {"vip": [true]}}]})";
  EXPECT_TRUE(Hit(pattern, R"({"source": "shop", "detail": {"n": 11}})"));
  EXPECT_TRUE(Hit(pattern, R"({"source": "shop", "detail": {"vip": true}})"));
  EXPECT_FALSE(Hit(pattern, R"({"source": "shop", "detail": {"n": 1}})"));
  EXPECT_FALSE(Hit(pattern, R"({"source": "x", "detail": {"n": 11}})"));
  // Nested $or.
  EXPECT_TRUE(Hit(R"({"detail": {"$or": [{"a": ["1"]}, {"b": ["2"]}]}})", R"({"detail": {"b": "2"}})"));
  EXPECT_EQ(Reason(R"({"$or": [{"a": ["1"]}]})"), "There must have at least 2 Objects in $or relationship.");
  EXPECT_EQ(Reason(R"({"$or": {"a": ["1"]}})"), "It must be an Array followed with $or.");
  EXPECT_EQ(Reason(R"({"$or": ["a", "b"]})"), "Only JSON object is allowed in array of $or relationship.");
  EXPECT_EQ(Reason(R"({"$or": [{"numeric": ["1"]}, {"b": ["2"]}]})"),
            "numeric is Ruler reserved fieldName which cannot be used inside $or.");
  EXPECT_EQ(Reason(R"({"$or": [{"a": {"prefix": ["1"]}}, {"b": ["2"]}]})"),
            "prefix is Ruler reserved fieldName which cannot be used inside $or.");
  EXPECT_EQ(Reason(R"({"numeric": ["1"]})"), "");  // only inside a $or
}

TEST(PatternTest, StructuralErrors) {
  EXPECT_EQ(Reason(R"(["not", "a", "dict"])"),
            "Filter is not an object\n at [Source: (String)\"[\"not\", \"a\", \"dict\"]\"; "
            "line: 1, column: 2]");
  EXPECT_EQ(Reason(R"({"int": 42})"), "\"int\" must be an object or an array");
  EXPECT_EQ(Reason(R"({"resources": []})"), "Empty arrays are not allowed");
  EXPECT_EQ(Reason(R"({"a": [["x"]]})"), "Match value must be String, number, true, false, or null");
  EXPECT_EQ(Reason(R"({"a": [{"prefix": "x", "suffix": "y"}]})"), "Only one key allowed in match expression");
  // The first operator's value is checked before any other key.
  EXPECT_EQ(Reason(R"({"a": [{"prefix": 1, "suffix": "y"}]})"), "prefix match pattern must be a string");
  EXPECT_EQ(Reason(R"({"a": [{"numeric": [">", 1], "x": 1}]})"), "Too many elements in numeric expression");
  EXPECT_EQ(Reason(R"({"a": [{}]})"), "Match expression name not found");
  EXPECT_EQ(Reason(R"({"a": [{"prefix": {}}]})"), "Prefix expression name not found");
  EXPECT_EQ(Reason(R"({"a": [{"suffix": {"foo": "x"}}]})"), "Unsupported suffix pattern: foo");
  EXPECT_EQ(Reason(R"({"a": [{"prefix": {"equals-ignore-case": 1}}]})"),
            "equals-ignore-case match pattern must be a string");
  EXPECT_NE(Reason(R"({"bad": )"), "");
}

// JSON that does not parse: the reasons AWS's JSON reader gives, with where
// it stopped.
// Case is ignored beyond ASCII too, as Java's case mapping does.
TEST(PatternTest, IgnoringCaseCoversEveryAlphabet) {
  EXPECT_TRUE(Hit(R"({"s": [{"equals-ignore-case": "ÄBC"}]})", R"({"s": "äbc"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"equals-ignore-case": "straße"}]})", R"({"s": "STRAßE"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"prefix": {"equals-ignore-case": "ÉCOLE"}}]})", R"({"s": "école-1"})"));
  EXPECT_TRUE(Hit(R"({"s": [{"suffix": {"equals-ignore-case": "ΣΟΦΊΑ"}}]})", R"({"s": "η σοφία"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"anything-but": {"equals-ignore-case": "É"}}]})", R"({"s": "é"})"));
  EXPECT_FALSE(Hit(R"({"s": [{"equals-ignore-case": "äbc"}]})", R"({"s": "abc"})"));
}

// EventBridge's checks of a cidr value, in its order and words.
TEST(PatternTest, CidrChecks) {
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.0/"}]})"), "Malformed CIDR, one '/' required");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.0/-1"}]})"),
            "Malformed CIDR, mask bits must not be negative");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.0/x"}]})"),
            "Malformed CIDR, mask bits must be an integer");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.1/32"}]})"), "IPv4 mask bits must be < 32");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "::1/128"}]})"), "IPv6 mask bits must be < 128");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "10.0.0.1/31"}]})"), "");
  EXPECT_EQ(Reason(R"({"ip": [{"cidr": "xx/99"}]})"), "Nonstandard IP address: xx");
}

TEST(PatternTest, SyntaxErrorsAsAwsReportsThem) {
  EXPECT_EQ(Reason("{\"a\":\n [tru]}"),
            "Unrecognized token 'tru': was expecting (JSON String, Number, Array, Object or "
            "token 'null', 'true' or 'false')\n at [Source: (String)\"{\"a\":\n [tru]}\"; "
            "line: 2, column: 6]");
  EXPECT_EQ(Reason("{a: [1]}"),
            "Unexpected character ('a' (code 97)): was expecting double-quote to start field "
            "name\n at [Source: (String)\"{a: [1]}\"; line: 1, column: 2]");
  const std::string long_pattern = "nope" + std::string(600, ' ');
  EXPECT_THAT(Reason(long_pattern), ::testing::EndsWith("\"[truncated 104 chars]; line: 1, column: 5]"));
}

TEST(PatternTest, CombinationLimit) {
  std::string values;
  for (int i = 0; i < 40; ++i) values += (i ? "," : "") + std::to_string(i);
  std::string pattern = "{\"a\": [" + values + "], \"b\": [" + values + "]}";
  EXPECT_EQ(Reason(pattern), "Event pattern contains more than 1000 rule combinations");
  EXPECT_EQ(Reason("{\"a\": [" + values + "]}"), "");
}

TEST(PatternTest, TestEventPatternChecksTheEvent) {
  const std::string event =
      R"({"id": "1", "source": "s", "detail-type": "t", "account": "1", "region": "r", "time": "x"})";
  EXPECT_TRUE(*TestEventPattern(R"({"source": ["s"]})", event));
  EXPECT_FALSE(*TestEventPattern(R"({"source": ["x"]})", event));
  EXPECT_EQ(TestEventPattern(R"({"source": ["s"]})", R"({"source": "s"})").status().message(),
            kInvalidEventMessage);
  EXPECT_EQ(TestEventPattern(R"({"source": ["s"]})", R"([1])").status().message(), kInvalidEventMessage);
  EXPECT_EQ(TestEventPattern(R"({"source": "s"})", event).status().message(),
            "Event pattern is not valid. Reason: \"source\" must be an object or an array");
}

// EventBridge joins keys with '.': "a.b" in a pattern or an event is the
// field "b" of "a" (AWS's dot_joining_pattern / dot_joining_event).
TEST(PatternTest, DottedKeysAreNestedFields) {
  EXPECT_TRUE(Hit(R"({"detail": {"state.status": ["running"]}})",
                  R"({"detail": {"state": {"status": "running"}}})"));
  EXPECT_TRUE(Hit(R"({"detail": {"state": {"status": ["running"]}}})",
                  R"({"detail": {"state.status": "running"}})"));
  EXPECT_TRUE(Hit(R"({"detail.state.status": ["running"]})", R"({"detail.state": {"status": "running"}})"));
  EXPECT_FALSE(Hit(R"({"detail": {"state.status": ["running"]}})",
                   R"({"detail": {"state": {"status": "stopped"}}})"));
  // A value given both ways is one field with either value.
  EXPECT_TRUE(Hit(R"({"a": {"b": ["2"]}})", R"({"a.b": "1", "a": {"b": "2"}})"));
  EXPECT_TRUE(Hit(R"({"a": ["x"], "a.b": ["y"]})", R"({"a": "x", "a.b": "y"})"));
  EXPECT_FALSE(Hit(R"({"a": {"b": [{"exists": false}]}})", R"({"a": {"c": 1}, "a.b": 1})"));
}

// A field given twice in one pattern object: the last value wins (AWS's
// test_event_pattern_with_multi_key, from its complex example).
TEST(PatternTest, AFieldGivenTwiceTakesTheLastValue) {
  const char* pattern = R"({"detail": {"location": [{"prefix": "us-"}],
                                       "location": [{"anything-but": "us-east"}]}})";
  EXPECT_TRUE(Hit(pattern, R"({"detail": {"location": "eu-central-1"}})"));
  EXPECT_FALSE(Hit(pattern, R"({"detail": {"location": "us-east"}})"));
  EXPECT_TRUE(Hit(R"({"a": {"b": ["1"]}, "a.b": ["2"]})", R"({"a": {"b": "2"}})"));
  EXPECT_FALSE(Hit(R"({"a": {"b": ["1"]}, "a.b": ["2"]})", R"({"a": {"b": "1"}})"));
  // Different fields under one key given twice both count.
  EXPECT_FALSE(Hit(R"({"a": {"b": ["1"]}, "a": {"c": ["2"]}})", R"({"a": {"b": "1"}})"));
  EXPECT_TRUE(Hit(R"({"a": {"b": ["1"]}, "a": {"c": ["2"]}})", R"({"a": {"b": "1", "c": "2"}})"));
}

}  // namespace
}  // namespace stepflow::patterns
