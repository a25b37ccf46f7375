// Runs the json-path-comparison regression suite against JsonPath and checks
// that it answers as Jayway JsonPath (the library AWS Step Functions uses)
// does.
//
// Inputs, from $STEPFLOW_SOURCE_DIR/../shared/conformance/jsonpath/
// json-path-comparison/ (the test skips when the folder is absent):
//   regression_suite.json          every query: id, selector, document,
//                                  consensus and its variants
//   Java_com.jayway.jsonpath.yaml  Jayway's result wherever it differs from
//                                  the consensus or no consensus exists
//
// The expected answer is Jayway's result when the YAML lists one, else the
// consensus; a query with neither is skipped. NOT_SUPPORTED means Parse()
// fails; NOT_FOUND means Evaluate() gives NOT_FOUND or an empty array.
//
// A consensus is a list of matches. For a path that yields a single value
// (is_single_value()) the value is compared with the suite's scalar
// consensus when there is one, otherwise wrapped in a one-element list; a
// single-value path finding nothing passes when the consensus is empty.
//
// Order: arrays of matches are compared without regard to order exactly
// where the suite marks the query "ordered": false. Those are queries whose
// matches come from object members, whose order JSON leaves open: the
// implementations disagree, and Jayway iterates a HashMap where we keep
// document order. Objects always compare without regard to member order.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/asl/jsonpath.h"
#include "common/json/json.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

// --- A reader for json-path-comparison's per-implementation YAML -----------
//
// The file is a fixed shape written by one script:
//   implementation: Java_com.jayway.jsonpath
//   queries:
//     - id: array_slice_on_object
//       status: fail
//       result: NOT_FOUND
// A result is NOT_FOUND, NOT_SUPPORTED, a flow value (JSON is valid flow
// YAML, and the script writes JSON-compatible flow values), a single-quoted
// string, or a block value on the following, deeper-indented lines. Block
// values are not read: they are marked unreadable and counted.

struct JaywayResult {
  enum class Kind { kNone, kNotFound, kNotSupported, kValue, kUnreadable };
  std::string status;
  Kind kind = Kind::kNone;
  std::string json;  // kValue: the value as JSON text
};

struct JaywayReport {
  std::map<std::string, JaywayResult> results;
  int unreadable = 0;
};

size_t Indentation(absl::string_view line) {
  size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  return n;
}

// A YAML single-quoted scalar ('it''s') as JSON text, or empty if `text`
// is not one.
std::string SingleQuotedToJson(absl::string_view text) {
  if (text.size() < 2 || text.front() != '\'' || text.back() != '\'') return "";
  std::string value;
  absl::string_view inner = text.substr(1, text.size() - 2);
  for (size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] == '\'') {
      if (i + 1 >= inner.size() || inner[i + 1] != '\'') return "";
      ++i;
    }
    value.push_back(inner[i]);
  }
  json::Document doc;
  doc.SetString(value.data(), static_cast<rapidjson::SizeType>(value.size()),
                doc.GetAllocator());
  return json::Serialize(doc);
}

