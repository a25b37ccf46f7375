// The ASL conformance suite: runs every case of tests/conformance/asl/*.json
// against common/asl's Interpreter and compares the result with what AWS
// Step Functions does (see tests/conformance/README.md for the case format).
//
// Each case runs on a virtual clock: the execution starts, scripted replies
// answer its activity tasks in dispatch order, and when nothing else can
// happen the clock jumps to the earliest armed timer or pending reply.
// Cases marked "requires" name features not built yet and are skipped;
// cases marked "known_difference" record AWS behaviour we do not match yet:
// they are reported, not failed. A summary with every count is printed at
// the end.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/asl/definition.h"
#include "common/asl/interpreter.h"
#include "common/json/json.h"
#include "gtest/gtest.h"

namespace stepflow::asl {
namespace {

// Features a case may require; a case requiring anything else is skipped.
// STEPFLOW_CONFORMANCE_FEATURES (comma-separated) adds features, to try
// the cases of one while it is being built.
const std::set<std::string>& SupportedFeatures() {
  static const std::set<std::string> kSupported = [] {
    std::set<std::string> features = {"intrinsics"};
    if (const char* extra = std::getenv("STEPFLOW_CONFORMANCE_FEATURES")) {
      for (absl::string_view f : absl::StrSplit(extra, ',', absl::SkipEmpty())) {
        features.insert(std::string(f));
      }
    }
    return features;
  }();
  return kSupported;
}

// The execution every case runs as ($$.Execution.*, $$.StateMachine.*).
constexpr char kExecutionArn[] =
    "arn:aws:states:us-east-1:123456789012:execution:ConformanceMachine:conformance-execution";
constexpr char kExecutionName[] = "conformance-execution";
constexpr char kStateMachineArn[] =
    "arn:aws:states:us-east-1:123456789012:stateMachine:ConformanceMachine";
constexpr char kStateMachineName[] = "ConformanceMachine";
constexpr char kRoleArn[] = "arn:aws:iam::123456789012:role/ConformanceRole";
// 2024-01-01T00:00:00Z: the virtual clock's start and the execution's start.
constexpr int64_t kStartUnixSeconds = 1704067200;
constexpr size_t kMaxEvents = 25000;

// One case as loaded; the JSON document owns every value pointed to.
struct Case {
  std::string file;  // e.g. "pass.json"
  std::string name;  // unique across all files
  std::string id;    // the gtest parameter name
  std::string source;
  std::shared_ptr<json::Document> doc;  // the case object
  std::vector<std::string> requires_features;
  std::string known_difference;
  std::string load_error;  // set when the case (or its file) is malformed
};

std::string CasesDir() {
  const char* source = std::getenv("STEPFLOW_SOURCE_DIR");
  return absl::StrCat(source != nullptr ? source : ".", "/tests/conformance/asl");
}

std::string Sanitize(const std::string& text) {
  std::string out;
  for (char c : text) out.push_back(std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return out;
}

const json::Value* Member(const json::Value& object, const char* name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string StringMember(const json::Value& object, const char* name) {
  const json::Value* value = Member(object, name);
  return value != nullptr && value->IsString() ? value->GetString() : "";
}

// Why a case object cannot be run, or "" when it is well-formed.
std::string CheckShape(const json::Value& c) {
  if (!c.IsObject()) return "a case must be an object";
  for (const char* field : {"name", "source"}) {
    const json::Value* value = Member(c, field);
    if (value == nullptr || !value->IsString() || value->GetStringLength() == 0) {
      return absl::StrCat("\"", field, "\" must be a non-empty string");
    }
  }
  const json::Value* definition = Member(c, "definition");
  if (definition == nullptr || !definition->IsObject()) return "\"definition\" must be an object";
  if (Member(c, "input") == nullptr) return "\"input\" is missing";
  const json::Value* expect = Member(c, "expect");
  if (expect == nullptr || !expect->IsObject()) return "\"expect\" must be an object";
  static const std::set<std::string> kStatuses = {"SUCCEEDED", "FAILED", "TIMED_OUT",
                                                  "INVALID_DEFINITION"};
  if (!kStatuses.count(StringMember(*expect, "status"))) {
    return "\"expect.status\" must be SUCCEEDED, FAILED, TIMED_OUT or INVALID_DEFINITION";
  }
  if (const json::Value* events = Member(*expect, "events")) {
    if (!events->IsArray()) return "\"expect.events\" must be an array";
    for (const auto& e : events->GetArray()) {
      if (!e.IsString()) return "\"expect.events\" must hold event type names";
    }
  }
  if (const json::Value* tasks = Member(c, "tasks")) {
    if (!tasks->IsArray()) return "\"tasks\" must be an array";
    for (const auto& t : tasks->GetArray()) {
      if (!t.IsObject()) return "every scripted task reply must be an object";
      const int kinds = (Member(t, "success") != nullptr) + (Member(t, "error") != nullptr) +
                        (Member(t, "timeout") != nullptr) +
                        (Member(t, "activity_does_not_exist") != nullptr);
      if (kinds != 1) {
        return "a task reply has exactly one of success, error, timeout, activity_does_not_exist";
      }
      if (const json::Value* beats = Member(t, "heartbeat_seconds")) {
        if (!beats->IsArray()) return "\"heartbeat_seconds\" must be an array of numbers";
        for (const auto& b : beats->GetArray()) {
          if (!b.IsNumber()) return "\"heartbeat_seconds\" must be an array of numbers";
        }
      }
      if (const json::Value* delay = Member(t, "delay_seconds");
          delay != nullptr && (!delay->IsNumber() || delay->GetDouble() < 0)) {
        return "\"delay_seconds\" must be a non-negative number";
      }
    }
  }
  if (const json::Value* req = Member(c, "requires")) {
    if (!req->IsArray()) return "\"requires\" must be an array of feature names";
  }
  if (const json::Value* missing = Member(c, "missing_activities")) {
    if (!missing->IsArray()) return "\"missing_activities\" must be an array of activity ARNs";
    for (const auto& arn : missing->GetArray()) {
      if (!arn.IsString()) return "\"missing_activities\" must be an array of activity ARNs";
    }
  }
  return "";
}

std::vector<Case> LoadCases() {
  std::vector<Case> cases;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(CasesDir(), ec)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  auto broken = [&](const std::string& file, const std::string& why) {
    Case c;
    c.file = file;
    c.name = absl::StrCat(file, " (unreadable)");
    c.id = Sanitize(c.name);
    c.load_error = why;
    cases.push_back(std::move(c));
  };
  if (files.empty()) broken(CasesDir(), "no case files found (is STEPFLOW_SOURCE_DIR set?)");
  std::set<std::string> ids;
  std::set<std::string> names;
  for (const auto& path : files) {
    const std::string file = path.filename().string();
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    auto parsed = json::Parse(text.str());
    if (!parsed.ok()) {
      broken(file, std::string(parsed.status().message()));
      continue;
    }
    auto doc = std::make_shared<json::Document>(std::move(*parsed));
    if (!doc->IsArray()) {
      broken(file, "a case file must hold an array of cases");
      continue;
    }
    for (rapidjson::SizeType i = 0; i < doc->Size(); ++i) {
      Case c;
      c.file = file;
      auto own = std::make_shared<json::Document>();
      own->CopyFrom((*doc)[i], own->GetAllocator());
      c.doc = own;
      c.name = StringMember(*own, "name");
      if (c.name.empty()) c.name = absl::StrCat("case #", i);
      c.source = StringMember(*own, "source");
      c.known_difference = StringMember(*own, "known_difference");
      c.load_error = CheckShape(*own);
      if (const json::Value* req = Member(*own, "requires"); req != nullptr && req->IsArray()) {
        for (const auto& r : req->GetArray()) {
          if (r.IsString()) c.requires_features.push_back(r.GetString());
        }
      }
      if (!names.insert(c.name).second) {
        c.load_error = absl::StrCat("duplicate case name '", c.name, "'");
      }
      // Names that differ only in punctuation sanitize alike; number them.
      const std::string base = Sanitize(absl::StrCat(path.stem().string(), "__", c.name));
      c.id = base;
      for (int n = 2; !ids.insert(c.id).second; ++n) c.id = absl::StrCat(base, "_", n);
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

// --- Running one case ---------------------------------------------------------

// What an execution did, as far as the cases compare it.
struct Result {
  std::string status;  // "" when the run broke off (see problem)
  std::string output;
  std::string error;
  std::string cause;
  std::vector<std::string> events;
  std::string problem;                     // why the run could not finish
  std::vector<std::string> task_problems;  // scripted replies that did not fit
};

// A scripted reply (or one heartbeat of it) waiting to be delivered at `due`.
struct PendingReply {
  absl::Time due;
  int64_t order = 0;  // dispatch order, breaking ties
  int64_t scheduled_event_id = 0;
  const json::Value* reply = nullptr;
  bool heartbeat = false;
};

class CaseRunner {
 public:
  explicit CaseRunner(const json::Value& c) : case_(c) {
    context_.execution_arn = kExecutionArn;
    context_.execution_name = kExecutionName;
    context_.state_machine_arn = kStateMachineArn;
    context_.state_machine_name = kStateMachineName;
    context_.role_arn = kRoleArn;
    context_.start_time = now_;
    context_.mint_task_token = [](int64_t id) { return absl::StrCat("token-", id); };
    context_.random_unit = [] { return 0.5; };
  }

  Result Run() {
    const std::string definition_text = json::Serialize(*Member(case_, "definition"));
    // A definition AWS refuses: the first diagnostic's code and message.
    if (StringMember(*Member(case_, "expect"), "status") == "INVALID_DEFINITION") {
      const std::vector<Diagnostic> diagnostics = ValidateDefinition(definition_text);
      if (!diagnostics.empty()) {
        result_.status = "INVALID_DEFINITION";
        result_.error = diagnostics.front().code;
        result_.cause = diagnostics.front().message;
        return result_;
      }
    }
    auto definition = Definition::Parse(definition_text);
    if (!definition.ok()) {
      result_.problem =
          absl::StrCat("the definition does not parse: ", definition.status().message());
      return result_;
    }
    definition_ = *definition;
    const std::string input = json::Serialize(*Member(case_, "input"));
    context_.execution_input = input;
    if (const json::Value* tasks = Member(case_, "tasks")) {
      for (const auto& t : tasks->GetArray()) replies_.push_back(&t);
    }
    // Every activity exists but those the case says are missing.
    if (const json::Value* missing = Member(case_, "missing_activities")) {
      for (const auto& arn : missing->GetArray()) missing_activities_.insert(arn.GetString());
    }
    context_.activity_exists = [this](absl::string_view arn) {
      return missing_activities_.count(std::string(arn)) == 0;
    };
    Interpreter interpreter(*definition_, context_);
    Absorb(interpreter.Start(&state_, input, now_));
    while (result_.status.empty() && result_.problem.empty()) {
      if (result_.events.size() > kMaxEvents) {
        result_.problem = absl::StrCat("more than ", kMaxEvents, " events");
        break;
      }
      if (DispatchNext(interpreter)) continue;
      if (!Advance(interpreter)) {
        result_.problem = "stuck: nothing to dispatch, no reply pending and no timer armed";
      }
    }
    if (next_reply_ < replies_.size() && result_.problem.empty()) {
      result_.task_problems.push_back(
          absl::StrCat(replies_.size() - next_reply_, " scripted task replies were not used"));
    }
    return result_;
  }

 private:
  void Absorb(const Outcome& outcome) {
    for (const auto& event : outcome.events) result_.events.push_back(event.type());
    for (const auto& dispatch : outcome.dispatches) dispatched_.push_back(dispatch);
    // A service integration's call is scripted like an activity task: its
    // parameters are the task's input, and a reply may carry the call's
    // answer ("submitted") before the job's end.
    for (const auto& call : outcome.service_calls) {
      ActivityDispatch dispatch;
      dispatch.activity_arn = absl::StrCat("arn:aws:states:::", call.integration.service, ":",
                                           call.integration.resource_name);
      dispatch.scheduled_event_id = call.scheduled_event_id;
      dispatch.task_token = call.task_token;
      dispatch.input = call.parameters;
      dispatched_.push_back(std::move(dispatch));
    }
    for (const auto& timer : outcome.timers) timers_[timer.timer_id] = timer.fire_at;
    for (int64_t id : outcome.cancelled_tasks) cancelled_.insert(id);
    if (!outcome.closed_status.empty()) {
      result_.status = outcome.closed_status;
      result_.output = outcome.output;
      result_.error = outcome.error;
      result_.cause = outcome.cause;
    }
  }

  void Absorb(const absl::StatusOr<Outcome>& outcome, absl::string_view what) {
    if (outcome.ok()) {
      Absorb(*outcome);
    } else if (!absl::IsFailedPrecondition(outcome.status())) {
      result_.problem = absl::StrCat(what, " failed: ", outcome.status().ToString());
    }
  }

  // Pairs the oldest undispatched task with the next scripted reply: the
  // worker picks it up at once (unless "started" is false) and answers after
  // "delay_seconds". False when no task was waiting for dispatch.
  bool DispatchNext(Interpreter& interpreter) {
    if (dispatched_.empty()) return false;
    ActivityDispatch dispatch = std::move(dispatched_.front());
    dispatched_.pop_front();
    const int64_t id = dispatch.scheduled_event_id;
    if (cancelled_.count(id) || !Interpreter::AwaitsTask(state_, id)) return true;
    const int64_t order = next_order_++;
    if (next_reply_ >= replies_.size()) {
      result_.problem = absl::StrCat("no scripted reply for task #", order + 1, " (",
                                     dispatch.activity_arn, ", input ", dispatch.input, ")");
      return true;
    }
    const json::Value* reply = replies_[next_reply_++];
    if (const json::Value* expected = Member(*reply, "input")) {
      auto actual = json::Parse(dispatch.input);
      if (!actual.ok() || !(*actual == *expected)) {
        result_.task_problems.push_back(absl::StrCat("task #", order + 1, " input: expected ",
                                                     json::Serialize(*expected), ", got ",
                                                     dispatch.input));
      }
    }
    if (Member(*reply, "activity_does_not_exist") != nullptr) {
      Absorb(interpreter.ActivityDoesNotExist(&state_, id, dispatch.activity_arn, now_),
             "ActivityDoesNotExist");
      return true;
    }
    const json::Value* started = Member(*reply, "started");
    if (started == nullptr || started->IsTrue()) {
      Absorb(interpreter.ActivityStarted(&state_, id, "conformance-worker", now_),
             "ActivityStarted");
    }
    if (const json::Value* submitted = Member(*reply, "submitted")) {
      Absorb(interpreter.ServiceTaskSubmitted(&state_, id, json::Serialize(*submitted), now_),
             "ServiceTaskSubmitted");
    }
    if (const json::Value* beats = Member(*reply, "heartbeat_seconds")) {
      for (const auto& at : beats->GetArray()) {
        pending_.push_back(PendingReply{now_ + Seconds(at.GetDouble()), order, id, reply, true});
      }
    }
    if (Member(*reply, "timeout") == nullptr) {
      const json::Value* delay = Member(*reply, "delay_seconds");
      pending_.push_back(PendingReply{now_ + Seconds(delay != nullptr ? delay->GetDouble() : 0),
                                      order, id, reply, false});
    }
    return true;
  }

  // Delivers the earliest pending reply or fires the earliest timer; replies
  // win ties. False when neither exists.
  bool Advance(Interpreter& interpreter) {
    auto reply_it = std::min_element(pending_.begin(), pending_.end(),
                                     [](const PendingReply& a, const PendingReply& b) {
                                       return a.due != b.due ? a.due < b.due : a.order < b.order;
                                     });
    auto timer_it =
        std::min_element(timers_.begin(), timers_.end(), [](const auto& a, const auto& b) {
          return a.second != b.second ? a.second < b.second : a.first < b.first;
        });
    const bool have_reply = reply_it != pending_.end();
    const bool have_timer = timer_it != timers_.end();
    if (!have_reply && !have_timer) return false;
    if (have_reply && (!have_timer || reply_it->due <= timer_it->second)) {
      PendingReply pending = *reply_it;
      pending_.erase(reply_it);
      now_ = std::max(now_, pending.due);
      Deliver(interpreter, pending);
      return true;
    }
    const int64_t timer_id = timer_it->first;
    now_ = std::max(now_, timer_it->second);
    timers_.erase(timer_it);
    Absorb(interpreter.TimerFired(&state_, timer_id, now_), "TimerFired");
    return true;
  }

  void Deliver(Interpreter& interpreter, const PendingReply& pending) {
    const int64_t id = pending.scheduled_event_id;
    if (cancelled_.count(id) || !Interpreter::AwaitsTask(state_, id)) return;  // stale
    const json::Value& reply = *pending.reply;
    if (pending.heartbeat) {
      Absorb(interpreter.ActivityHeartbeat(&state_, id, now_), "ActivityHeartbeat");
    } else if (const json::Value* success = Member(reply, "success")) {
      Absorb(interpreter.ActivitySucceeded(&state_, id, json::Serialize(*success), now_),
             "ActivitySucceeded");
    } else {
      Absorb(interpreter.ActivityFailed(&state_, id, StringMember(reply, "error"),
                                        StringMember(reply, "cause"), now_),
             "ActivityFailed");
    }
  }

  static absl::Duration Seconds(double seconds) {
    return absl::Milliseconds(std::llround(seconds * 1000));
  }

  const json::Value& case_;
  ExecutionContext context_;
  ::stepflow::internal::v1::ExecutionState state_;
  absl::Time now_ = absl::FromUnixSeconds(kStartUnixSeconds);
  std::shared_ptr<const Definition> definition_;
  std::vector<const json::Value*> replies_;
  size_t next_reply_ = 0;
  int64_t next_order_ = 0;
  std::deque<ActivityDispatch> dispatched_;
  std::vector<PendingReply> pending_;
  std::map<int64_t, absl::Time> timers_;
  std::set<int64_t> cancelled_;
  std::set<std::string> missing_activities_;
  Result result_;
};

// Every way `result` differs from the case's expectation.
std::vector<std::string> Compare(const json::Value& c, const Result& result) {
  std::vector<std::string> diffs;
  if (!result.problem.empty()) {
    diffs.push_back(absl::StrCat("run: ", result.problem));
    if (!result.events.empty()) {
      diffs.push_back(absl::StrCat("events so far: ", absl::StrJoin(result.events, ", ")));
    }
    return diffs;
  }
  for (const std::string& p : result.task_problems) diffs.push_back(absl::StrCat("tasks: ", p));
  const json::Value& expect = *Member(c, "expect");
  const std::string status = StringMember(expect, "status");
  if (result.status != status) {
    std::string got = result.status;
    if (!result.error.empty()) {
      absl::StrAppend(&got, " (error \"", result.error, "\", cause \"", result.cause, "\")");
    }
    diffs.push_back(absl::StrCat("status: expected ", status, ", got ", got));
  }
  if (const json::Value* output = Member(expect, "output")) {
    auto actual = json::Parse(result.output);
    if (result.status != "SUCCEEDED" || !actual.ok() || !(*actual == *output)) {
      diffs.push_back(absl::StrCat("output: expected ", json::Serialize(*output), ", got ",
                                   result.status == "SUCCEEDED" ? result.output : "(none)"));
    }
  }
  for (const char* field : {"error", "cause"}) {
    const json::Value* expected = Member(expect, field);
    if (expected == nullptr) continue;
    const std::string& actual = std::string(field) == "error" ? result.error : result.cause;
    const std::string want = expected->IsString() ? expected->GetString() : "";
    if (actual != want) {
      diffs.push_back(absl::StrCat(field, ": expected \"", want, "\", got \"", actual, "\""));
    }
  }
  if (const json::Value* events = Member(expect, "events")) {
    std::vector<std::string> want;
    for (const auto& e : events->GetArray()) want.push_back(e.GetString());
    std::vector<std::string> got = result.events;
    const json::Value* any_order = Member(expect, "events_any_order");
    const bool unordered = any_order != nullptr && any_order->IsTrue();
    if (unordered) {
      std::sort(want.begin(), want.end());
      std::sort(got.begin(), got.end());
    }
    if (want != got) {
      diffs.push_back(absl::StrCat("events", unordered ? " (any order)" : "", ":\n    expected ",
                                   absl::StrJoin(want, ", "), "\n    got      ",
                                   absl::StrJoin(got, ", ")));
    }
  }
  return diffs;
}

// --- Reporting ------------------------------------------------------------------

struct Tally {
  int passed = 0;
  int failed = 0;
  int skipped = 0;
  std::vector<std::string> differing;       // known differences still differing
  std::vector<std::string> now_conforming;  // known differences that pass now
};

Tally& GetTally() {
  static Tally tally;
  return tally;
}

class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    const Tally& t = GetTally();
    std::printf(
        "\n[conformance] %d passed, %d failed, %zu known differences, %d skipped (requires an "
        "unsupported feature), %zu known differences now conform\n",
        t.passed, t.failed, t.differing.size(), t.skipped, t.now_conforming.size());
    for (const auto& name : t.differing)
      std::printf("[conformance]   known difference: %s\n", name.c_str());
    for (const auto& name : t.now_conforming) {
      std::printf("[conformance]   now conforms, remove its known_difference: %s\n", name.c_str());
    }
  }
};

[[maybe_unused]] const ::testing::Environment* const kSummary =
    ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

// gtest prints a failing parameter with this rather than as raw bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.file << ": " << c.name; }

class AslConformanceTest : public ::testing::TestWithParam<Case> {};

TEST_P(AslConformanceTest, MatchesAws) {
  const Case& c = GetParam();
  if (!c.load_error.empty()) {
    ++GetTally().failed;
    FAIL() << c.file << ": " << c.name << ": " << c.load_error;
  }
  for (const std::string& feature : c.requires_features) {
    if (!SupportedFeatures().count(feature)) {
      ++GetTally().skipped;
      GTEST_SKIP() << "requires " << feature;
    }
  }
  const Result result = CaseRunner(*c.doc).Run();
  const std::vector<std::string> diffs = Compare(*c.doc, result);
  const std::string label = absl::StrCat(c.file, ": ", c.name);
  if (!c.known_difference.empty()) {
    if (diffs.empty()) {
      GetTally().now_conforming.push_back(label);
      std::printf("[conformance] %s now conforms; remove its known_difference\n", label.c_str());
    } else {
      GetTally().differing.push_back(absl::StrCat(label, " -- ", c.known_difference));
      std::printf("[conformance] known difference in %s (%s):\n  %s\n", label.c_str(),
                  c.known_difference.c_str(), absl::StrJoin(diffs, "\n  ").c_str());
    }
    return;
  }
  if (diffs.empty()) {
    ++GetTally().passed;
    return;
  }
  ++GetTally().failed;
  ADD_FAILURE() << label << "\n  source: " << c.source << "\n  " << absl::StrJoin(diffs, "\n  ");
}

INSTANTIATE_TEST_SUITE_P(Cases, AslConformanceTest, ::testing::ValuesIn(LoadCases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.id; });

}  // namespace
}  // namespace stepflow::asl
