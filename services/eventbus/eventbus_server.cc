#include "services/eventbus/eventbus_server.h"

#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/kafka/client.h"
#include "common/kafka/mock_cluster.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/rpc/server.h"
#include "common/status/status_macros.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/eventbus/catalog.h"
#include "services/eventbus/dispatcher.h"
#include "services/eventbus/replayer.h"
#include "common/rpc/status.h"
#include "stepflow/v1/events.grpc.pb.h"
#include "stepflow/v1/states.grpc.pb.h"

namespace stepflow::eventbus {
namespace {

constexpr char kComponent[] = "eventbus";
constexpr absl::Duration kShutdownGrace = absl::Seconds(5);

// Dead-letter topics known to exist in the embedded broker.
struct CreatedTopics {
  absl::Mutex mu;
  std::set<std::string> names ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::StatusOr<std::unique_ptr<EventBusServer>> EventBusServer::Start(
    EventBusOptions options) {
  if (options.kafka_brokers.empty()) {
    return absl::InvalidArgumentError(
        "the eventbus needs Kafka brokers (--kafka-brokers HOST:PORT[,...])");
  }
  if (options.listen_address.empty()) {
    return absl::InvalidArgumentError("the eventbus needs a listen address");
  }
  if (options.kafka_check_interval <= absl::ZeroDuration() ||
      options.kafka_check_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "Kafka check interval and timeout must be positive");
  }
  std::unique_ptr<EventBusServer> bus(new EventBusServer(std::move(options)));
  const EventBusOptions& opts = bus->options_;

  if (!opts.metrics_address.empty()) {
    ASSIGN_OR_RETURN(
        bus->metrics_server_,
        metrics::MetricsServer::Start(opts.metrics_address, bus->registry_));
  }

  // Checked before serving, so that a healthy Kafka means SERVING from the
  // first health call on.
  bus->CheckKafka();

  // gRPC refuses to build a server whose only service is its health
  // service. Until the eventbus serves an API of its own, it registers the
  // EventBridge service with no methods implemented: every call answers
  // UNIMPLEMENTED (the gateway serves EventBridge).
  bus->placeholder_service_ = std::make_unique<v1::EventBridge::Service>();
  rpc::ServerOptions server_options;
  server_options.listen_address = opts.listen_address;
  server_options.component = kComponent;
  server_options.registry = bus->registry_.get();
  server_options.services = {bus->placeholder_service_.get()};
  ASSIGN_OR_RETURN(bus->server_,
                   rpc::RunningServer::Start(std::move(server_options)));
  bus->server_->SetServing(bus->kafka_reachable());

  if (!opts.gateway_address.empty()) {
    ASSIGN_OR_RETURN(bus->producer_, kafka::Producer::Create(opts.kafka_brokers));
    CatalogOptions catalog_options;
    catalog_options.brokers = opts.kafka_brokers;
    // Gateways create the topic; the eventbus writes archive stats and
    // replay progress only.
    catalog_options.producer = bus->producer_.get();
    ASSIGN_OR_RETURN(bus->catalog_, Catalog::Start(std::move(catalog_options)));
    std::shared_ptr<v1::StepFunctions::Stub> stub =
        v1::StepFunctions::NewStub(opts.gateway_channel != nullptr
                                       ? opts.gateway_channel
                                       : rpc::MakeChannel(opts.gateway_address));
    DispatcherOptions dispatcher_options;
    dispatcher_options.brokers = opts.kafka_brokers;
    dispatcher_options.group_id = opts.group_id;
    dispatcher_options.catalog = bus->catalog_.get();
    kafka::Producer* producer = bus->producer_.get();
    // A target's own dead-letter topic is created by the gateway in
    // PutTargets; the embedded broker's topics live only as long as the
    // process, so there the eventbus makes sure of it before the first
    // write (a failure is retried with the write).
    auto created_topics = std::make_shared<CreatedTopics>();
    dispatcher_options.dead_letter =
        [producer, embedded = opts.embedded_kafka, created_topics](
            const std::string& topic, const std::string& key,
            const std::string& value) -> absl::Status {
      if (embedded != nullptr) {
        absl::MutexLock lock(&created_topics->mu);
        if (created_topics->names.count(topic) == 0) {
          absl::Status created = embedded->CreateTopic(topic, kDeadLetterTopic.partitions);
          if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
          created_topics->names.insert(topic);
        }
      }
      return producer->ProduceSync(topic, key, value, absl::Seconds(10));
    };
    dispatcher_options.archive_event = [producer](const std::string& topic,
                                                  const std::string& key,
                                                  const std::string& value) {
      return producer->ProduceSync(topic, key, value, absl::Seconds(10));
    };
    dispatcher_options.replica_id = opts.replica_id;
    if (dispatcher_options.replica_id.empty()) {
      char host[256] = {};
      gethostname(host, sizeof(host) - 1);
      dispatcher_options.replica_id = absl::StrCat(
          host, "-", getpid(), "-", absl::ToUnixMillis(absl::Now()));
    }
    auto& deliveries = prometheus::BuildCounter()
                           .Name("stepflow_eventbus_deliveries_total")
                           .Help("Deliveries of events to rule targets, by outcome: started "
                                 "(the execution started or had started) or abandoned.")
                           .Register(*bus->registry_);
    dispatcher_options.delivered_counter = &deliveries.Add({{"outcome", "started"}});
    dispatcher_options.abandoned_counter = &deliveries.Add({{"outcome", "abandoned"}});
    dispatcher_options.lost_counter =
        &prometheus::BuildCounter()
             .Name("stepflow_eventbus_events_lost_total")
             .Help("Events the Kafka brokers dropped (retention, a truncated log) before "
                   "this eventbus delivered them.")
             .Register(*bus->registry_)
             .Add({});
    dispatcher_options.start_execution = [stub](const std::string& state_machine_arn,
                                                const std::string& name,
                                                const std::string& input) {
      v1::StartExecutionRequest request;
      request.set_state_machine_arn(state_machine_arn);
      request.set_name(name);
      request.set_input(input);
      v1::StartExecutionResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      return rpc::FromGrpcStatus(stub->StartExecution(&context, request, &response));
    };
    ASSIGN_OR_RETURN(bus->dispatcher_, Dispatcher::Start(std::move(dispatcher_options)));
    ReplayerOptions replayer_options;
    replayer_options.brokers = opts.kafka_brokers;
    replayer_options.catalog = bus->catalog_.get();
    replayer_options.producer = producer;
    replayer_options.owns_replays = [dispatcher = bus->dispatcher_.get()] {
      return dispatcher->OwnsPartition(kDefaultBusTopic.name, 0);
    };
    ASSIGN_OR_RETURN(bus->replayer_, Replayer::Start(std::move(replayer_options)));
  }

