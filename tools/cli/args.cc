#include "tools/cli/args.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace stepflow::cli {
namespace {

// Help text starts in this column (unless the flag itself is wider).
constexpr size_t kHelpColumn = 30;

const FlagSpec* FindLong(const std::vector<FlagSpec>& specs,
                         absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& specs, char name) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == name) return &spec;
  }
  return nullptr;
}

absl::Status CheckValue(const FlagSpec& spec, const std::string& value) {
  switch (spec.kind) {
    case FlagKind::kBool:
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat(
            "flag --", spec.name, " takes no value (or =true / =false)"));
      }
      break;
    case FlagKind::kInt: {
      int64_t number = 0;
      if (!absl::SimpleAtoi(value, &number) || number <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec.name,
                         " needs a positive integer, got '", value, "'"));
      }
      break;
    }
    case FlagKind::kNumber: {
      double number = 0;
      if (!absl::SimpleAtod(value, &number) || !(number > 0)) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec.name,
                         " needs a positive number, got '", value, "'"));
      }
      break;
    }
    case FlagKind::kString:
      break;
  }
  if (!spec.choices.empty() &&
      std::find(spec.choices.begin(), spec.choices.end(), value) ==
          spec.choices.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("flag --", spec.name, " must be one of ",
                     absl::StrJoin(spec.choices, ", "), "; got '", value, "'"));
  }
  return absl::OkStatus();
}

}  // namespace

bool ParsedArgs::Has(absl::string_view name) const {
  return flags.find(std::string(name)) != flags.end();
}

bool ParsedArgs::IsSet(absl::string_view name) const {
  auto it = flags.find(std::string(name));
  return it != flags.end() && it->second != "false";
}

std::string ParsedArgs::Get(absl::string_view name,
                            absl::string_view default_value) const {
  auto it = flags.find(std::string(name));
  return it == flags.end() ? std::string(default_value) : it->second;
}

int64_t ParsedArgs::GetInt(absl::string_view name,
                           int64_t default_value) const {
  auto it = flags.find(std::string(name));
  int64_t value = default_value;
  if (it != flags.end() && !absl::SimpleAtoi(it->second, &value)) {
    return default_value;
  }
  return value;
}

double ParsedArgs::GetNumber(absl::string_view name,
                             double default_value) const {
  auto it = flags.find(std::string(name));
  double value = default_value;
  if (it != flags.end() && !absl::SimpleAtod(it->second, &value)) {
    return default_value;
  }
  return value;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positionals.insert(parsed.positionals.end(), args.begin() + i + 1,
                                args.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (stop_at_positional) {
        parsed.positionals.insert(parsed.positionals.end(), args.begin() + i,
                                  args.end());
        break;
      }
      parsed.positionals.push_back(arg);
      continue;
    }

    const FlagSpec* spec = nullptr;
    std::string shown;  // the flag as the user typed it, for messages
    std::string value;
    bool has_inline_value = false;
    if (arg[1] == '-') {
      absl::string_view body = absl::string_view(arg).substr(2);
      size_t eq = body.find('=');
      absl::string_view name = body.substr(0, eq);
      if (eq != absl::string_view::npos) {
        value = std::string(body.substr(eq + 1));
        has_inline_value = true;
      }
      spec = FindLong(specs, name);
      shown = absl::StrCat("--", name);
    } else if (arg.size() == 2) {
      spec = FindShort(specs, arg[1]);
      shown = arg;
    } else {
      shown = arg;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", shown));
    }

    if (!has_inline_value) {
      if (spec->kind == FlagKind::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "flag ", shown, " needs a value (", spec->value_name, ")"));
      }
    }
    if (absl::Status status = CheckValue(*spec, value); !status.ok()) {
      return status;
    }
    parsed.flags[spec->name] = value;
  }
  return parsed;
}

std::string FormatHelpRow(absl::string_view term, absl::string_view help) {
  std::string left = absl::StrCat("  ", term);
  std::string out = left;
  if (left.size() + 2 > kHelpColumn) {
    absl::StrAppend(&out, "\n", std::string(kHelpColumn, ' '));
  } else {
    absl::StrAppend(&out, std::string(kHelpColumn - left.size(), ' '));
  }
  std::vector<absl::string_view> lines = absl::StrSplit(help, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) absl::StrAppend(&out, std::string(kHelpColumn, ' '));
    absl::StrAppend(&out, lines[i], "\n");
  }
  return out;
}

std::string FormatFlagHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& spec : specs) {
    std::string term;
    if (spec.short_name != 0) {
      absl::StrAppend(&term, "-", std::string(1, spec.short_name), ", ");
    }
    absl::StrAppend(&term, "--", spec.name);
    if (spec.kind != FlagKind::kBool) {
      absl::StrAppend(&term, " ",
                      spec.value_name.empty() ? "VALUE" : spec.value_name);
    }
    absl::StrAppend(&out, FormatHelpRow(term, spec.help));
  }
  return out;
}

}  // namespace stepflow::cli
