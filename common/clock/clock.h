// Time as a dependency: services read the time only through a Clock, so
// tests can drive timers and timestamps without sleeping.
//
//   RealClock clock;                 // production
//   FakeClock fake(absl::UnixEpoch()); fake.Advance(absl::Seconds(5));
//
// Both implementations are thread-safe.
#ifndef STEPFLOW_COMMON_CLOCK_CLOCK_H_
#define STEPFLOW_COMMON_CLOCK_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace stepflow::clock {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace stepflow::clock

#endif  // STEPFLOW_COMMON_CLOCK_CLOCK_H_
