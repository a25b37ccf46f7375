#include "services/execution/map_runs.h"

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace stepflow::execution {
namespace {

using internal::v1::MapRunChild;
using internal::v1::MapRunSummary;

absl::Status InvalidToken(absl::string_view token) {
  return absl::InvalidArgumentError(absl::StrCat("InvalidToken: Invalid Token: '", token, "'"));
}

int PageSize(int32_t max_results) { return max_results > 0 ? max_results : kDefaultMapRunPage; }

int64_t Nanos(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000000 + ts.nanos();
}

// Adds `weight` to the counter of `status` ("" = pending).
void Count(absl::string_view status, int64_t weight, v1::MapRunCounts* counts) {
  if (status.empty()) {
    counts->set_pending(counts->pending() + weight);
  } else if (status == "RUNNING") {
    counts->set_running(counts->running() + weight);
  } else if (status == "SUCCEEDED") {
    counts->set_succeeded(counts->succeeded() + weight);
  } else if (status == "FAILED") {
    counts->set_failed(counts->failed() + weight);
  } else if (status == "TIMED_OUT") {
    counts->set_timed_out(counts->timed_out() + weight);
  } else if (status == "ABORTED") {
    counts->set_aborted(counts->aborted() + weight);
  }
}

}  // namespace

std::string MapRunChildArn(const MapRunSummary& run, const MapRunChild& child) {
  return absl::StrCat(run.arn_prefix(), run.express_children() ? ":express:" : ":execution:",
                      run.run_name(), ":", child.name());
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
  for (int i = 0; i < run.children_size(); ++i) {
    const int64_t item_count = i < run.child_item_counts_size() ? run.child_item_counts(i) : 1;
    Count(run.children(i).status(), 1, executions);
    Count(run.children(i).status(), item_count, items);
  }
  executions->set_total(run.children_size());
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

absl::Status ListMapRunChildren(const MapRunSummary& run, const v1::ListExecutionsRequest& request,
                                v1::ListExecutionsResponse* response) {
  // Sort keys (start nanos, index), listed from the largest.
  std::vector<std::pair<int64_t, int>> started;
  for (int i = 0; i < run.children_size(); ++i) {
    const MapRunChild& child = run.children(i);
    if (child.status().empty()) continue;
    if (!request.status_filter().empty() && child.status() != request.status_filter()) continue;
    started.emplace_back(Nanos(child.start_date()), i);
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
    const MapRunChild& child = run.children(index);
    v1::ExecutionListItem* item = response->add_executions();
    item->set_execution_arn(MapRunChildArn(run, child));
    item->set_state_machine_arn(MapRunStateMachineArn(run));
    item->set_name(child.name());
    item->set_status(child.status());
    *item->mutable_start_date() = child.start_date();
    if (child.has_stop_date()) *item->mutable_stop_date() = child.stop_date();
    item->set_map_run_arn(run.map_run_arn());
    item->set_item_count(index < run.child_item_counts_size() ? run.child_item_counts(index) : 1);
  }
  if (i < started.size()) {
    response->set_next_token(absl::StrCat(started[i - 1].first, ".", started[i - 1].second));
  }
  return absl::OkStatus();
}

}  // namespace stepflow::execution
