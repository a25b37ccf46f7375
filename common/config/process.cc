#include "common/config/process.h"

#include "absl/synchronization/mutex.h"
#include "common/config/signals.h"

namespace stepflow::config {

void PrepareServerProcess() {
  BlockTerminationSignals();
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace stepflow::config
