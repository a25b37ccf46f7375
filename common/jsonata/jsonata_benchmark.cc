// Evaluation cost of typical Step Functions JSONata expressions (compiled
// once, evaluated per iteration) over a ~10 KiB state input. Run on demand:
//   build/common/jsonata/jsonata_benchmark [--benchmark_* flags]
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/json/json.h"
#include "common/jsonata/jsonata.h"

namespace stepflow::jsonata {
namespace {

json::Document MakeStates() {
  std::string items;
  for (int i = 0; i < 100; ++i) {
    absl::StrAppend(&items, i ? "," : "", R"({"id":")", i, R"(","price":)", i * 1.5,
                    R"(,"qty":)", i % 7, R"(,"tags":["a","b"]})");
  }
  std::string text = absl::StrCat(R"({"input":{"order":{"id":"o-1","items":[)", items,
                                  R"(]},"customer":{"name":"Ada","tier":"gold"}},)",
                                  R"("context":{"Execution":{"Name":"e1"}}})");
  return std::move(*json::Parse(text));
}

void Run(benchmark::State& state, const char* text) {
  json::Document states = MakeStates();
  absl::StatusOr<std::unique_ptr<Expression>> expr = Expression::Compile(text);
  if (!expr.ok()) {
    state.SkipWithError(std::string(expr.status().message()).c_str());
    return;
  }
  Bindings bindings{{"states", &states}};
  Environment env;
  for (auto _ : state) {
    json::Document out;
    absl::StatusOr<Result> r =
        (*expr)->Evaluate(nullptr, bindings, env, &out.GetAllocator());
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK_CAPTURE(Run, field, "$states.input.customer.name");
BENCHMARK_CAPTURE(Run, condition, "$states.input.customer.tier = 'gold'");
BENCHMARK_CAPTURE(Run, object, "{'id': $states.input.order.id, 'who': $states.input.customer.name}");
BENCHMARK_CAPTURE(Run, filter_map,
                  "$states.input.order.items[price > 100].{'id': id, 'total': price * qty}");
BENCHMARK_CAPTURE(Run, aggregate, "$sum($states.input.order.items.(price * qty))");
BENCHMARK_CAPTURE(Run, hof, "$map($states.input.order.items, function($i){$i.id & ':' & $i.qty})");
BENCHMARK_CAPTURE(Run, whole_input, "$states.input");

}  // namespace
}  // namespace stepflow::jsonata

BENCHMARK_MAIN();
