#include "common/config/signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

namespace stepflow::config {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that goes away mid-write must not kill the process.
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int signal_number = 0;
  while (sigwait(&set, &signal_number) != 0) {
  }
  return signal_number;
}

void RequestTermination() {
  // To the process, not this thread: the signal is blocked in every thread
  // but the one in sigwait.
  kill(getpid(), SIGTERM);
}

}  // namespace stepflow::config