absl::StatusOr<JaywayReport> ReadJaywayReport(absl::string_view text) {
  JaywayReport report;
  JaywayResult* current = nullptr;
  bool in_block = false;  // skipping the lines of a block value
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripSuffix(line, "\r");
    absl::string_view content = absl::StripAsciiWhitespace(line);
    if (content.empty() || content.front() == '#') continue;
    const size_t indent = Indentation(line);
    if (in_block) {
      if (indent > 4 || (indent == 4 && content.front() == '-')) continue;
      in_block = false;
    }
    if (indent == 0) {
      if (absl::StartsWith(content, "implementation:") || content == "queries:")
        continue;
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": unexpected top-level key"));
    }
    if (indent == 2 && absl::StartsWith(content, "- id:")) {
      std::string id(absl::StripAsciiWhitespace(content.substr(5)));
      current = &report.results[id];
      continue;
    }
    if (current == nullptr || indent != 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": unexpected line '", content, "'"));
    }
    if (absl::StartsWith(content, "status:")) {
      current->status =
          std::string(absl::StripAsciiWhitespace(content.substr(7)));
      continue;
    }
    if (!absl::StartsWith(content, "result:")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_number, ": unexpected key in '", content, "'"));
    }
    absl::string_view value = absl::StripAsciiWhitespace(content.substr(7));
    if (value.empty()) {
      current->kind = JaywayResult::Kind::kUnreadable;
      ++report.unreadable;
      in_block = true;
    } else if (value == "NOT_FOUND") {
      current->kind = JaywayResult::Kind::kNotFound;
    } else if (value == "NOT_SUPPORTED") {
      current->kind = JaywayResult::Kind::kNotSupported;
    } else if (json::Parse(value).ok()) {
      current->kind = JaywayResult::Kind::kValue;
      current->json = std::string(value);
    } else if (std::string quoted = SingleQuotedToJson(value);
               !quoted.empty()) {
      current->kind = JaywayResult::Kind::kValue;
      current->json = quoted;
    } else {
      current->kind = JaywayResult::Kind::kUnreadable;
      ++report.unreadable;
    }
  }
  return report;
}

TEST(JaywayReportReaderTest, ReadsEveryKindOfResult) {
  absl::StatusOr<JaywayReport> report = ReadJaywayReport(
      "# generated\n"
      "\n"
      "implementation: Java_com.jayway.jsonpath\n"
      "queries:\n"
      "  - id: missing\n"
      "    status: fail\n"
      "    result: NOT_FOUND\n"
      "  - id: unsupported\n"
      "    status: open\n"
      "    result: NOT_SUPPORTED\n"
      "  - id: flow\n"
      "    status: open\n"
      "    result: [4,5,{\"a\":\"b\"}]\n"
      "  - id: scalar\n"
      "    status: open\n"
      "    result: \"value\"\n"
      "  - id: quoted\n"
      "    status: open\n"
      "    result: 'it''s'\n"
      "  - id: block\n"
      "    status: open\n"
      "    result:\n"
      "      - a\n"
      "      - b: c\n"
      "  - id: plain\n"
      "    status: open\n"
      "    result: not json\n"
      "  - id: error\n"
      "    status: error\n");
  ASSERT_TRUE(report.ok()) << report.status();
  const auto& r = report->results;
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r.at("missing").kind, JaywayResult::Kind::kNotFound);
  EXPECT_EQ(r.at("missing").status, "fail");
  EXPECT_EQ(r.at("unsupported").kind, JaywayResult::Kind::kNotSupported);
  EXPECT_EQ(r.at("flow").kind, JaywayResult::Kind::kValue);
  EXPECT_EQ(r.at("flow").json, "[4,5,{\"a\":\"b\"}]");
  EXPECT_EQ(r.at("scalar").json, "\"value\"");
  EXPECT_EQ(r.at("quoted").json, "\"it's\"");
  EXPECT_EQ(r.at("block").kind, JaywayResult::Kind::kUnreadable);
  EXPECT_EQ(r.at("plain").kind, JaywayResult::Kind::kUnreadable);
  EXPECT_EQ(r.at("error").kind, JaywayResult::Kind::kNone);
  EXPECT_EQ(r.at("error").status, "error");
  EXPECT_EQ(report->unreadable, 2);
}

TEST(JaywayReportReaderTest, RejectsUnknownShapes) {
  EXPECT_FALSE(ReadJaywayReport("other: 1\n").ok());
  EXPECT_FALSE(ReadJaywayReport("queries:\n    status: open\n").ok());
  EXPECT_FALSE(ReadJaywayReport("queries:\n  - id: x\n    colour: red\n").ok());
}

// --- The suite ---------------------------------------------------------------

