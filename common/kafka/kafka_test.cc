#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/kafka/client.h"
#include "common/kafka/internal/listeners.h"
#include "common/kafka/mock_cluster.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace stepflow::kafka {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A port nothing listens on: bound once by us, then released.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Reads every record of `topic` (partitions 0..partitions-1) with a plain
// consumer: partitions assigned explicitly, no group, so no ~3 s join.
std::multimap<std::string, std::string> ConsumeAll(const std::string& brokers,
                                                   const std::string& topic,
                                                   int partitions,
                                                   size_t expected) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // assign() needs a group id, but without subscribe() nothing joins it.
  for (const auto& [key, value] :
       std::map<std::string, std::string>{{"bootstrap.servers", brokers},
                                          {"group.id", "kafka-test-reader"},
                                          {"enable.auto.commit", "false"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr,
                                sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << errstr;
  }
  rd_kafka_t* consumer =
      rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  EXPECT_NE(consumer, nullptr) << errstr;
  if (consumer == nullptr) return {};

  rd_kafka_topic_partition_list_t* assignment =
      rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_resp_err_t assigned = rd_kafka_assign(consumer, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);
  EXPECT_EQ(assigned, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(assigned);
  if (assigned != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(consumer);
    return {};
  }

  std::multimap<std::string, std::string> records;
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (records.size() < expected && absl::Now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 100);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      records.emplace(
          std::string(static_cast<const char*>(message->key), message->key_len),
          std::string(static_cast<const char*>(message->payload),
                      message->len));
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return records;
}

TEST(MockKafkaClusterTest, StartsOnLoopback) {
  auto cluster = MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_THAT((*cluster)->bootstrap_servers(), StartsWith("127.0.0.1:"));
  EXPECT_EQ((*cluster)->broker_count(), 1);
}

// The ports of "127.0.0.1:PORT,...".
std::vector<int> BrokerPorts(const std::string& bootstrap_servers) {
  std::vector<int> ports;
  for (absl::string_view server : absl::StrSplit(bootstrap_servers, ',')) {
    int port = 0;
    EXPECT_TRUE(absl::SimpleAtoi(server.substr(server.rfind(':') + 1), &port)) << server;
    ports.push_back(port);
  }
  return ports;
}

bool NoDelay(int fd) {
  int value = 0;
  socklen_t length = sizeof(value);
  return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length) == 0 && value != 0;
}

// Without TCP_NODELAY on the brokers' side, a batch of records spread over
// partitions waited 40 ms for each delayed acknowledgement.
TEST(MockKafkaClusterTest, BrokersAnswerWithNagleOff) {
  auto cluster = MockKafkaCluster::Start(2);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->SetBrokerDown(2).ok());
  ASSERT_TRUE((*cluster)->SetBrokerUp(2).ok());
  const std::vector<int> ports = BrokerPorts((*cluster)->bootstrap_servers());
  ASSERT_EQ(ports.size(), 2u);
  for (int port : ports) {
    const std::vector<int> listeners = internal::SocketsOnPort(port);
    ASSERT_FALSE(listeners.empty()) << port;
    for (int fd : listeners) EXPECT_TRUE(NoDelay(fd)) << "listener on " << port;
    // A connection the broker accepts inherits it.
    int client = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    std::vector<int> accepted;
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while ((accepted = internal::SocketsOnPort(port, /*listening=*/false)).empty() && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    EXPECT_FALSE(accepted.empty()) << "the broker on " << port << " accepted nothing";
    for (int fd : accepted) EXPECT_TRUE(NoDelay(fd)) << "connection accepted on " << port;
    ::close(client);
  }
}

TEST(MockKafkaClusterTest, RejectsBadArguments) {
  EXPECT_EQ(MockKafkaCluster::Start(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto cluster = MockKafkaCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EXPECT_EQ((*cluster)->CreateTopic("", 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*cluster)->CreateTopic("t", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*cluster)->CreateTopic("t", 1, 2).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*cluster)->CreateTopic("t", 1).ok());
  EXPECT_EQ((*cluster)->CreateTopic("t", 1).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(KafkaClientTest, ProduceAndConsumeBack) {
  auto cluster = MockKafkaCluster::Start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string brokers = (*cluster)->bootstrap_servers();
  ASSERT_TRUE((*cluster)->CreateTopic("orders", 3, 3).ok());

  EXPECT_TRUE(CheckBrokers(brokers, absl::Seconds(5)).ok());
  auto topics = ListTopics(brokers, absl::Seconds(5));
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, Contains("orders"));

  auto producer = Producer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();
  std::multimap<std::string, std::string> sent;
  for (int i = 0; i < 20; ++i) {
    std::string key = absl::StrCat("key-", i % 7);
    std::string value = absl::StrCat("{\"n\":", i, "}");
    absl::Status status =
        (*producer)->ProduceSync("orders", key, value, absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status;
    sent.emplace(key, value);
  }
  // A binary value with NULs survives as is.
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(
      (*producer)->ProduceSync("orders", "", binary, absl::Seconds(10)).ok());
  sent.emplace("", binary);

  EXPECT_EQ(ConsumeAll(brokers, "orders", 3, sent.size()), sent);
}

TEST(KafkaClientTest, ProduceToMissingTopicFails) {
  auto cluster = MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto producer = Producer::Create((*cluster)->bootstrap_servers());
  ASSERT_TRUE(producer.ok()) << producer.status();
  absl::Status status =
      (*producer)->ProduceSync("missing", "k", "v", absl::Seconds(2));
  EXPECT_FALSE(status.ok());
  auto topics = ListTopics((*cluster)->bootstrap_servers(), absl::Seconds(5));
  ASSERT_TRUE(topics.ok()) << topics.status();
  EXPECT_THAT(*topics, ::testing::Not(Contains("missing")));
}

TEST(KafkaClientTest, ConcurrentProducers) {
  auto cluster = MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->CreateTopic("events", 4).ok());
  auto producer = Producer::Create((*cluster)->bootstrap_servers());
  ASSERT_TRUE(producer.ok()) << producer.status();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (!(*producer)
                 ->ProduceSync("events", absl::StrCat(t), absl::StrCat(i),
                               absl::Seconds(10))
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(
      ConsumeAll((*cluster)->bootstrap_servers(), "events", 4, 200).size(),
      200u);
}

TEST(KafkaClientTest, ProduceTimesOutWhileBrokersAreDown) {
  auto cluster = MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->CreateTopic("events", 1).ok());
  auto producer = Producer::Create((*cluster)->bootstrap_servers());
  ASSERT_TRUE(producer.ok()) << producer.status();
  ASSERT_TRUE((*producer)
                  ->ProduceSync("events", "k", "before", absl::Seconds(10))
                  .ok());

  ASSERT_TRUE((*cluster)->SetBrokerDown(-1).ok());
  absl::Time start = absl::Now();
  absl::Status status = (*producer)->ProduceSync("events", "k", "during",
                                                 absl::Milliseconds(500));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // Destroying the producer gives up on the queued record without waiting.
  start = absl::Now();
  producer->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(KafkaClientTest, CheckBrokersFailsWithinTimeoutOnClosedPort) {
  const std::string brokers = absl::StrCat("127.0.0.1:", ClosedPort());
  absl::Time start = absl::Now();
  absl::Status status = CheckBrokers(brokers, absl::Seconds(1));
  absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(brokers));
  EXPECT_LT(elapsed, absl::Seconds(3));

  EXPECT_EQ(ListTopics(brokers, absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(KafkaClientTest, CheckBrokersFailsWhenBrokerIsDown) {
  auto cluster = MockKafkaCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string brokers = (*cluster)->bootstrap_servers();
  ASSERT_TRUE(CheckBrokers(brokers, absl::Seconds(5)).ok());
  ASSERT_TRUE((*cluster)->SetBrokerDown(-1).ok());
  EXPECT_EQ(CheckBrokers(brokers, absl::Seconds(1)).code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*cluster)->SetBrokerUp(-1).ok());
  EXPECT_TRUE(CheckBrokers(brokers, absl::Seconds(5)).ok());
}

TEST(KafkaClientTest, RejectsBadConfiguration) {
  EXPECT_EQ(Producer::Create("").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bad = Producer::Create("127.0.0.1:1", {{"no.such.property", "1"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("no.such.property"));
  EXPECT_EQ(CheckBrokers("", absl::Seconds(1)).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace stepflow::kafka
