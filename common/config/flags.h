// A small command-line flag parser for Stepflow's binaries: every flag has a
// type, a default (the variable's initial value) and help text, and `--help`
// prints them all.
//
//   std::string data_dir = "./data";
//   int port = 7233;
//   FlagSet flags("stepflow-shard", "Runs a shard server.");
//   flags.Add("data-dir", &data_dir, "RocksDB folder");
//   flags.Add("port", &port, "gRPC port");
//   if (auto exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
//
// Accepts `--name value` and `--name=value`; `--flag` alone sets a bool;
// `--` ends flags. Not thread-safe; use from main.
#ifndef STEPFLOW_COMMON_CONFIG_FLAGS_H_
#define STEPFLOW_COMMON_CONFIG_FLAGS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace stepflow::config {

class FlagSet {
 public:
  FlagSet(std::string program, std::string description)
      : program_(std::move(program)), description_(std::move(description)) {}

  // The variables must outlive Parse.
  void Add(std::string name, std::string* value, std::string help);
  void Add(std::string name, int* value, std::string help);
  void Add(std::string name, int64_t* value, std::string help);
  void Add(std::string name, bool* value, std::string help);

  // Parses argv[first..]. Positional arguments (and everything after `--`)
  // go to positional(). `--help`/`-h` sets help_requested().
  absl::Status Parse(int argc, char** argv, int first = 1);

  // Parse, printing usage on --help (exit code 0) or errors (exit code 2);
  // nullopt when the program should go on.
  std::optional<int> ParseOrExit(int argc, char** argv, int first = 1);

  std::string Usage() const;
  bool help_requested() const { return help_requested_; }
  const std::vector<std::string>& positional() const { return positional_; }
  // Arguments after a literal `--`.
  const std::vector<std::string>& after_dash_dash() const { return after_dash_dash_; }

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<absl::Status(absl::string_view)> set;
  };
  Flag* Find(absl::string_view name);

  std::string program_;
  std::string description_;
  std::vector<Flag> flags_;
  std::vector<std::string> positional_;
  std::vector<std::string> after_dash_dash_;
  bool help_requested_ = false;
};

}  // namespace stepflow::config

#endif  // STEPFLOW_COMMON_CONFIG_FLAGS_H_
