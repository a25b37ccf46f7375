// EventBusServer: the eventbus process (`stepflow-eventbus`, and one of the
// components of `stepflow dev`).
//
// The eventbus consumes the event bus topics, matches events against the
// rules and starts the targets' executions through the gateway's
// StepFunctions API (see dispatcher.h; only with a `gateway_address`). It
// reads the rules from the Catalog (catalog.h), archives the events of
// buses with archives, and runs replays (replayer.h) on the replica its
// consumer group gives partition 0 of the default bus topic; it writes
// archive stats and replay progress to the catalog. It serves the standard gRPC
// health service (grpc.health.v1.Health), SERVING while the Kafka brokers
// answer and NOT_SERVING otherwise, as checked by a background thread every
// `kafka_check_interval`.
//
// Topics: the eventbus needs kEventTopics. With the embedded broker of
// `stepflow dev` and tests (`embedded_kafka`) it creates the missing ones;
// with a real Kafka, creating topics belongs to operators, and a missing
// topic is logged as a warning each time the brokers become reachable. A
// target's own dead-letter topic (dead_letter.h) is created by the gateway
// in PutTargets, and with the embedded broker also by the eventbus before it
// first writes there.
//
//   EventBusOptions options;
//   options.kafka_brokers = "kafka-0:9092,kafka-1:9092";
//   ASSIGN_OR_RETURN(std::unique_ptr<EventBusServer> server,
//                    EventBusServer::Start(std::move(options)));
//   ... wait for SIGTERM ...
//   server->Shutdown();
//
// Thread-safety: all methods may be called concurrently.
#ifndef STEPFLOW_SERVICES_EVENTBUS_EVENTBUS_SERVER_H_
#define STEPFLOW_SERVICES_EVENTBUS_EVENTBUS_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/eventbus/dead_letter.h"

namespace grpc {
class Channel;
class Service;
}  // namespace grpc

namespace prometheus {
class Gauge;
class Registry;
}  // namespace prometheus

namespace stepflow::kafka {
class MockKafkaCluster;
class Producer;
}  // namespace stepflow::kafka

namespace stepflow::metrics {
class MetricsServer;
}  // namespace stepflow::metrics

namespace stepflow::rpc {
class RunningServer;
}  // namespace stepflow::rpc

namespace stepflow::eventbus {

class Catalog;
class Dispatcher;
class Replayer;

// A topic the eventbus needs, with the partition count it is created with
// where the eventbus creates it.
struct TopicSpec {
  const char* name;
  int partitions;
};

// The events of the "default" event bus.
inline constexpr TopicSpec kDefaultBusTopic = {"stepflow.events.default", 4};
// Deliveries given up of rule targets without a DeadLetterConfig (see
// dispatcher.h, dead_letter.h).
inline constexpr TopicSpec kDeadLetterTopic = {kSharedDeadLetterTopic, 1};
inline constexpr TopicSpec kEventTopics[] = {kDefaultBusTopic, kDeadLetterTopic};

struct EventBusOptions {
  // librdkafka `bootstrap.servers`: "HOST:PORT[,HOST:PORT...]". Required.
  std::string kafka_brokers;
  // gRPC listen address; port 0 picks a free port (see port()).
  std::string listen_address = "0.0.0.0:7240";
  // Address of the Prometheus /metrics endpoint; empty = none.
  std::string metrics_address;
  // The embedded broker `kafka_brokers` points at, if it is one: missing
  // topics are created there. Not owned; must outlive the server.
  kafka::MockKafkaCluster* embedded_kafka = nullptr;
  // The gateway executions are started through (HOST:PORT). Empty: events
  // are not delivered to rule targets.
  std::string gateway_address;
  // A channel to that gateway to use instead of dialing it (an all-in-one
  // process passes an in-process channel); null: dial gateway_address.
  std::shared_ptr<grpc::Channel> gateway_channel;
  // The Kafka consumer group of the eventbus replicas.
  std::string group_id = "stepflow-eventbus";
  // Names this replica in the archive stats it writes; empty: made up from
  // the host, process and start time.
  std::string replica_id;
  // How often the brokers are checked, and how long a check may take.
  absl::Duration kafka_check_interval = absl::Seconds(3);
  absl::Duration kafka_check_timeout = absl::Seconds(2);
};

class EventBusServer {
 public:
  // Checks the brokers once (so a reachable Kafka means SERVING as soon as
  // this returns), then starts serving and the background checks. An
  // unreachable Kafka is not an error: the server starts NOT_SERVING and
  // turns SERVING once the brokers answer. INVALID_ARGUMENT for bad options,
  // UNAVAILABLE if an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<EventBusServer>> Start(
      EventBusOptions options);

  EventBusServer(const EventBusServer&) = delete;
  EventBusServer& operator=(const EventBusServer&) = delete;
  // Calls Shutdown().
  ~EventBusServer();

  // The bound gRPC port, and "host:port" a client on this machine can dial.
  int port() const;
  std::string address() const;
  // The bound /metrics port; 0 without a metrics address.
  int metrics_port() const;

  // The result of the latest broker check.
  bool kafka_reachable() const { return kafka_reachable_.load(); }

  // Null without a gateway address.
  const Dispatcher* dispatcher() const { return dispatcher_.get(); }

  // Stops the broker checks, reports NOT_SERVING and stops the gRPC and
  // metrics servers, giving running calls up to 5 s. Later calls do nothing.
  void Shutdown();

 private:
  explicit EventBusServer(EventBusOptions options);

  // Checks the brokers, updates health and metrics, and on each transition
  // to reachable makes sure the topics exist.
  void CheckKafka();
  void EnsureTopics();
  void CheckLoop();

  const EventBusOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge* kafka_up_ = nullptr;  // owned by registry_
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  // Registered so gRPC builds the server (see eventbus_server.cc).
  std::unique_ptr<grpc::Service> placeholder_service_;
  std::unique_ptr<rpc::RunningServer> server_;
  std::atomic<bool> kafka_reachable_{false};
  std::thread checker_;
  // Dead letters, archived and replayed events, catalog writes.
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<Catalog> catalog_;
  // After catalog_ and the producer: uses both.
  std::unique_ptr<Dispatcher> dispatcher_;
  // After the dispatcher: asks it which partitions it owns.
  std::unique_ptr<Replayer> replayer_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace stepflow::eventbus

#endif  // STEPFLOW_SERVICES_EVENTBUS_EVENTBUS_SERVER_H_
