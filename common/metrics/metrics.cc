#include "common/metrics/metrics.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace stepflow::metrics {
namespace {

// The host to connect to for a server bound to `host_port`: the wildcard
// addresses are reached via loopback.
std::string WakeHost(const std::string& host_port) {
  size_t colon = host_port.rfind(':');
  std::string host =
      colon == std::string::npos ? "" : host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "0.0.0.0" || host == "*") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

// Opens and closes one TCP connection; failures are fine (best effort).
void PokePort(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                    &result) != 0) {
    return;
  }
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    bool connected = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
    ::close(fd);
    if (connected) break;
  }
  ::freeaddrinfo(result);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& host_port,
    std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("MetricsServer needs a registry");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // Two threads: a scrape never waits behind a slow one.
    exposer = std::make_unique<prometheus::Exposer>(host_port,
                                                    /*num_threads=*/2);
  } catch (const std::exception& e) {
    // civetweb reports bind failures (address in use, bad host) by throwing.
    return absl::UnavailableError(absl::StrCat(
        "metrics server cannot listen on ", host_port, ": ", e.what()));
  }
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("metrics server has no port for ", host_port));
  }
  exposer->RegisterCollectable(registry, "/metrics");
  return std::unique_ptr<MetricsServer>(new MetricsServer(
      std::move(exposer), std::move(registry), WakeHost(host_port), ports[0]));
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                             std::shared_ptr<prometheus::Registry> registry,
                             std::string wake_host, int port)
    : exposer_(std::move(exposer)),
      registry_(std::move(registry)),
      wake_host_(std::move(wake_host)),
      port_(port) {}

MetricsServer::~MetricsServer() {
  // civetweb's accept loop polls with a 2 s timeout and only then notices
  // that it should stop, so every shutdown would take up to 2 s. Connecting
  // to the port while the Exposer is being destroyed wakes the loop at once.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      PokePort(wake_host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped.store(true);
  waker.join();
}

}  // namespace stepflow::metrics
