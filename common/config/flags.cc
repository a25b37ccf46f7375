#include "common/config/flags.h"

#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace stepflow::config {

void FlagSet::Add(std::string name, std::string* value, std::string help) {
  flags_.push_back(Flag{name, std::move(help), value->empty() ? "" : absl::StrCat("\"", *value, "\""),
                        false, [value](absl::string_view text) {
                          *value = std::string(text);
                          return absl::OkStatus();
                        }});
}

void FlagSet::Add(std::string name, int* value, std::string help) {
  flags_.push_back(Flag{name, std::move(help), std::to_string(*value), false,
                        [value, name](absl::string_view text) {
                          if (!absl::SimpleAtoi(text, value)) {
                            return absl::InvalidArgumentError(
                                absl::StrCat("--", name, " wants an integer, got '", text, "'"));
                          }
                          return absl::OkStatus();
                        }});
}

void FlagSet::Add(std::string name, int64_t* value, std::string help) {
  flags_.push_back(Flag{name, std::move(help), std::to_string(*value), false,
                        [value, name](absl::string_view text) {
                          if (!absl::SimpleAtoi(text, value)) {
                            return absl::InvalidArgumentError(
                                absl::StrCat("--", name, " wants an integer, got '", text, "'"));
                          }
                          return absl::OkStatus();
                        }});
}

void FlagSet::Add(std::string name, bool* value, std::string help) {
  flags_.push_back(Flag{name, std::move(help), *value ? "true" : "false", true,
                        [value, name](absl::string_view text) {
                          if (!absl::SimpleAtob(text, value)) {
                            return absl::InvalidArgumentError(
                                absl::StrCat("--", name, " wants true or false, got '", text, "'"));
                          }
                          return absl::OkStatus();
                        }});
}

FlagSet::Flag* FlagSet::Find(absl::string_view name) {
  for (Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::Status FlagSet::Parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) after_dash_dash_.emplace_back(argv[i]);
      break;
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      continue;
    }
    if (arg.size() < 3 || arg.substr(0, 2) != "--") {
      positional_.emplace_back(arg);
      continue;
    }
    arg.remove_prefix(2);
    absl::string_view name = arg;
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
    }
    Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!value.has_value()) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    }
    if (absl::Status status = flag->set(*value); !status.ok()) return status;
  }
  return absl::OkStatus();
}

std::optional<int> FlagSet::ParseOrExit(int argc, char** argv, int first) {
  absl::Status status = Parse(argc, argv, first);
  if (help_requested_) {
    std::cout << Usage();
    return 0;
  }
  if (!status.ok()) {
    std::cerr << program_ << ": " << status.message() << "\n\n" << Usage();
    return 2;
  }
  return std::nullopt;
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("Usage: ", program_, " [flags]\n\n", description_, "\n\nFlags:\n");
  for (const Flag& flag : flags_) {
    absl::StrAppend(&out, "  --", flag.name, flag.is_bool ? "" : " VALUE", "\n      ", flag.help);
    if (!flag.default_text.empty()) absl::StrAppend(&out, " (default ", flag.default_text, ")");
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "  --help\n      Print this help and exit.\n");
  return out;
}

}  // namespace stepflow::config
