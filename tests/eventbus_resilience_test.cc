// Event delivery under failure and at scale, end to end: a real gateway,
// shard servers, eventbus replicas and the Kafka-protocol broker
// (stepflow-kafka-mock), each test on a cluster of its own.
//
// What is checked is what the Step Functions API shows: the dispatcher
// names each execution after (event id, rule ARN, target id)
// (eventbus::TargetExecutionName), so the set of execution names of a
// target's state machine says exactly which (event, rule) pairs were
// delivered — a missing name is a lost delivery, an unexpected one a wrong
// match.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/json/json.h"
#include "gtest/gtest.h"
#include "services/eventbus/dispatcher.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"
#include "tests/fixture/api_client.h"
#include "tests/fixture/child_process.h"
#include "tests/fixture/cluster.h"

namespace stepflow {
namespace {

constexpr char kPassMachine[] =
    R"({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})";
// The dispatcher's consumer group (DispatcherOptions::group_id), which the
// fixture's eventbus joins.
constexpr char kConsumerGroup[] = "stepflow-eventbus";

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0 ? parsed
                                                                             : fallback;
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout = absl::Seconds(20)) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// The value of the counter line `series` (e.g. `name{label="x"}`) of a
// Prometheus text page; 0 when absent.
int64_t CounterValue(const std::string& page, const std::string& series) {
  const std::string needle = series + " ";
  const size_t at = page.find(needle);
  if (at == std::string::npos) return 0;
  const size_t end = page.find('\n', at);
  double value = 0;
  if (!absl::SimpleAtod(page.substr(at + needle.size(), end - at - needle.size()), &value)) {
    return 0;
  }
  return static_cast<int64_t>(value);
}

constexpr char kStartedSeries[] = R"(stepflow_eventbus_deliveries_total{outcome="started"})";

class EventBusResilienceTest : public ::testing::Test {
 protected:
  void StartCluster() {
    auto cluster = testing::TestCluster::Start({.shard_servers = 2, .logical_shards = 8});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    events_ = v1::EventBridge::NewStub(cluster_->GatewayChannel());
    states_ = std::make_unique<testing::StepFunctionsClient>(cluster_->GatewayChannel());
  }

  void TearDown() override {
    if (HasFailure() && cluster_ != nullptr) {
      std::cerr << cluster_->Logs();
      for (const auto& replica : replicas_) {
        std::cerr << "---- " << replica->name() << " ----\n" << replica->LogTail(3000) << "\n";
      }
    }
    // Extra replicas first, then the cluster (its destructor stops the rest).
    for (auto& replica : replicas_) replica->Stop(SIGTERM, absl::Seconds(10));
    replicas_.clear();
    cluster_.reset();
  }

