// EventBridgeService: the gateway's stepflow.v1.EventBridge API.
//
// Event buses, rules and targets live in the eventbus Catalog (a compacted
// Kafka topic every replica reads); each bus's events go to its own Kafka
// topic (eventbus::BusTopic), created when the bus is created. PutEvents
// answers only after Kafka acknowledged each accepted entry (acks=all).
// TestEventPattern needs no Kafka; without Kafka brokers configured every
// other call answers UNAVAILABLE.
//
// Archives and replays (services/eventbus/archive.h) are catalog records
// too; the gateway creates an archive's topic, validates and stores the
// definitions and cancel requests, and the eventbus does the archiving and
// replaying, writing EventCount / SizeBytes and replay progress back.
// An archive is ENABLED from its creation on (it has no other state here).
// At most kMaxActiveReplays replays run (are not over) at once.
//
// Thread-safety: all methods may be called concurrently.
#ifndef STEPFLOW_SERVICES_GATEWAY_EVENT_BRIDGE_H_
#define STEPFLOW_SERVICES_GATEWAY_EVENT_BRIDGE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/gateway/gateway.h"
#include "stepflow/v1/events.grpc.pb.h"

namespace stepflow::kafka {
class Producer;
class TopicAdmin;
}  // namespace stepflow::kafka
namespace stepflow::eventbus {
class Catalog;
}  // namespace stepflow::eventbus

namespace stepflow::gateway {

// AWS's limit on a PutEvents request, by its entry-size calculation.
inline constexpr size_t kMaxPutEventsBytes = 256 * 1024;
inline constexpr int kMaxPutEventsEntries = 10;
// Replays not yet COMPLETED, CANCELLED or FAILED at once; more: LimitExceeded.
inline constexpr int kMaxActiveReplays = 10;

// AWS's size of one PutEvents entry: 14 bytes for a set Time, plus the
// UTF-8 bytes of Source, DetailType, Detail and each Resource.
size_t PutEventsEntrySize(const v1::PutEventsRequestEntry& entry);


class EventBridgeService final : public v1::EventBridge::Service {
 public:
  // Connects to Kafka when `options.kafka_brokers` is set (without waiting
  // for the brokers). `options` must outlive the service.
  static absl::StatusOr<std::unique_ptr<EventBridgeService>> Create(
      const GatewayOptions& options);
  ~EventBridgeService() override;

  grpc::Status CreateEventBus(grpc::ServerContext*,
                              const v1::CreateEventBusRequest*,
                              v1::CreateEventBusResponse*) override;
  grpc::Status DescribeEventBus(grpc::ServerContext*,
                                const v1::DescribeEventBusRequest*,
                                v1::DescribeEventBusResponse*) override;
  grpc::Status ListEventBuses(grpc::ServerContext*,
                              const v1::ListEventBusesRequest*,
                              v1::ListEventBusesResponse*) override;
  grpc::Status DeleteEventBus(grpc::ServerContext*,
                              const v1::DeleteEventBusRequest*,
                              v1::DeleteEventBusResponse*) override;
  grpc::Status PutEvents(grpc::ServerContext*, const v1::PutEventsRequest*,
                         v1::PutEventsResponse*) override;
  grpc::Status PutRule(grpc::ServerContext*, const v1::PutRuleRequest*,
                       v1::PutRuleResponse*) override;
  grpc::Status DescribeRule(grpc::ServerContext*,
                            const v1::DescribeRuleRequest*,
                            v1::DescribeRuleResponse*) override;
  grpc::Status ListRules(grpc::ServerContext*, const v1::ListRulesRequest*,
                         v1::ListRulesResponse*) override;
  grpc::Status DeleteRule(grpc::ServerContext*, const v1::DeleteRuleRequest*,
                          v1::DeleteRuleResponse*) override;
  grpc::Status EnableRule(grpc::ServerContext*, const v1::EnableRuleRequest*,
                          v1::EnableRuleResponse*) override;
  grpc::Status DisableRule(grpc::ServerContext*, const v1::DisableRuleRequest*,
                           v1::DisableRuleResponse*) override;
  grpc::Status PutTargets(grpc::ServerContext*, const v1::PutTargetsRequest*,
                          v1::PutTargetsResponse*) override;
  grpc::Status RemoveTargets(grpc::ServerContext*,
                             const v1::RemoveTargetsRequest*,
                             v1::RemoveTargetsResponse*) override;
  grpc::Status ListTargetsByRule(grpc::ServerContext*,
                                 const v1::ListTargetsByRuleRequest*,
                                 v1::ListTargetsByRuleResponse*) override;
  grpc::Status ListRuleNamesByTarget(
      grpc::ServerContext*, const v1::ListRuleNamesByTargetRequest*,
      v1::ListRuleNamesByTargetResponse*) override;
  grpc::Status TestEventPattern(grpc::ServerContext*,
                                const v1::TestEventPatternRequest*,
                                v1::TestEventPatternResponse*) override;

  grpc::Status CreateArchive(grpc::ServerContext*,
                             const v1::CreateArchiveRequest*,
                             v1::CreateArchiveResponse*) override;
  grpc::Status DescribeArchive(grpc::ServerContext*,
                               const v1::DescribeArchiveRequest*,
                               v1::DescribeArchiveResponse*) override;
  grpc::Status UpdateArchive(grpc::ServerContext*,
                             const v1::UpdateArchiveRequest*,
                             v1::UpdateArchiveResponse*) override;
  grpc::Status ListArchives(grpc::ServerContext*,
                            const v1::ListArchivesRequest*,
                            v1::ListArchivesResponse*) override;
  grpc::Status DeleteArchive(grpc::ServerContext*,
                             const v1::DeleteArchiveRequest*,
                             v1::DeleteArchiveResponse*) override;
  grpc::Status StartReplay(grpc::ServerContext*, const v1::StartReplayRequest*,
                           v1::StartReplayResponse*) override;
  grpc::Status DescribeReplay(grpc::ServerContext*,
                              const v1::DescribeReplayRequest*,
                              v1::DescribeReplayResponse*) override;
  grpc::Status ListReplays(grpc::ServerContext*, const v1::ListReplaysRequest*,
                           v1::ListReplaysResponse*) override;
  grpc::Status CancelReplay(grpc::ServerContext*,
                            const v1::CancelReplayRequest*,
                            v1::CancelReplayResponse*) override;

 private:
  explicit EventBridgeService(const GatewayOptions& options);
  // OK once the catalog is current (checked until it first is).
  absl::Status Ready(absl::Time deadline);
  // The bus named by `name_or_arn` ("" = default); NOT_FOUND if unknown.
  absl::StatusOr<std::string> ExistingBus(const std::string& name_or_arn) const;
  absl::StatusOr<v1::Rule> ExistingRule(const std::string& bus,
                                        const std::string& rule) const;
  absl::StatusOr<v1::DescribeArchiveResponse> ExistingArchive(
      const std::string& name) const;
  // The archive with its EventCount and SizeBytes summed from the stats.
  v1::DescribeArchiveResponse WithStats(
      v1::DescribeArchiveResponse archive) const;
  absl::Status SetRuleState(const std::string& name,
                            const std::string& bus_name_or_arn,
                            const char* state, absl::Time deadline);

  const GatewayOptions& options_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<kafka::TopicAdmin> admin_;
  std::unique_ptr<eventbus::Catalog> catalog_;
  std::atomic<bool> ready_{false};
};

}  // namespace stepflow::gateway

#endif  // STEPFLOW_SERVICES_GATEWAY_EVENT_BRIDGE_H_
