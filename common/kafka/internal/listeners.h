// The TCP sockets this process holds, found by port: how the mock cluster
// reaches the sockets librdkafka opened for its brokers, which its API does
// not expose.
//
// Not part of the public interface; only common/kafka includes this.
#ifndef STEPFLOW_COMMON_KAFKA_INTERNAL_LISTENERS_H_
#define STEPFLOW_COMMON_KAFKA_INTERNAL_LISTENERS_H_

#include <vector>

namespace stepflow::kafka::internal {

// File descriptors of this process's IPv4 and IPv6 TCP sockets bound to
// `port`: the listening ones, or (`listening` false) the connections they
// accepted. The answer is a snapshot: another thread may close a
// descriptor (and the number be reused) at any time.
std::vector<int> SocketsOnPort(int port, bool listening = true);

// Sets TCP_NODELAY on the listening sockets bound to `port`; Linux hands it
// down to every connection they accept later. The number of sockets set.
int SetNoDelayOnListeners(int port);

}  // namespace stepflow::kafka::internal

#endif  // STEPFLOW_COMMON_KAFKA_INTERNAL_LISTENERS_H_