  // One more eventbus replica in the fixture's consumer group, with its
  // metrics on `metrics_port`; returns once it has partitions of the
  // default bus assigned (so the group has been rebalanced over it).
  testing::ChildProcess* StartReplica(const std::string& name, int metrics_port) {
    auto replica = testing::ChildProcess::Start(
        name,
        {STEPFLOW_EVENTBUS_BIN, "--kafka-brokers", cluster_->kafka_bootstrap(), "--gateway",
         cluster_->gateway_address(), "--group-id", kConsumerGroup, "--listen", "127.0.0.1:0",
         "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)},
        absl::StrCat(cluster_->work_dir(), "/", name, ".log"));
    EXPECT_TRUE(replica.ok()) << replica.status();
    if (!replica.ok()) return nullptr;
    replicas_.push_back(std::move(*replica));
    testing::ChildProcess* process = replicas_.back().get();
    auto assigned = process->WaitForOutput("stepflow.events.default/", absl::Seconds(40));
    EXPECT_TRUE(assigned.ok()) << assigned.status() << "\n" << process->LogTail();
    return assigned.ok() ? process : nullptr;
  }

  std::string PutRule(const std::string& name, const std::string& pattern) {
    v1::PutRuleRequest request;
    request.set_name(name);
    request.set_event_pattern(pattern);
    v1::PutRuleResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status status = events_->PutRule(&context, request, &response);
    EXPECT_TRUE(status.ok()) << name << ": " << status.error_message();
    return response.rule_arn();
  }

  bool PutTarget(const std::string& rule, const std::string& target_id,
                 const std::string& machine) {
    v1::PutTargetsRequest request;
    request.set_rule(rule);
    v1::Target* target = request.add_targets();
    target->set_id(target_id);
    target->set_arn(machine);
    target->set_input_path("$.detail");
    v1::PutTargetsResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status status = events_->PutTargets(&context, request, &response);
    EXPECT_TRUE(status.ok()) << rule << ": " << status.error_message();
    EXPECT_EQ(response.failed_entry_count(), 0) << rule;
    return status.ok() && response.failed_entry_count() == 0;
  }

  // Puts `entries` on the default bus through `stub`; the event ids of the
  // accepted entries, in order ("" for a rejected one).
  static std::vector<std::string> PutEvents(v1::EventBridge::Stub* stub,
                                            const std::vector<v1::PutEventsRequestEntry>& entries) {
    v1::PutEventsRequest request;
    for (const auto& entry : entries) *request.add_entries() = entry;
    v1::PutEventsResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status status = stub->PutEvents(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> ids(entries.size());
    if (!status.ok()) return ids;
    EXPECT_EQ(response.entries_size(), static_cast<int>(entries.size()));
    for (int i = 0; i < response.entries_size() && i < static_cast<int>(ids.size()); ++i) {
      EXPECT_TRUE(response.entries(i).error_code().empty())
          << response.entries(i).error_code() << ": " << response.entries(i).error_message();
      ids[i] = response.entries(i).event_id();
    }
    return ids;
  }

  // Every execution of `machine`, by name.
  std::map<std::string, v1::ExecutionListItem> Executions(const std::string& machine) {
    std::map<std::string, v1::ExecutionListItem> executions;
    v1::ListExecutionsRequest request;
    request.set_state_machine_arn(machine);
    request.set_max_results(1000);
    for (int page = 0; page < 1000; ++page) {
      v1::ListExecutionsResponse response;
      grpc::Status status =
          states_->Call(&v1::StepFunctions::Stub::ListExecutions, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const v1::ExecutionListItem& item : response.executions()) {
        const bool fresh = executions.emplace(item.name(), item).second;
        EXPECT_TRUE(fresh) << "listed twice: " << item.name();
      }
      if (response.next_token().empty()) break;
      request.set_next_token(response.next_token());
    }
    return executions;
  }

  std::unique_ptr<testing::TestCluster> cluster_;
  std::unique_ptr<v1::EventBridge::Stub> events_;
  std::unique_ptr<testing::StepFunctionsClient> states_;
  std::vector<std::unique_ptr<testing::ChildProcess>> replicas_;
};

v1::PutEventsRequestEntry Entry(const std::string& detail_type, const std::string& detail) {
  v1::PutEventsRequestEntry entry;
  entry.set_source("shop.orders");
  entry.set_detail_type(detail_type);
  entry.set_detail(detail);
  return entry;
}

// Two eventbus replicas share the default bus's partitions; one is killed
// (SIGKILL) while it is delivering and while events are still being put.
// The survivor takes its partitions over and delivers what the dead one
// had not committed: every accepted event starts exactly one execution,
// none is missing. Events redelivered after the kill (started by the dead
// replica but not committed) start nothing twice.
TEST_F(EventBusResilienceTest, SurvivingReplicaFinishesDeliveriesOfAKilledOne) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const int total_events = EnvInt("STEPFLOW_RESILIENCE_EVENTS", 400);
  const std::string machine = states_->CreateStateMachine("on-order", kPassMachine);
  const std::string rule_arn = PutRule("orders", R"({"source": ["shop.orders"]})");
  ASSERT_TRUE(PutTarget("orders", "start-order", machine));

  const int metrics_port = testing::PickFreePort();
  testing::ChildProcess* doomed = StartReplica("eventbus-doomed", metrics_port);
  ASSERT_NE(doomed, nullptr);
  const std::string metrics_address = absl::StrCat("127.0.0.1:", metrics_port);

  // Events go in batches of 10 from a thread of their own, paced so that
  // deliveries run while events still arrive.
  absl::Mutex mu;
  std::vector<std::string> accepted;  // guarded by mu
  std::atomic<bool> putting_done{false};
  std::thread putter([&] {
    auto stub = v1::EventBridge::NewStub(cluster_->GatewayChannel());
    for (int batch = 0; batch * 10 < total_events; ++batch) {
      std::vector<v1::PutEventsRequestEntry> entries;
      for (int i = batch * 10; i < std::min(total_events, batch * 10 + 10); ++i) {
        entries.push_back(Entry("OrderPlaced", absl::StrCat(R"({"n": )", i, "}")));
      }
      std::vector<std::string> ids = PutEvents(stub.get(), entries);
      {
        absl::MutexLock lock(&mu);
        for (const std::string& id : ids) {
          if (!id.empty()) accepted.push_back(id);
        }
      }
      absl::SleepFor(absl::Milliseconds(25));
    }
    putting_done = true;
  });

  // Kill the replica once it has started some executions, but well before
  // all events are in.
  const int kill_after = std::max(10, total_events / 10);
  int64_t started_by_doomed = 0;
  const absl::Time kill_by = absl::Now() + absl::Seconds(40);
  while (absl::Now() < kill_by && !putting_done) {
    auto page = testing::HttpGet(metrics_address, "/metrics");
    if (page.ok()) started_by_doomed = CounterValue(*page, kStartedSeries);
    if (started_by_doomed >= kill_after) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  doomed->Kill();
  size_t accepted_at_kill = 0;
  {
    absl::MutexLock lock(&mu);
    accepted_at_kill = accepted.size();
  }
  const size_t existing_at_kill = Executions(machine).size();
  EXPECT_GE(started_by_doomed, kill_after) << "the replica was not delivering when killed";
  if (putting_done.load()) std::cout << "note: all events were in before the kill\n";
  std::cout << "replica killed: it had started " << started_by_doomed
            << " executions; accepted events " << accepted_at_kill << ", executions "
            << existing_at_kill << ", so " << (accepted_at_kill - existing_at_kill)
            << " events were in flight" << std::endl;
  putter.join();

  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu);
    ids = accepted;
  }
  ASSERT_EQ(ids.size(), static_cast<size_t>(total_events));
  std::set<std::string> expected;
  for (const std::string& id : ids) {
    expected.insert(eventbus::TargetExecutionName(id, rule_arn, "start-order"));
  }
  ASSERT_EQ(expected.size(), ids.size()) << "event ids are not distinct";

