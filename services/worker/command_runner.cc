#include "services/worker/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace stepflow::worker {
namespace {

constexpr size_t kChunk = 64 * 1024;
// How often a run re-checks what it cannot wait on with a descriptor: its
// cancel flag, and the child's exit when pidfd_open is unavailable.
constexpr int kRecheckMillis = 100;

// Closes a descriptor once, and forgets it.
void CloseFd(int* fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

absl::Status ErrnoStatus(absl::string_view what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(err)));
}

// Milliseconds until `deadline`, rounded up, at least 0.
int MillisUntil(absl::Time deadline, absl::Time now) {
  if (deadline <= now) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(deadline - now) + 1, kRecheckMillis * 10));
}

// Reads everything `*fd` has now. Returns false at EOF or on an error, after
// closing it. `sink` gets each chunk.
template <typename Sink>
bool Drain(int* fd, Sink sink) {
  char buffer[kChunk];
  while (true) {
    ssize_t n = read(*fd, buffer, sizeof(buffer));
    if (n > 0) {
      sink(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    CloseFd(fd);
    return false;
  }
}

// The spawned process's pipes and their parent ends; closes what is left.
struct Pipes {
  int stdin_read = -1, stdin_write = -1;
  int stdout_read = -1, stdout_write = -1;
  int stderr_read = -1, stderr_write = -1;

  ~Pipes() {
    for (int* fd : {&stdin_read, &stdin_write, &stdout_read, &stdout_write,
                    &stderr_read, &stderr_write}) {
      CloseFd(fd);
    }
  }

  absl::Status Open() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
    stdin_read = p[0];
    stdin_write = p[1];
    if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
    stdout_read = p[0];
    stdout_write = p[1];
    if (pipe2(p, O_CLOEXEC) != 0) return ErrnoStatus("pipe2", errno);
    stderr_read = p[0];
    stderr_write = p[1];
    for (int fd : {stdin_write, stdout_read, stderr_read}) {
      int flags = fcntl(fd, F_GETFL);
      if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return ErrnoStatus("fcntl", errno);
      }
    }
    return absl::OkStatus();
  }
};

// posix_spawn's attribute and file-action objects, destroyed on scope exit.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actions_ok = false;
  bool attr_ok = false;

  ~SpawnSetup() {
    if (actions_ok) posix_spawn_file_actions_destroy(&actions);
    if (attr_ok) posix_spawnattr_destroy(&attr);
  }

  int Init(const Pipes& pipes) {
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    actions_ok = true;
    // dup2 clears close-on-exec on the new descriptors; everything else we
    // opened is close-on-exec and so does not reach the child.
    if ((rc = posix_spawn_file_actions_adddup2(&actions, pipes.stdin_read,
                                               STDIN_FILENO)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions, pipes.stdout_write,
                                               STDOUT_FILENO)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&actions, pipes.stderr_write,
                                               STDERR_FILENO)) != 0) {
      return rc;
    }
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) return rc;
    attr_ok = true;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    if ((rc = posix_spawnattr_setflags(
             &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                        POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) {
      return rc;
    }
    return 0;
  }
};

int OpenPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  return -1;
#endif
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         access(path.c_str(), X_OK) == 0;
}

}  // namespace

