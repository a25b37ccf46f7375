// What the Map Run APIs report of a map run, computed from the summary the
// interpreter keeps in its parent execution's state
// (internal::v1::MapRunSummary): DescribeMapRun's counts, ListMapRuns and
// the child executions ListExecutions(map_run_arn) lists. Pure functions on
// messages; the shard core finds the records and holds the locks.
#ifndef STEPFLOW_SERVICES_EXECUTION_MAP_RUNS_H_
#define STEPFLOW_SERVICES_EXECUTION_MAP_RUNS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "stepflow/internal/v1/shard.pb.h"
#include "stepflow/v1/states.pb.h"

namespace stepflow::execution {

// Pages of ListMapRuns and ListExecutions(map_run_arn) without max_results.
inline constexpr int kDefaultMapRunPage = 100;

// The ids of the map run that event `event_id` of execution `execution_arn`
// starts (asl::ExecutionContext::mint_id): part 1, the run's id, and parts
// 2 + i, the names of its children, carry the execution's routing hash
// (config::RoutableId), so their ARNs alone find the execution's shard.
std::string MintMapRunId(absl::string_view execution_arn, int64_t event_id, int64_t part);

// The name of child `index` of `run`, a map run of `execution_arn`.
std::string MapRunChildName(absl::string_view execution_arn,
                            const internal::v1::MapRunSummary& run, int index);
// arn:...:execution:<machine>/<label>:<child name> (":express:" for EXPRESS
// children), as AWS names the child executions of a map run.
std::string MapRunChildArn(const internal::v1::MapRunSummary& run, absl::string_view name);
// "RUNNING", "SUCCEEDED", ... as the API shows a child's status; "" pending.
std::string MapRunChildStatusName(internal::v1::MapRunChildStatus status);
// arn:...:stateMachine:<machine>/<label>: the state machine of the children.
std::string MapRunStateMachineArn(const internal::v1::MapRunSummary& run);

// DescribeMapRun of `run`, a map run of execution `execution_arn`.
void DescribeMapRunSummary(const internal::v1::MapRunSummary& run,
                           absl::string_view execution_arn, v1::DescribeMapRunResponse* response);

// ListMapRuns of `record`: newest first; the token is the position (oldest
// first, so it stays valid as runs are added) of the next run to list.
absl::Status ListMapRunsOf(const internal::v1::ExecutionRecord& record,
                           const v1::ListMapRunsRequest& request, v1::ListMapRunsResponse* response);

// ListExecutions(map_run_arn) of `run`, a map run of `execution_arn`: the
// children that have started, newest first (start time, then index),
// filtered by status; the token is the sort key of the last one listed.
absl::Status ListMapRunChildren(absl::string_view execution_arn,
                                const internal::v1::MapRunSummary& run,
                                const v1::ListExecutionsRequest& request,
                                v1::ListExecutionsResponse* response);

}  // namespace stepflow::execution

#endif  // STEPFLOW_SERVICES_EXECUTION_MAP_RUNS_H_