  // The survivor picks the dead replica's partitions up after the session
  // timeout (6 s) and a rebalance.
  std::map<std::string, v1::ExecutionListItem> executions;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    executions = Executions(machine);
    if (executions.size() >= expected.size()) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  // Let late redeliveries (if any were to start something twice) show.
  absl::SleepFor(absl::Seconds(1));
  executions = Executions(machine);
  std::vector<std::string> missing, unexpected;
  for (const std::string& name : expected) {
    if (executions.count(name) == 0) missing.push_back(name);
  }
  for (const auto& [name, item] : executions) {
    if (expected.count(name) == 0) unexpected.push_back(name);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " events started nothing, e.g. "
                               << missing.front();
  EXPECT_TRUE(unexpected.empty()) << unexpected.size() << " executions of no event, e.g. "
                                  << unexpected.front();
  EXPECT_EQ(executions.size(), expected.size());
}

// The broker stops answering (SIGSTOP of stepflow-kafka-mock, as a hung
// or partitioned broker would) for a few seconds while PutEvents calls
// run, then answers again. PutEvents must fail cleanly (a call error or
// per-entry errors) or succeed; afterwards every acknowledged event starts
// exactly one execution, and every execution belongs to an event that was
// put — an entry whose call failed may still have reached Kafka (the
// gateway cannot take a record back), which the test counts but allows.
TEST_F(EventBusResilienceTest, PausedBrokerLosesNoAcknowledgedEvent) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const std::string machine = states_->CreateStateMachine("on-order", kPassMachine);
  const std::string rule_arn = PutRule("orders", R"({"source": ["shop.orders"]})");
  ASSERT_TRUE(PutTarget("orders", "start-order", machine));
  const pid_t broker = cluster_->kafka_pid();
  ASSERT_GT(broker, 0);

