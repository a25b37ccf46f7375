#include "services/eventbus/eventbus_server.h"

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/kafka/client.h"
#include "common/kafka/mock_cluster.h"
#include "common/log/log.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace stepflow::eventbus {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;

// grpc.health.v1.Health/Check for service "" over raw bytes (the health
// proto is not installed): "SERVING", "NOT_SERVING", or the RPC error.
std::string HealthStatus(const std::string& address) {
  auto channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
  grpc::Slice empty("");  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) return absl::StrCat("error: ", status.error_message());
  std::vector<grpc::Slice> slices;
  std::string body;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      body.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  if (body == std::string("\x08\x01", 2)) return "SERVING";
  if (body == std::string("\x08\x02", 2)) return "NOT_SERVING";
  return absl::StrCat("unexpected response of ", body.size(), " bytes");
}

// Polls the health status until it is `want` or `within` has passed;
// returns the last status seen.
std::string AwaitHealth(const std::string& address, const std::string& want,
                        absl::Duration within) {
  absl::Time deadline = absl::Now() + within;
  std::string status = HealthStatus(address);
  while (status != want && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    status = HealthStatus(address);
  }
  return status;
}

// GET /metrics on 127.0.0.1:port; the whole HTTP response.
std::string ScrapeMetrics(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request =
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0)
        out.append(buffer, n);
    }
  }
  ::close(fd);
  return out;
}

// The partition count of `topic` from an all-topics metadata request (which
// never auto-creates topics); -1 if it is missing or no broker answers.
int PartitionCount(const std::string& brokers, const std::string& topic) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), errstr,
                    sizeof(errstr));
  rd_kafka_t* rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) return -1;
  int count = -1;
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &metadata, 5000) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < metadata->topic_cnt; ++i) {
      if (topic == metadata->topics[i].topic) {
        count = metadata->topics[i].partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(metadata);
  }
  rd_kafka_destroy(rk);
  return count;
}

int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Collects log lines for the lifetime of the object.
class CapturedLog {
 public:
  CapturedLog() {
    log::SetSinkForTest([this](std::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    });
  }
  ~CapturedLog() { log::SetSinkForTest(nullptr); }
  std::vector<std::string> lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

EventBusOptions TestOptions(const std::string& brokers) {
  EventBusOptions options;
  options.kafka_brokers = brokers;
  options.listen_address = "127.0.0.1:0";
  return options;
}

TEST(EventBusServerTest, ServesWhileKafkaAnswersAndCreatesEmbeddedTopics) {
  auto cluster = kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EventBusOptions options = TestOptions((*cluster)->bootstrap_servers());
  options.embedded_kafka = cluster->get();
  options.metrics_address = "127.0.0.1:0";
  auto server = EventBusServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();

  EXPECT_TRUE((*server)->kafka_reachable());
  EXPECT_GT((*server)->port(), 0);
  EXPECT_EQ(HealthStatus((*server)->address()), "SERVING");

  auto topics =
      kafka::ListTopics((*cluster)->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, Contains(kDefaultBusTopic.name));
  EXPECT_EQ(
      PartitionCount((*cluster)->bootstrap_servers(), kDefaultBusTopic.name),
      kDefaultBusTopic.partitions);

  ASSERT_GT((*server)->metrics_port(), 0);
  EXPECT_THAT(ScrapeMetrics((*server)->metrics_port()),
              HasSubstr("stepflow_eventbus_kafka_up 1"));
}

TEST(EventBusServerTest, NotServingWhileBrokersAreDown) {
  auto cluster = kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EventBusOptions options = TestOptions((*cluster)->bootstrap_servers());
  options.embedded_kafka = cluster->get();
  options.kafka_check_interval = absl::Milliseconds(500);
  options.kafka_check_timeout = absl::Seconds(1);
  auto server = EventBusServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  ASSERT_EQ(HealthStatus(address), "SERVING");

  ASSERT_TRUE((*cluster)->SetBrokerDown(-1).ok());
  EXPECT_EQ(AwaitHealth(address, "NOT_SERVING", absl::Seconds(10)),
            "NOT_SERVING");
  EXPECT_FALSE((*server)->kafka_reachable());

  ASSERT_TRUE((*cluster)->SetBrokerUp(-1).ok());
  EXPECT_EQ(AwaitHealth(address, "SERVING", absl::Seconds(10)), "SERVING");
}

TEST(EventBusServerTest, NotServingWithinTenSecondsOfKafkaGoingAway) {
  // Default check interval and timeout: what production gets.
  auto cluster = kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->CreateTopic(kDefaultBusTopic.name, 4).ok());
  auto server =
      EventBusServer::Start(TestOptions((*cluster)->bootstrap_servers()));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  ASSERT_EQ(HealthStatus(address), "SERVING");

  cluster->reset();
  absl::Time gone = absl::Now();
  EXPECT_EQ(AwaitHealth(address, "NOT_SERVING", absl::Seconds(10)),
            "NOT_SERVING");
  EXPECT_LT(absl::Now() - gone, absl::Seconds(10));
}

TEST(EventBusServerTest, StartsNotServingWithoutKafka) {
  CapturedLog captured;
  EventBusOptions options =
      TestOptions(absl::StrCat("127.0.0.1:", ClosedPort()));
  options.kafka_check_timeout = absl::Milliseconds(500);
  auto server = EventBusServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_FALSE((*server)->kafka_reachable());
  EXPECT_EQ(HealthStatus((*server)->address()), "NOT_SERVING");
  EXPECT_THAT(captured.lines(),
              Contains(HasSubstr("Kafka brokers unreachable")));
}

TEST(EventBusServerTest, WarnsAboutMissingTopicsOnRealKafka) {
  CapturedLog captured;
  auto cluster = kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  // No embedded_kafka: the eventbus must not create topics.
  auto server =
      EventBusServer::Start(TestOptions((*cluster)->bootstrap_servers()));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(HealthStatus((*server)->address()), "SERVING");
  EXPECT_THAT(captured.lines(),
              Contains(::testing::AllOf(HasSubstr("WARN"),
                                        HasSubstr("Kafka topic missing"),
                                        HasSubstr(kDefaultBusTopic.name))));
  auto topics =
      kafka::ListTopics((*cluster)->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, ::testing::Not(Contains(kDefaultBusTopic.name)));
}

TEST(EventBusServerTest, ShutdownStopsServingAndIsIdempotent) {
  auto cluster = kafka::MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EventBusOptions options = TestOptions((*cluster)->bootstrap_servers());
  options.embedded_kafka = cluster->get();
  auto server = EventBusServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = (*server)->address();
  (*server)->Shutdown();
  (*server)->Shutdown();
  EXPECT_THAT(HealthStatus(address), HasSubstr("error"));
}

TEST(EventBusServerTest, RejectsBadOptions) {
  EXPECT_EQ(EventBusServer::Start(TestOptions("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EventBusOptions options = TestOptions("127.0.0.1:1");
  options.listen_address = "";
  EXPECT_EQ(EventBusServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = TestOptions("127.0.0.1:1");
  options.kafka_check_interval = absl::ZeroDuration();
  EXPECT_EQ(EventBusServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stepflow::eventbus
