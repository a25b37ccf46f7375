// Runs the public JSONata test suite (jsonata-js test/test-suite, kept outside
// the repository in ../shared/conformance/jsonata) against the engine.
//
// Case id: <group>/<file>, plus #<index> for files holding an array of cases.
// Outcomes:
//   - pass: result deep-equal (object key order ignored), undefined when
//     `undefinedResult`, or an error with the expected code;
//   - skipped: $eval cases (Step Functions has no $eval);
//   - newer than 2.0.6: ids in derived/jsonata-2.0.6-failures.json, whose
//     expectations describe later JSONata releases; counted, never failing;
//   - known difference: ids listed with a reason in
//     conformance_known_differences.txt beside this file;
// anything else fails the test. Listed cases that pass are reported.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/json/json.h"
#include "common/jsonata/jsonata.h"
#include "gtest/gtest.h"

namespace stepflow::jsonata {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path ConformanceDir() {
#ifdef STEPFLOW_CONFORMANCE_DIR
  fs::path compiled(STEPFLOW_CONFORMANCE_DIR);
  if (fs::is_directory(compiled)) return compiled;
#endif
  const char* source = std::getenv("STEPFLOW_SOURCE_DIR");
  if (source != nullptr) {
    return fs::path(source) / ".." / "shared" / "conformance";
  }
  return fs::path();
}

bool JsonEqual(const json::Value& a, const json::Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    return a.GetDouble() == b.GetDouble();
  }
  if (a.GetType() != b.GetType()) return false;
  if (a.IsArray()) {
    if (a.Size() != b.Size()) return false;
    for (rapidjson::SizeType i = 0; i < a.Size(); ++i) {
      if (!JsonEqual(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.IsObject()) {
    if (a.MemberCount() != b.MemberCount()) return false;
    for (const auto& m : a.GetObject()) {
      auto it = b.FindMember(m.name);
      if (it == b.MemberEnd() || !JsonEqual(m.value, it->value)) return false;
    }
    return true;
  }
  return a == b;
}

struct Case {
  std::string id;
  std::string group;
  const json::Value* spec;
  fs::path dir;
};

// id -> reason
std::map<std::string, std::string> ReadKnownDifferences() {
  std::map<std::string, std::string> out;
#ifdef STEPFLOW_JSONATA_SOURCE_DIR
  fs::path file =
      fs::path(STEPFLOW_JSONATA_SOURCE_DIR) / "conformance_known_differences.txt";
#else
  fs::path file;
#endif
  const char* source = std::getenv("STEPFLOW_SOURCE_DIR");
  if (!fs::exists(file) && source != nullptr) {
    file = fs::path(source) / "common" / "jsonata" /
           "conformance_known_differences.txt";
  }
  std::istringstream in(ReadFile(file));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    size_t space = l.find_first_of(" \t");
    std::string id(l.substr(0, space));
    std::string reason(space == absl::string_view::npos
                           ? ""
                           : absl::StripAsciiWhitespace(l.substr(space)));
    out[id] = reason;
  }
  return out;
}

struct GroupStats {
  int passed = 0, skipped = 0, newer = 0, known = 0, failed = 0;
};

TEST(JsonataConformanceTest, PassesPublicSuite) {
  const fs::path root = ConformanceDir();
  const fs::path suite = root / "jsonata";
  if (root.empty() || !fs::is_directory(suite / "groups")) {
    GTEST_SKIP() << "JSONata conformance suite not found at " << suite.string()
                 << " (expected ../shared/conformance/jsonata beside the "
                    "source tree); skipping";
  }
  const auto start = std::chrono::steady_clock::now();

  std::set<std::string> newer;
  {
    absl::StatusOr<json::Document> failures = json::Parse(
        ReadFile(root / "derived" / "jsonata-2.0.6-failures.json"));
    ASSERT_TRUE(failures.ok()) << failures.status();
    for (const auto& m : (*failures)["cases"].GetObject()) {
      newer.insert(m.name.GetString());
    }
  }
  const std::map<std::string, std::string> known = ReadKnownDifferences();

  std::map<std::string, json::Document> datasets;
  for (const auto& entry : fs::directory_iterator(suite / "datasets")) {
    if (entry.path().extension() != ".json") continue;
    absl::StatusOr<json::Document> doc = json::Parse(ReadFile(entry.path()));
    ASSERT_TRUE(doc.ok()) << entry.path() << ": " << doc.status();
    datasets.emplace(entry.path().stem().string(), std::move(*doc));
  }

  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(suite / "groups")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());

  std::vector<json::Document> docs;
  docs.reserve(files.size());
  std::vector<Case> cases;
  std::vector<std::tuple<std::string, std::string, std::string>> unreadable;
  for (const auto& path : files) {
    absl::StatusOr<json::Document> doc = json::Parse(ReadFile(path));
    std::string group = path.parent_path().filename().string();
    std::string base = absl::StrCat(group, "/", path.filename().string());
    if (!doc.ok()) {
      // e.g. a lone UTF-16 surrogate escape, which json::Parse refuses.
      unreadable.emplace_back(base, group, std::string(doc.status().message()));
      continue;
    }
    docs.push_back(std::move(*doc));
    const json::Value& d = docs.back();
    if (d.IsArray()) {
      for (rapidjson::SizeType i = 0; i < d.Size(); ++i) {
        cases.push_back({absl::StrCat(base, "#", i), group, &d[i],
                         path.parent_path()});
      }
    } else {
      cases.push_back({base, group, &d, path.parent_path()});
    }
  }

  std::map<std::string, GroupStats> stats;
  std::vector<std::string> failures, now_passing;
  int total_passed = 0, total_skipped = 0, total_newer = 0, total_known = 0;
  int newer_passing = 0;
  for (const Case& c : cases) {
    const json::Value& spec = *c.spec;
    const bool trace = std::getenv("JSONATA_CONFORMANCE_TRACE") != nullptr;
    const auto case_start = std::chrono::steady_clock::now();
    if (trace) std::cerr << c.id << "\n";
    GroupStats& gs = stats[c.group];
    std::string expr_text;
    if (spec.HasMember("expr")) {
      expr_text = spec["expr"].GetString();
    } else {
      expr_text = ReadFile(c.dir / spec["expr-file"].GetString());
    }
    if (absl::StrContains(expr_text, "$eval")) {
      ++gs.skipped;
      ++total_skipped;
      continue;
    }
    const json::Value* input = nullptr;
    if (spec.HasMember("data")) {
      input = &spec["data"];
    } else if (spec.HasMember("dataset") && spec["dataset"].IsString()) {
      auto it = datasets.find(spec["dataset"].GetString());
      ASSERT_NE(it, datasets.end()) << c.id;
      input = &it->second;
    }
    Bindings bindings;
    if (spec.HasMember("bindings") && spec["bindings"].IsObject()) {
      for (const auto& m : spec["bindings"].GetObject()) {
        bindings.emplace_back(m.name.GetString(), &m.value);
      }
    }
    Environment env;
    env.now = absl::FromUnixMillis(1764105762000);
    uint64_t state = 42;
    env.random = [&state]() {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      return static_cast<double>(state >> 11) * 0x1.0p-53;
    };
    env.uuid = []() { return std::string("00000000-0000-4000-8000-000000000000"); };
    if (spec.HasMember("depth")) env.max_depth = spec["depth"].GetInt();
    if (spec.HasMember("timelimit")) env.max_steps = 1'000'000;

    std::string expected_code;
    if (spec.HasMember("code")) expected_code = spec["code"].GetString();
    if (spec.HasMember("error") && spec["error"].HasMember("code")) {
      expected_code = spec["error"]["code"].GetString();
    }
    bool ok = false;
    std::string got;
    json::Document out;
    EvalError error;
    absl::StatusOr<std::unique_ptr<Expression>> expr =
        Expression::Compile(expr_text, &error);
    if (!expr.ok()) {
      got = absl::StrCat("compile error ", expr.status().message());
      ok = !expected_code.empty() && error.code == expected_code;
    } else {
      absl::StatusOr<Result> r =
          (*expr)->Evaluate(input, bindings, env, &out.GetAllocator(), &error);
      if (!r.ok()) {
        got = absl::StrCat("error ", r.status().message());
        ok = !expected_code.empty() && error.code == expected_code;
      } else if (!r->defined) {
        got = "undefined";
        ok = spec.HasMember("undefinedResult") &&
             spec["undefinedResult"].IsTrue();
      } else {
        got = json::Serialize(r->value);
        ok = spec.HasMember("result") && JsonEqual(r->value, spec["result"]);
      }
    }
    if (trace) {
      std::cerr << "  " << std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - case_start)
                               .count()
                << " s\n";
    }
    const bool is_newer = newer.count(c.id) > 0;
    auto known_it = known.find(c.id);
    if (is_newer) {
      ++gs.newer;
      ++total_newer;
      if (ok) ++newer_passing;
    } else if (known_it != known.end()) {
      ++gs.known;
      ++total_known;
      if (ok) now_passing.push_back(c.id);
    } else if (ok) {
      ++gs.passed;
      ++total_passed;
    } else {
      ++gs.failed;
      std::string want;
      if (!expected_code.empty()) {
        want = absl::StrCat("error ", expected_code);
      } else if (spec.HasMember("result")) {
        want = json::Serialize(spec["result"]);
      } else {
        want = "undefined";
      }
      failures.push_back(absl::StrCat(c.id, "\n    expr: ", expr_text,
                                      "\n    want: ", want.substr(0, 300),
                                      "\n    got:  ", got.substr(0, 300)));
    }
  }
  for (const auto& [id, group, why] : unreadable) {
    if (known.count(id) > 0) {
      ++stats[group].known;
      ++total_known;
    } else {
      ++stats[group].failed;
      failures.push_back(absl::StrCat(id, "\n    unreadable: ", why));
    }
  }
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();

  std::cout << "JSONata conformance by group (passed / skipped $eval / newer "
               "than 2.0.6 / known differences / failed):\n";
  for (const auto& [group, s] : stats) {
    std::cout << "  " << group << ": " << s.passed << " / " << s.skipped
              << " / " << s.newer << " / " << s.known << " / " << s.failed
              << "\n";
  }
  std::cout << "JSONata conformance: " << cases.size() << " cases, "
            << total_passed << " passed, " << total_skipped
            << " skipped ($eval), " << total_newer << " newer than 2.0.6 ("
            << newer_passing << " of them pass anyway), " << total_known
            << " known differences, " << failures.size() << " failed, in "
            << seconds << " s\n";
  for (const auto& id : now_passing) {
    std::cout << "now passes (remove from the known differences): " << id
              << "\n";
  }
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_LT(seconds, 10.0);
}

}  // namespace
}  // namespace stepflow::jsonata