  // Delivery must be running before the broker stops: a group join that
  // the pause interrupts has been seen to leave the eventbus without
  // partitions for over a minute, which is not what this test is about.
  std::map<int, std::string> acknowledged;  // n -> event id; guarded by mu
  {
    const std::vector<std::string> warm_up =
        PutEvents(events_.get(), {Entry("OrderPlaced", R"({"n": -1})")});
    ASSERT_FALSE(warm_up[0].empty());
    acknowledged[-1] = warm_up[0];
    const std::string name = eventbus::TargetExecutionName(warm_up[0], rule_arn, "start-order");
    const absl::Time deadline = absl::Now() + absl::Seconds(40);
    while (Executions(machine).count(name) == 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(200));
    }
    ASSERT_EQ(Executions(machine).count(name), 1u) << "the warm-up event started nothing";
  }

  // Whatever happens below, the broker runs again before teardown.
  struct Resume {
    pid_t pid;
    ~Resume() { kill(pid, SIGCONT); }
  } resume{broker};

  constexpr int kCallers = 2;
  std::atomic<bool> stop{false};
  std::atomic<int> next_n{0};
  absl::Mutex mu;
  std::set<int> failed;                     // guarded by mu
  int failed_calls = 0;                     // guarded by mu
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      auto stub = v1::EventBridge::NewStub(cluster_->GatewayChannel());
      while (!stop.load()) {
        const int first = next_n.fetch_add(10);
        v1::PutEventsRequest request;
        for (int n = first; n < first + 10; ++n) {
          *request.add_entries() = Entry("OrderPlaced", absl::StrCat(R"({"n": )", n, "}"));
        }
        v1::PutEventsResponse response;
        grpc::ClientContext context;
        SetDeadline(&context, absl::Seconds(3));
        grpc::Status status = stub->PutEvents(&context, request, &response);
        absl::MutexLock lock(&mu);
        if (!status.ok()) {
          ++failed_calls;
          for (int n = first; n < first + 10; ++n) failed.insert(n);
          continue;
        }
        EXPECT_EQ(response.entries_size(), 10);
        for (int i = 0; i < response.entries_size(); ++i) {
          const auto& entry = response.entries(i);
          if (entry.error_code().empty()) {
            EXPECT_FALSE(entry.event_id().empty());
            acknowledged[first + i] = entry.event_id();
          } else {
            failed.insert(first + i);
          }
        }
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
  }
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(kill(broker, SIGSTOP), 0);  // no ASSERT: the callers must be joined
  absl::SleepFor(absl::Seconds(6));
  EXPECT_EQ(kill(broker, SIGCONT), 0);
  absl::SleepFor(absl::Seconds(4));
  stop = true;
  for (auto& caller : callers) caller.join();

  std::map<int, std::string> acked;
  std::set<int> failed_entries;
  int calls_failed = 0;
  {
    absl::MutexLock lock(&mu);
    acked = acknowledged;
    failed_entries = failed;
    calls_failed = failed_calls;
  }
  ASSERT_FALSE(acked.empty());
  std::cout << "broker paused 6 s: " << acked.size() << " entries acknowledged, "
            << failed_entries.size() << " failed (" << calls_failed << " whole calls)"
            << std::endl;
  std::map<std::string, int> n_of_name;
  for (const auto& [n, id] : acked) {
    n_of_name[eventbus::TargetExecutionName(id, rule_arn, "start-order")] = n;
  }

