// libFuzzer target: arbitrary bytes as an ASL definition.
//
// Each input goes through ValidateDefinition and Definition::Parse (which
// must agree); a valid definition is then run with input "{}" by the
// execution driver (execution_driver.h), whose random task outcomes and
// timer order are seeded from the bytes, so a crash file replays exactly.
// Any broken invariant aborts, which libFuzzer reports as a crash. As in the
// property test, definitions that may loop without ever waiting are not run
// (the interpreter has no history limit, so they never return).
//
// Built only by clang (the default GCC build skips it). Instrument the whole
// tree for coverage, or the fuzzer cannot see into common/asl:
//
//   CC=clang CXX=clang++ cmake -G Ninja -S . -B build-fuzz \
//     -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address"
//   ninja -C build-fuzz definition_fuzzer
//   mkdir -p /tmp/asl-corpus
//   cp examples/first-workflow/*.asl.json /tmp/asl-corpus/
//   build-fuzz/common/asl/fuzz/definition_fuzzer /tmp/asl-corpus \
//     -dict=common/asl/fuzz/asl.dict -max_len=8192 -timeout=10 \
//     -rss_limit_mb=4096 -max_total_time=60
//
// Add ",undefined" to the flags for UBSan too (RapidJSON's stack.h then
// reports a harmless "offset to null pointer" now and then). A finding is
// saved as crash-<sha1> (or timeout-/oom-/leak-) in the working directory;
// replay it with `build-fuzz/common/asl/fuzz/definition_fuzzer crash-<sha1>`.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/asl/definition.h"
#include "common/asl/fuzz/execution_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace asl = ::stepflow::asl;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<asl::Diagnostic> diagnostics =
      asl::ValidateDefinition(text);
  auto definition = asl::Definition::Parse(text);
  if (diagnostics.empty() != definition.ok()) {
    std::fprintf(stderr,
                 "ValidateDefinition found %zu problems but Parse says %s\n",
                 diagnostics.size(), definition.status().ToString().c_str());
    std::abort();
  }
  if (!definition.ok() || asl::fuzz::MayLoopWithoutWaiting(**definition))
    return 0;

  uint64_t seed = 14695981039346656037ull;  // FNV-1a of the bytes
  for (size_t i = 0; i < size; ++i) seed = (seed ^ data[i]) * 1099511628211ull;
  std::mt19937_64 rng(seed);
  asl::fuzz::DriveOptions options;
  options.check_serialization = asl::fuzz::IsValidUtf8(text);
  const asl::fuzz::DriveResult result =
      asl::fuzz::DriveExecution(**definition, "{}", rng, options);
  if (!result.violations.empty()) {
    std::fprintf(stderr, "broken invariants:\n  %s\n",
                 absl::StrJoin(result.violations, "\n  ").c_str());
    std::abort();
  }
  return 0;
}
