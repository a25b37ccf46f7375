// MetricsServer: serves the Prometheus text page of one registry at
// GET /metrics over plain HTTP.
//
// Each Stepflow service owns one prometheus::Registry, registers its metric
// families there (see rpc_metrics.h for the RPC ones) and exposes it:
//
//   auto registry = std::make_shared<prometheus::Registry>();
//   auto& jobs = prometheus::BuildCounter()
//                    .Name("stepflow_jobs_total")
//                    .Help("Jobs run.")
//                    .Register(*registry);
//   ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> server,
//                    MetricsServer::Start("0.0.0.0:9464", registry));
//   log::Info("gateway", "metrics", {{"port", server->port()}});
//
// Thread-safety: all methods may be called concurrently. The server keeps
// the registry alive until it is destroyed; scrapes run on the server's own
// threads.
#ifndef STEPFLOW_COMMON_METRICS_METRICS_H_
#define STEPFLOW_COMMON_METRICS_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace stepflow::metrics {

class MetricsServer {
 public:
  // Listens on `host_port` ("127.0.0.1:0", "0.0.0.0:9464"; port 0 picks a
  // free port) and serves `registry` at /metrics. UNAVAILABLE if the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& host_port,
      std::shared_ptr<prometheus::Registry> registry);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stops serving and joins the server threads.
  ~MetricsServer();

  // The bound port.
  int port() const { return port_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                std::shared_ptr<prometheus::Registry> registry,
                std::string wake_host, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  // Where the destructor connects to wake civetweb's accept loop.
  std::string wake_host_;
  int port_;
};

}  // namespace stepflow::metrics

#endif  // STEPFLOW_COMMON_METRICS_METRICS_H_