  // Every acknowledged event's execution, within a bounded wait.
  std::map<std::string, v1::ExecutionListItem> executions;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  auto all_there = [&] {
    for (const auto& [name, n] : n_of_name) {
      if (executions.count(name) == 0) return false;
    }
    return true;
  };
  while (absl::Now() < deadline) {
    executions = Executions(machine);
    if (all_there()) break;
    absl::SleepFor(absl::Milliseconds(500));
  }
  absl::SleepFor(absl::Seconds(2));
  executions = Executions(machine);
  size_t missing = 0;
  for (const auto& [name, n] : n_of_name) {
    if (executions.count(name) == 0) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "acknowledged events that started nothing";

  // Every other execution is of an entry whose call failed, and no entry
  // has two (by its detail.n, the execution's input).
  std::map<int, int> executions_of_n;
  int stored_despite_failure = 0;
  for (const auto& [name, item] : executions) {
    auto known = n_of_name.find(name);
    int n = -1;
    if (known != n_of_name.end()) {
      n = known->second;
    } else {
      v1::DescribeExecutionRequest request;
      request.set_execution_arn(item.execution_arn());
      v1::DescribeExecutionResponse described;
      grpc::Status status =
          states_->Call(&v1::StepFunctions::Stub::DescribeExecution, request, &described);
      ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
      absl::StatusOr<json::Document> input = json::Parse(described.input());
      ASSERT_TRUE(input.ok() && input->IsObject() && input->HasMember("n") &&
                  (*input)["n"].IsInt())
          << described.input();
      n = (*input)["n"].GetInt();
      EXPECT_EQ(failed_entries.count(n), 1u)
          << name << " is of entry " << n << ", which was neither acknowledged nor failed";
      ++stored_despite_failure;
    }
    EXPECT_EQ(++executions_of_n[n], 1) << "entry " << n << " started two executions";
  }
  std::cout << executions.size() << " executions: " << acked.size() - missing
            << " of acknowledged events, " << stored_despite_failure
            << " of entries whose PutEvents failed" << std::endl;
}

// The rules of the routing test and which of them an event matches.
//
//   - kRangeRules rules on detail.n: rule r matches [RangeStart(r),
//     RangeStart(r+1)), so every event matches exactly one of them;
//   - kPrefixRules rules on detail.tag: rule p matches the prefix "g<p>";
//     every 20th event has a tag "g<0..99>", which matches one or two of
//     them (g37: g3 and g37; g83: g8);
//   - kExactRules rules on the detail-type: rule e matches "Kind<e>"; the
//     events with n % 1000 < kExactRules have one.
constexpr int kRangeRules = 900;
constexpr int kPrefixRules = 50;
constexpr int kExactRules = 50;
// State machines the targets start: range rule r starts machine r %
// kRangeMachines; the prefix and exact rules have one machine each.
constexpr int kRangeMachines = 8;

int64_t RangeStart(int rule, int events) {
  return static_cast<int64_t>(rule) * events / kRangeRules;
}

std::string Tag(int n) { return n % 20 == 0 ? absl::StrCat("g", (n / 20) % 100) : ""; }

std::string DetailType(int n) {
  return n % 1000 < kExactRules ? absl::StrCat("Kind", n % 1000) : "Plain";
}

// Rule names (in rule order) that event n matches.
std::vector<std::string> MatchingRules(int n, int events) {
  std::vector<std::string> rules;
  // The one range: the largest r with RangeStart(r) <= n.
  int low = 0, high = kRangeRules - 1;
  while (low < high) {
    const int mid = (low + high + 1) / 2;
    if (RangeStart(mid, events) <= n) {
      low = mid;
    } else {
      high = mid - 1;
    }
  }
  rules.push_back(absl::StrCat("range-", low));
  const std::string tag = Tag(n);
  for (int p = 0; p < kPrefixRules && !tag.empty(); ++p) {
    if (absl::StartsWith(tag, absl::StrCat("g", p))) rules.push_back(absl::StrCat("prefix-", p));
  }
  if (n % 1000 < kExactRules) rules.push_back(absl::StrCat("exact-", n % 1000));
  return rules;
}

// 10,000 events against 1,000 rules of one bus, every rule with a target:
// each (event, rule) pair that matches must start exactly one execution,
// and no other execution may exist. Every matching pair is an execution of
// its own (11,200 here), so what is checked is the exact set of
// execution names per state machine, not only counts. Two eventbus
// replicas deliver (STEPFLOW_ROUTING_REPLICAS=1: the fixture's alone).
// Prints events/s and executions/s from the first PutEvents to the last
// execution's start (about 250 executions/s with two replicas here).
// STEPFLOW_ROUTING_EVENTS sets another number of events.
TEST_F(EventBusResilienceTest, TenThousandEventsAgainstAThousandRules) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  const int total_events = EnvInt("STEPFLOW_ROUTING_EVENTS", 10000);
  ASSERT_GE(total_events, kRangeRules);