  bus->checker_ = std::thread([bus = bus.get()] { bus->CheckLoop(); });
  log::Info(kComponent, "started",
            {{"address", bus->server_->address()},
             {"kafka_brokers", opts.kafka_brokers},
             {"kafka_reachable", bus->kafka_reachable()},
             {"gateway", opts.gateway_address}});
  return bus;
}

EventBusServer::EventBusServer(EventBusOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()) {
  kafka_up_ = &prometheus::BuildGauge()
                   .Name("stepflow_eventbus_kafka_up")
                   .Help(
                       "1 if the Kafka brokers answered the latest check, "
                       "else 0.")
                   .Register(*registry_)
                   .Add({});
}

EventBusServer::~EventBusServer() { Shutdown(); }

int EventBusServer::port() const { return server_->port(); }

std::string EventBusServer::address() const { return server_->address(); }

int EventBusServer::metrics_port() const {
  return metrics_server_ == nullptr ? 0 : metrics_server_->port();
}

void EventBusServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;
  }
  if (checker_.joinable()) checker_.join();
  replayer_.reset();
  dispatcher_.reset();
  catalog_.reset();
  producer_.reset();
  metrics_server_.reset();
  if (server_ != nullptr) {
    server_->Shutdown(kShutdownGrace);
    log::Info(kComponent, "stopped");
  }
}

void EventBusServer::CheckLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               options_.kafka_check_interval)) {
        return;
      }
    }
    CheckKafka();
  }
}

void EventBusServer::CheckKafka() {
  absl::Status status =
      kafka::CheckBrokers(options_.kafka_brokers, options_.kafka_check_timeout);
  const bool reachable = status.ok();
  const bool was_reachable = kafka_reachable_.exchange(reachable);
  kafka_up_->Set(reachable ? 1 : 0);
  if (server_ != nullptr) server_->SetServing(reachable);

  // Log transitions only, and the first failure, not every check.
  const bool first_check = server_ == nullptr;
  if (reachable && !was_reachable) {
    log::Info(kComponent, "Kafka brokers reachable; serving",
              {{"kafka_brokers", options_.kafka_brokers}});
    EnsureTopics();
  } else if (!reachable && (was_reachable || first_check)) {
    log::Warn(kComponent, "Kafka brokers unreachable; not serving",
              {{"kafka_brokers", options_.kafka_brokers}, {"error", status}});
  }
}

void EventBusServer::EnsureTopics() {
  if (options_.embedded_kafka != nullptr) {
    for (const TopicSpec& topic : kEventTopics) {
      absl::Status created =
          options_.embedded_kafka->CreateTopic(topic.name, topic.partitions);
      if (created.ok()) {
        log::Info(kComponent, "created Kafka topic",
                  {{"topic", topic.name}, {"partitions", topic.partitions}});
      } else if (!absl::IsAlreadyExists(created)) {
        log::Warn(kComponent, "cannot create Kafka topic",
                  {{"topic", topic.name}, {"error", created}});
      }
    }
  }
  absl::StatusOr<std::vector<std::string>> topics =
      kafka::ListTopics(options_.kafka_brokers, options_.kafka_check_timeout);
  if (!topics.ok()) {
    log::Warn(kComponent, "cannot list Kafka topics",
              {{"error", topics.status()}});
    return;
  }
  for (const TopicSpec& topic : kEventTopics) {
    if (!std::binary_search(topics->begin(), topics->end(), topic.name)) {
      log::Warn(
          kComponent,
          "Kafka topic missing; create it (the eventbus does not create "
          "topics on a real Kafka)",
          {{"topic", topic.name}, {"suggested_partitions", topic.partitions}});
    }
  }
}

}  // namespace stepflow::eventbus
