#include "services/execution/map_runs.h"

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/asl/interpreter.h"
#include "common/config/sharding.h"

namespace stepflow::execution {
namespace {

using internal::v1::MapRunChildStatus;
using internal::v1::MapRunSummary;

absl::Status InvalidToken(absl::string_view token) {
  return absl::InvalidArgumentError(absl::StrCat("InvalidToken: Invalid Token: '", token, "'"));
}

int PageSize(int32_t max_results) { return max_results > 0 ? max_results : kDefaultMapRunPage; }

google::protobuf::Timestamp FromMillis(int64_t ms) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(ms / 1000);
  ts.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return ts;
}

void Count(MapRunChildStatus status, int64_t weight, v1::MapRunCounts* counts) {
  switch (status) {
    case internal::v1::CHILD_PENDING:
      counts->set_pending(counts->pending() + weight);
      break;
    case internal::v1::CHILD_RUNNING:
      counts->set_running(counts->running() + weight);
      break;
    case internal::v1::CHILD_SUCCEEDED:
      counts->set_succeeded(counts->succeeded() + weight);
      break;
    case internal::v1::CHILD_FAILED:
      counts->set_failed(counts->failed() + weight);
      break;
    case internal::v1::CHILD_TIMED_OUT:
      counts->set_timed_out(counts->timed_out() + weight);
      break;
    case internal::v1::CHILD_ABORTED:
      counts->set_aborted(counts->aborted() + weight);
      break;
    default:
      break;
  }
}

int64_t ItemCount(const MapRunSummary& run, int index) {
  return index < run.child_item_counts_size() ? run.child_item_counts(index) : 1;
}

}  // namespace

std::string MintMapRunId(absl::string_view execution_arn, int64_t event_id, int64_t part) {
  std::string id = asl::DefaultMapRunId(execution_arn, event_id, part);
  return part >= 1 ? config::RoutableId(execution_arn, id) : id;
}

std::string MapRunChildName(absl::string_view execution_arn, const MapRunSummary& run,
                            int index) {
  return MintMapRunId(execution_arn, run.started_event_id(), 2 + index);
}

std::string MapRunChildArn(const MapRunSummary& run, absl::string_view name) {
  return absl::StrCat(run.arn_prefix(), run.express_children() ? ":express:" : ":execution:",
                      run.run_name(), ":", name);
}

std::string MapRunChildStatusName(MapRunChildStatus status) {
  switch (status) {
    case internal::v1::CHILD_RUNNING:
      return "RUNNING";
    case internal::v1::CHILD_SUCCEEDED:
      return "SUCCEEDED";
    case internal::v1::CHILD_FAILED:
      return "FAILED";
    case internal::v1::CHILD_TIMED_OUT:
      return "TIMED_OUT";
    case internal::v1::CHILD_ABORTED:
      return "ABORTED";
    default:
      return "";
  }
}

std::string MapRunStateMachineArn(const MapRunSummary& run) {
  return absl::StrCat(run.arn_prefix(), ":stateMachine:", run.run_name());
}

void DescribeMapRunSummary(const MapRunSummary& run, absl::string_view execution_arn,
                           v1::DescribeMapRunResponse* response) {
  response->set_map_run_arn(run.map_run_arn());
  response->set_execution_arn(std::string(execution_arn));
  response->set_status(run.status());
  *response->mutable_start_date() = run.start_date();
  if (run.has_stop_date()) *response->mutable_stop_date() = run.stop_date();
  response->set_max_concurrency(run.max_concurrency());
  response->set_tolerated_failure_percentage(
      static_cast<float>(run.tolerated_failure_percentage()));
  response->set_tolerated_failure_count(run.tolerated_failure_count());
  v1::MapRunCounts* items = response->mutable_item_counts();
  v1::MapRunCounts* executions = response->mutable_execution_counts();
  for (int i = 0; i < run.child_status_size(); ++i) {
    Count(run.child_status(i), 1, executions);
    Count(run.child_status(i), ItemCount(run, i), items);
  }
  executions->set_total(run.child_status_size());
  items->set_total(run.total_items());
  response->set_redrive_count(run.redrive_count());
  if (run.has_redrive_date()) *response->mutable_redrive_date() = run.redrive_date();
}

absl::Status ListMapRunsOf(const internal::v1::ExecutionRecord& record,
                           const v1::ListMapRunsRequest& request,
                           v1::ListMapRunsResponse* response) {
  const auto& runs = record.state().map_runs();
  int next = runs.size() - 1;
  if (!request.next_token().empty() &&
      (!absl::SimpleAtoi(request.next_token(), &next) || next < 0 || next >= runs.size())) {
    return InvalidToken(request.next_token());
  }
  const int page = PageSize(request.max_results());
  for (; next >= 0 && response->map_runs_size() < page; --next) {
    const MapRunSummary& run = runs.Get(next);
    v1::MapRunListItem* item = response->add_map_runs();
    item->set_execution_arn(record.execution_arn());
    item->set_map_run_arn(run.map_run_arn());
    item->set_state_machine_arn(record.state_machine_arn());
    *item->mutable_start_date() = run.start_date();
    if (run.has_stop_date()) *item->mutable_stop_date() = run.stop_date();
  }
  if (next >= 0) response->set_next_token(absl::StrCat(next));
  return absl::OkStatus();
}

absl::Status ListMapRunChildren(absl::string_view execution_arn, const MapRunSummary& run,
                                const v1::ListExecutionsRequest& request,
                                v1::ListExecutionsResponse* response) {
  // Sort keys (start ms, index), listed from the largest.
  std::vector<std::pair<int64_t, int>> started;
  for (int i = 0; i < run.child_status_size(); ++i) {
    const std::string status = MapRunChildStatusName(run.child_status(i));
    if (status.empty()) continue;
    if (!request.status_filter().empty() && status != request.status_filter()) continue;
    started.emplace_back(i < run.child_start_ms_size() ? run.child_start_ms(i) : 0, i);
  }
  std::sort(started.begin(), started.end(), std::greater<>());
  size_t first = 0;
  if (!request.next_token().empty()) {
    std::vector<absl::string_view> parts = absl::StrSplit(request.next_token(), '.');
    std::pair<int64_t, int> after;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &after.first) ||
        !absl::SimpleAtoi(parts[1], &after.second) || after.second < 0) {
      return InvalidToken(request.next_token());
    }
    while (first < started.size() && started[first] >= after) ++first;
  }
  const size_t page = static_cast<size_t>(PageSize(request.max_results()));
  size_t i = first;
  for (; i < started.size() && i - first < page; ++i) {
    const int index = started[i].second;
    const std::string name = MapRunChildName(execution_arn, run, index);
    v1::ExecutionListItem* item = response->add_executions();
    item->set_execution_arn(MapRunChildArn(run, name));
    item->set_state_machine_arn(MapRunStateMachineArn(run));
    item->set_name(name);
    item->set_status(MapRunChildStatusName(run.child_status(index)));
    *item->mutable_start_date() = FromMillis(started[i].first);
    if (index < run.child_stop_ms_size() && run.child_stop_ms(index) > 0) {
      *item->mutable_stop_date() = FromMillis(run.child_stop_ms(index));
    }
    item->set_map_run_arn(run.map_run_arn());
    item->set_item_count(static_cast<int32_t>(ItemCount(run, index)));
  }
  if (i < started.size()) {
    response->set_next_token(absl::StrCat(started[i - 1].first, ".", started[i - 1].second));
  }
  return absl::OkStatus();
}

}  // namespace stepflow::execution