  std::vector<std::string> range_machines;
  for (int m = 0; m < kRangeMachines; ++m) {
    range_machines.push_back(
        states_->CreateStateMachine(absl::StrCat("range-", m), kPassMachine));
  }
  const std::string prefix_machine = states_->CreateStateMachine("prefix", kPassMachine);
  const std::string exact_machine = states_->CreateStateMachine("exact", kPassMachine);

  struct RuleSpec {
    std::string name;
    std::string pattern;
    std::string machine;
    std::string arn;  // once put
  };
  std::vector<RuleSpec> specs;
  for (int r = 0; r < kRangeRules; ++r) {
    const std::string range = absl::StrCat(R"([">=", )", RangeStart(r, total_events),
                                           R"(, "<", )", RangeStart(r + 1, total_events), "]");
    specs.push_back(
        {absl::StrCat("range-", r),
         absl::StrCat(R"({"source": ["shop.orders"], "detail": {"n": [{"numeric": )", range,
                      "}]}}"),
         range_machines[r % kRangeMachines], ""});
  }
  for (int p = 0; p < kPrefixRules; ++p) {
    specs.push_back({absl::StrCat("prefix-", p),
                     absl::StrCat(R"({"detail": {"tag": [{"prefix": "g)", p, R"("}]}})"),
                     prefix_machine, ""});
  }
  for (int e = 0; e < kExactRules; ++e) {
    specs.push_back({absl::StrCat("exact-", e),
                     absl::StrCat(R"({"detail-type": ["Kind)", e, R"("]})"), exact_machine, ""});
  }
  ASSERT_EQ(specs.size(), 1000u);
  // A second replica shares the bus's partitions with the fixture's.
  if (EnvInt("STEPFLOW_ROUTING_REPLICAS", 2) > 1) {
    ASSERT_NE(StartReplica("eventbus-2", testing::PickFreePort()), nullptr);
  }

  // Rules and targets from many callers at once: each call waits until the
  // gateway's catalog has read its write back from Kafka.
  const absl::Time rules_started = absl::Now();
  constexpr int kRuleCallers = 16;
  {
    std::vector<std::thread> callers;
    for (int c = 0; c < kRuleCallers; ++c) {
      callers.emplace_back([&, c] {
        for (size_t i = c; i < specs.size(); i += kRuleCallers) {
          specs[i].arn = PutRule(specs[i].name, specs[i].pattern);
          PutTarget(specs[i].name, "t", specs[i].machine);
        }
      });
    }
    for (auto& caller : callers) caller.join();
  }
  ASSERT_FALSE(HasFailure());
  std::cout << "1000 rules with targets put in " << (absl::Now() - rules_started) << std::endl;
  std::map<std::string, const RuleSpec*> spec_by_name;
  for (const RuleSpec& spec : specs) spec_by_name[spec.name] = &spec;

