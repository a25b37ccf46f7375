// Per-RPC server metrics, recorded by a gRPC server interceptor.
//
// For every RPC a server handles, the interceptor records
//
//   stepflow_rpc_server_handled_total{component,service,method,code}
//       counter; `code` is the gRPC code name ("OK", "NOT_FOUND", ...)
//   stepflow_rpc_server_handling_seconds{component,service,method}
//       histogram from the start of the call to its status, buckets from
//       50us to 60s
//
// where "/stepflow.gateway.v1.Gateway/StartExecution" becomes
// service="stepflow.gateway.v1.Gateway", method="StartExecution". It works
// for sync, callback and generic services, and also counts calls to methods
// the server does not have (code="UNIMPLEMENTED"). Caveat: a server with no
// callback method at all answers unknown methods on gRPC's sync path, which
// does not tell interceptors the method name; those calls are counted as
// service="unknown", method="unknown". gRPC's default health service is a
// callback service, so servers built by rpc::RunningServer always get real
// names. Should a call end without a status ever being sent, it counts as
// code="CANCELLED".
//
//   std::vector<std::unique_ptr<
//       grpc::experimental::ServerInterceptorFactoryInterface>> creators;
//   creators.push_back(MakeServerMetricsInterceptorFactory(*registry,
//                                                          "gateway"));
//   builder.experimental().SetInterceptorCreators(std::move(creators));
//
// Several factories (one per component of `stepflow dev`) may share one
// registry: `component` is an ordinary label, so their series just add up
// in the same families. Client-chosen method names are capped at 1000
// distinct (service, method) pairs per factory; further unknown names are
// counted as service="other", method="other".
//
// Thread-safety: the factory and its interceptors may be used from any
// number of server threads. `registry` must outlive the server.
#ifndef STEPFLOW_COMMON_METRICS_RPC_METRICS_H_
#define STEPFLOW_COMMON_METRICS_RPC_METRICS_H_

#include <memory>
#include <string>
#include <string_view>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/registry.h"

namespace stepflow::metrics {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptorFactory(prometheus::Registry& registry,
                                    std::string component);

// "OK", "CANCELLED", ... "UNAUTHENTICATED" for gRPC code values 0..16,
// "UNKNOWN" for anything else.
std::string_view GrpcCodeName(int code);

}  // namespace stepflow::metrics

#endif  // STEPFLOW_COMMON_METRICS_RPC_METRICS_H_