CommandRunner::CommandRunner(std::vector<std::string> argv,
                             CommandRunnerOptions options)
    : argv_(std::move(argv)), options_(options) {
  // A child that exits without reading all its input must not take the
  // worker down with it.
  signal(SIGPIPE, SIG_IGN);
  kill_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

CommandRunner::~CommandRunner() { CloseFd(&kill_fd_); }

void CommandRunner::KillAll() {
  killed_.store(true);
  if (kill_fd_ >= 0) {
    uint64_t one = 1;
    // Only wakes pollers; a failed write just delays them to their recheck.
    ssize_t ignored = write(kill_fd_, &one, sizeof(one));
    (void)ignored;
  }
}

absl::StatusOr<CommandResult> CommandRunner::Run(
    absl::string_view input, const std::atomic<bool>* cancel) {
  if (argv_.empty()) return absl::InvalidArgumentError("empty command");
  Pipes pipes;
  if (absl::Status opened = pipes.Open(); !opened.ok()) return opened;
  SpawnSetup setup;
  if (int rc = setup.Init(pipes); rc != 0) {
    return ErrnoStatus("posix_spawn setup", rc);
  }
  std::vector<char*> args;
  args.reserve(argv_.size() + 1);
  for (const std::string& arg : argv_) {
    args.push_back(const_cast<char*>(arg.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &setup.actions, &setup.attr, args.data(),
                        environ);
  CloseFd(&pipes.stdin_read);
  CloseFd(&pipes.stdout_write);
  CloseFd(&pipes.stderr_write);
  if (rc != 0) {
    std::string message =
        absl::StrCat("cannot run '", argv_[0], "': ", strerror(rc));
    if (rc == ENOENT || rc == ENOTDIR) return absl::NotFoundError(message);
    if (rc == EACCES || rc == EPERM) {
      return absl::PermissionDeniedError(message);
    }
    return absl::InternalError(message);
  }

  int pid_fd = OpenPidFd(pid);
  CommandResult result;
  size_t written = 0;
  if (input.empty()) CloseFd(&pipes.stdin_write);
  bool reaped = false;
  int wait_status = 0;
  absl::Time exit_time;
  bool term_sent = false;
  bool kill_sent = false;
  absl::Time term_time;
  std::string stderr_buffer;

  auto on_stdout = [&](const char* data, size_t n) {
    size_t room = options_.max_stdout_bytes - result.stdout_data.size();
    if (n > room) {
      result.stdout_truncated = true;
      n = room;
    }
    result.stdout_data.append(data, n);
  };
  auto on_stderr = [&](const char* data, size_t n) {
    stderr_buffer.append(data, n);
    // Trim only now and then, so a chatty child costs linear time.
    if (stderr_buffer.size() > 2 * options_.stderr_tail_bytes + kChunk) {
      stderr_buffer.erase(0, stderr_buffer.size() - options_.stderr_tail_bytes);
    }
  };

  while (true) {
    absl::Time now = absl::Now();
    const bool want_kill =
        killed_.load() || (cancel != nullptr && cancel->load());
    if (want_kill && !reaped) {
      if (!term_sent) {
        kill(-pid, SIGTERM);
        term_sent = true;
        term_time = now;
        result.killed_by_runner = true;
      } else if (!kill_sent && now - term_time >= options_.kill_grace) {
        kill(-pid, SIGKILL);
        kill_sent = true;
      }
    }
    if (!reaped) {
      pid_t r = waitpid(pid, &wait_status, WNOHANG);
      if (r == pid) {
        reaped = true;
        exit_time = now;
        CloseFd(&pid_fd);
      } else if (r < 0 && errno != EINTR) {
        // Someone else reaped it (SIGCHLD ignored?): no status to report.
        CloseFd(&pid_fd);
        return ErrnoStatus("waitpid", errno);
      }
    }
    const bool output_open = pipes.stdout_read >= 0 || pipes.stderr_read >= 0;
    if (reaped && (!output_open || now - exit_time >= options_.drain_timeout)) {
      break;
    }

    pollfd fds[5];
    int nfds = 0;
    int stdin_index = -1, stdout_index = -1, stderr_index = -1;
    if (pipes.stdin_write >= 0) {
      stdin_index = nfds;
      fds[nfds++] = pollfd{pipes.stdin_write, POLLOUT, 0};
    }
    if (pipes.stdout_read >= 0) {
      stdout_index = nfds;
      fds[nfds++] = pollfd{pipes.stdout_read, POLLIN, 0};
    }
    if (pipes.stderr_read >= 0) {
      stderr_index = nfds;
      fds[nfds++] = pollfd{pipes.stderr_read, POLLIN, 0};
    }
    if (!reaped && pid_fd >= 0) fds[nfds++] = pollfd{pid_fd, POLLIN, 0};
    // Once acted on, the (level-triggered) kill event would only spin us.
    if (!want_kill && kill_fd_ >= 0) {
      fds[nfds++] = pollfd{kill_fd_, POLLIN, 0};
    }

    int timeout = -1;
    auto at_most = [&timeout](int millis) {
      timeout = timeout < 0 ? millis : std::min(timeout, millis);
    };
    if (cancel != nullptr && !want_kill) at_most(kRecheckMillis);
    if (!reaped && pid_fd < 0) at_most(kRecheckMillis);
    if (term_sent && !kill_sent && !reaped) {
      at_most(MillisUntil(term_time + options_.kill_grace, now));
    }
    if (reaped) at_most(MillisUntil(exit_time + options_.drain_timeout, now));
    if (kill_fd_ < 0 && !want_kill) at_most(kRecheckMillis);

    int ready = poll(fds, nfds, timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      kill(-pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      CloseFd(&pid_fd);
      return ErrnoStatus("poll", err);
    }
    if (stdin_index >= 0 && fds[stdin_index].revents != 0) {
      while (written < input.size()) {
        size_t n = std::min(kChunk, input.size() - written);
        ssize_t w = write(pipes.stdin_write, input.data() + written, n);
        if (w > 0) {
          written += static_cast<size_t>(w);
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        // EPIPE: the child closed its stdin; it does not want the rest.
        written = input.size();
      }
      if (written >= input.size()) CloseFd(&pipes.stdin_write);
    }
    if (stdout_index >= 0 && fds[stdout_index].revents != 0) {
      Drain(&pipes.stdout_read, on_stdout);
    }
    if (stderr_index >= 0 && fds[stderr_index].revents != 0) {
      Drain(&pipes.stderr_read, on_stderr);
    }
  }
  // Read what is already buffered in pipes still held open by a background
  // grandchild; then stop caring about them.
  if (pipes.stdout_read >= 0) Drain(&pipes.stdout_read, on_stdout);
  if (pipes.stderr_read >= 0) Drain(&pipes.stderr_read, on_stderr);

  if (stderr_buffer.size() > options_.stderr_tail_bytes) {
    stderr_buffer.erase(0, stderr_buffer.size() - options_.stderr_tail_bytes);
  }
  result.stderr_tail = std::move(stderr_buffer);
  if (WIFSIGNALED(wait_status)) {
    result.signaled = true;
    result.term_signal = WTERMSIG(wait_status);
  } else {
    result.exit_code = WEXITSTATUS(wait_status);
  }
  return result;
}

bool IsRunnable(const std::string& program) {
  if (program.empty()) return false;
  if (program.find('/') != std::string::npos) {
    return IsExecutableFile(program);
  }
  const char* path = getenv("PATH");
  std::string search = path != nullptr ? path : "/bin:/usr/bin";
  for (absl::string_view dir : absl::StrSplit(search, ':')) {
    std::string candidate =
        dir.empty() ? program : absl::StrCat(dir, "/", program);
    if (IsExecutableFile(candidate)) return true;
  }
  return false;
}

}  // namespace stepflow::worker