  // Events in batches of 10, several callers in parallel.
  constexpr int kCallers = 4;
  std::vector<std::string> ids(total_events);
  const absl::Time put_started = absl::Now();
  {
    std::vector<std::thread> callers;
    for (int c = 0; c < kCallers; ++c) {
      callers.emplace_back([&, c] {
        auto stub = v1::EventBridge::NewStub(cluster_->GatewayChannel());
        for (int first = c * 10; first < total_events; first += kCallers * 10) {
          std::vector<v1::PutEventsRequestEntry> entries;
          for (int n = first; n < std::min(total_events, first + 10); ++n) {
            const std::string tag = Tag(n);
            const std::string tag_field =
                tag.empty() ? "" : absl::StrCat(R"(, "tag": ")", tag, R"(")");
            entries.push_back(
                Entry(DetailType(n), absl::StrCat(R"({"n": )", n, tag_field, "}")));
          }
          std::vector<std::string> put = PutEvents(stub.get(), entries);
          for (size_t i = 0; i < put.size(); ++i) ids[first + i] = put[i];
        }
      });
    }
    for (auto& caller : callers) caller.join();
  }
  const absl::Duration put_took = absl::Now() - put_started;
  ASSERT_FALSE(HasFailure());
  std::cout << total_events << " events put in " << put_took << " ("
            << total_events / absl::ToDoubleSeconds(put_took) << " events/s)" << std::endl;

  // Expected execution names, by state machine.
  std::map<std::string, std::set<std::string>> expected;
  size_t expected_total = 0;
  for (int n = 0; n < total_events; ++n) {
    for (const std::string& rule : MatchingRules(n, total_events)) {
      const RuleSpec* spec = spec_by_name.at(rule);
      expected[spec->machine].insert(eventbus::TargetExecutionName(ids[n], spec->arn, "t"));
      ++expected_total;
    }
  }

  // Wait for the count; the listing is only repeated every few seconds,
  // since it competes with the deliveries for the two cores.
  std::map<std::string, std::map<std::string, v1::ExecutionListItem>> listed;
  const absl::Time deadline = absl::Now() + absl::Seconds(75);
  while (true) {
    size_t count = 0;
    listed.clear();
    for (const auto& [machine, names] : expected) {
      listed[machine] = Executions(machine);
      count += listed[machine].size();
    }
    if (count >= expected_total || absl::Now() > deadline) break;
    absl::SleepFor(absl::Seconds(3));
  }

  absl::Time last_start = absl::InfinitePast();
  size_t missing = 0, unexpected = 0, listed_total = 0;
  std::string example;
  for (const auto& [machine, names] : expected) {
    const auto& executions = listed[machine];
    listed_total += executions.size();
    for (const std::string& name : names) {
      if (executions.count(name) == 0) {
        ++missing;
        if (example.empty()) example = absl::StrCat("missing ", name, " of ", machine);
      }
    }
    for (const auto& [name, item] : executions) {
      last_start = std::max(last_start, absl::FromUnixSeconds(item.start_date().seconds()) +
                                            absl::Nanoseconds(item.start_date().nanos()));
      if (names.count(name) == 0) {
        ++unexpected;
        if (example.empty()) example = absl::StrCat("unexpected ", name, " of ", machine);
      }
    }
  }
  EXPECT_EQ(missing, 0u) << example;
  EXPECT_EQ(unexpected, 0u) << example;
  EXPECT_EQ(listed_total, expected_total);
  const double seconds = absl::ToDoubleSeconds(last_start - put_started);
  std::cout << total_events << " events, " << expected_total
            << " (event, rule) matches: last execution started "
            << absl::Seconds(seconds) << " after the first PutEvents: "
            << total_events / seconds << " events/s, " << expected_total / seconds
            << " executions/s" << std::endl;
}

}  // namespace
}  // namespace stepflow