// Queries where we knowingly answer differently from Jayway, each with the
// reason. The test fails if one of them starts to agree, so the list stays
// true.
const std::map<std::string, std::string>& KnownDifferences() {
  static const auto* known = new std::map<std::string, std::string>{
      {"current_with_dot_notation",
       "'@.a': Step Functions paths start with '$'; Jayway also takes '@' "
       "as the root"},
      {"dot_notation_without_root",
       "'.key': a path must start with '$'; Jayway prefixes '$'"},
      {"dot_notation_without_root_and_dot",
       "'key': a path must start with '$'; Jayway prefixes '$.'"},
      {"dot_notation_without_dot",
       "'$a' is a reference to the workflow variable 'a' in Step Functions "
       "(JSONPath variables); Jayway rejects it"},
  };
  return *known;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool SameMatches(const json::Value& actual, const json::Value& expected,
                 bool ordered) {
  if (ordered || !actual.IsArray() || !expected.IsArray())
    return actual == expected;
  if (actual.Size() != expected.Size()) return false;
  std::vector<bool> used(expected.Size(), false);
  for (const json::Value& a : actual.GetArray()) {
    bool found = false;
    for (rapidjson::SizeType i = 0; i < expected.Size(); ++i) {
      if (!used[i] && a == expected[i]) {
        used[i] = true;
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

struct Verdict {
  bool pass = false;
  std::string detail;  // what we answered, for the failure report
};

std::string Describe(const absl::StatusOr<json::Value>& value) {
  return value.ok() ? json::Serialize(*value) : value.status().ToString();
}

Verdict Check(const json::Value& query, const JaywayResult* jayway) {
  const std::string selector = query["selector"].GetString();
  const json::Value& document = query["document"];
  const bool ordered = !query.HasMember("ordered") || query["ordered"].IsTrue();
  absl::StatusOr<JsonPath> path = JsonPath::Parse(selector);
  json::Document scratch;

  // What is expected.
  enum class Expect {
    kNotSupported,
    kNotFound,
    kValue
  } expect = Expect::kValue;
  json::Document expected;
  bool from_consensus = false;
  if (jayway != nullptr && jayway->kind != JaywayResult::Kind::kNone) {
    if (jayway->kind == JaywayResult::Kind::kNotSupported) {
      expect = Expect::kNotSupported;
    } else if (jayway->kind == JaywayResult::Kind::kNotFound) {
      expect = Expect::kNotFound;
    } else {
      expected.Parse(jayway->json.c_str());
    }
  } else {
    const json::Value& consensus = query["consensus"];
    if (consensus.IsString() &&
        std::string(consensus.GetString()) == "NOT_SUPPORTED") {
      expect = Expect::kNotSupported;
    } else if (consensus.IsString() &&
               std::string(consensus.GetString()) == "NOT_FOUND") {
      expect = Expect::kNotFound;
    } else {
      expected.CopyFrom(consensus, expected.GetAllocator());
      from_consensus = true;
    }
  }

  if (expect == Expect::kNotSupported) {
    if (!path.ok()) return {true, path.status().ToString()};
    return {false, Describe(path->Evaluate(document, scratch.GetAllocator()))};
  }
  if (!path.ok()) return {false, path.status().ToString()};
  absl::StatusOr<json::Value> value =
      path->Evaluate(document, scratch.GetAllocator());
  if (!value.ok() && value.status().code() != absl::StatusCode::kNotFound) {
    return {false, value.status().ToString()};
  }
  const bool nothing = !value.ok() || (!path->is_single_value() &&
                                       value->IsArray() && value->Empty());
  if (expect == Expect::kNotFound) return {nothing, Describe(value)};
  if (!from_consensus) {
    return {value.ok() && SameMatches(*value, expected, ordered),
            Describe(value)};
  }
  if (expected.IsArray() && expected.Empty() && nothing)
    return {true, Describe(value)};
  if (!value.ok()) return {false, Describe(value)};
  if (path->is_single_value()) {
    if (query.HasMember("scalar-consensus")) {
      return {*value == query["scalar-consensus"], Describe(value)};
    }
    json::Value wrapped(rapidjson::kArrayType);
    wrapped.PushBack(json::Copy(*value, scratch.GetAllocator()),
                     scratch.GetAllocator());
    return {SameMatches(wrapped, expected, ordered), Describe(value)};
  }
  return {SameMatches(*value, expected, ordered), Describe(value)};
}

TEST(JsonPathConformanceTest, AnswersAsJaywayDoes) {
  const char* source = std::getenv("STEPFLOW_SOURCE_DIR");
  const std::filesystem::path dir =
      std::filesystem::path(source != nullptr ? source : "") / ".." / "shared" /
      "conformance" / "jsonpath" / "json-path-comparison";
  if (source == nullptr || !std::filesystem::is_directory(dir)) {
    GTEST_SKIP() << "conformance data not found at " << dir.string()
                 << "; skipping";
  }
  absl::StatusOr<json::Document> suite =
      json::Parse(ReadFile(dir / "regression_suite.json"));
  ASSERT_TRUE(suite.ok()) << suite.status();
  absl::StatusOr<JaywayReport> jayway =
      ReadJaywayReport(ReadFile(dir / "Java_com.jayway.jsonpath.yaml"));
  ASSERT_TRUE(jayway.ok()) << jayway.status();
  ASSERT_TRUE(suite->HasMember("queries") && (*suite)["queries"].IsArray());

  int passed = 0;
  int known = 0;
  std::map<std::string, int> skipped;  // reason -> count
  std::vector<std::string> failures;
  std::set<std::string> seen;
  for (const json::Value& query : (*suite)["queries"].GetArray()) {
    const std::string id = query["id"].GetString();
    seen.insert(id);
    auto it = jayway->results.find(id);
    const JaywayResult* result =
        it == jayway->results.end() ? nullptr : &it->second;
    if (result != nullptr && result->kind == JaywayResult::Kind::kUnreadable) {
      ++skipped["Jayway result in block YAML, not read"];
      continue;
    }
    const bool has_jayway =
        result != nullptr && result->kind != JaywayResult::Kind::kNone;
    if (!has_jayway && !query.HasMember("consensus")) {
      ++skipped[result != nullptr
                    ? absl::StrCat("no consensus and Jayway status '",
                                   result->status, "' without a result")
                    : std::string("no consensus and no Jayway result")];
      continue;
    }
    Verdict verdict = Check(query, result);
    auto difference = KnownDifferences().find(id);
    if (difference != KnownDifferences().end()) {
      ++known;
      EXPECT_FALSE(verdict.pass)
          << id << " is listed as a known difference (" << difference->second
          << ") but now agrees; remove it from the list";
      continue;
    }
    if (verdict.pass) {
      ++passed;
    } else {
      failures.push_back(absl::StrCat(
          id, "  ", query["selector"].GetString(),
          "\n    expected: ", has_jayway ? "Jayway " : "consensus ",
          has_jayway
              ? (result->kind == JaywayResult::Kind::kValue ? result->json
                 : result->kind == JaywayResult::Kind::kNotFound
                     ? "NOT_FOUND"
                     : "NOT_SUPPORTED")
              : json::Serialize(query["consensus"]),
          "\n    actual:   ", verdict.detail));
    }
  }
  for (const auto& [id, _] : KnownDifferences()) {
    EXPECT_TRUE(seen.count(id))
        << "known difference " << id << " is not in the suite";
  }
  int skipped_total = 0;
  std::string reasons;
  for (const auto& [reason, count] : skipped) {
    skipped_total += count;
    absl::StrAppend(&reasons, "\n  skipped ", count, ": ", reason);
  }
  std::cout << "JSONPath conformance over " << seen.size()
            << " queries: passed " << passed << ", known differences " << known
            << ", skipped " << skipped_total << ", not matching "
            << failures.size() << reasons << "\n";
  for (const std::string& failure : failures) ADD_FAILURE() << failure;
}

}  // namespace
}  // namespace stepflow::asl
