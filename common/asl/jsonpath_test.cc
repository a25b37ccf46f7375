#include "common/asl/jsonpath.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations, to check that Select() on a reference path
// allocates only its result.
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC cannot see that these frees pair with the malloc in operator new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace stepflow::asl {
namespace {

using ::testing::HasSubstr;

json::Document Doc(absl::string_view text) {
  absl::StatusOr<json::Document> doc = json::Parse(text);
  EXPECT_TRUE(doc.ok()) << doc.status();
  return doc.ok() ? std::move(*doc) : json::Document();
}

// Evaluate() rendered as text: the JSON result, or "NOT_FOUND: <message>" /
// "INVALID_ARGUMENT: <message>", or "PARSE: <message>".
std::string Eval(absl::string_view path, absl::string_view document) {
  absl::StatusOr<JsonPath> parsed = JsonPath::Parse(path);
  if (!parsed.ok()) return absl::StrCat("PARSE: ", parsed.status().message());
  json::Document doc = Doc(document);
  absl::StatusOr<json::Value> value = parsed->Evaluate(doc, doc.GetAllocator());
  if (!value.ok()) {
    return absl::StrCat(absl::StatusCodeToString(value.status().code()), ": ",
                        value.status().message());
  }
  return json::Serialize(*value);
}

std::string ParseError(absl::string_view path) {
  absl::StatusOr<JsonPath> parsed = JsonPath::Parse(path);
  EXPECT_FALSE(parsed.ok()) << path << " parsed";
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

std::string Canonical(absl::string_view path) {
  absl::StatusOr<JsonPath> parsed = JsonPath::Parse(path);
  return parsed.ok() ? parsed->Canonical() : parsed.status().ToString();
}

constexpr absl::string_view kStore = R"({
  "store": {
    "book": [
      {"category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century", "price": 8.95},
      {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour", "price": 12.99},
      {"category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553-21311-3", "price": 8.99},
      {"category": "fiction", "author": "J. R. R. Tolkien", "title": "The Lord of the Rings", "isbn": "0-395-19395-8", "price": 22.99}
    ],
    "bicycle": {"color": "red", "price": 19.95}
  },
  "expensive": 10
})";

// --- Names, indexes and the root --------------------------------------------

TEST(JsonPathTest, Root) {
  EXPECT_EQ(Eval("$", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(Eval("$", "42"), "42");
  EXPECT_EQ(Eval("  $  ", "true"), "true");  // Jayway trims blanks
  EXPECT_EQ(Canonical("$"), "$");
}

TEST(JsonPathTest, DotAndBracketNames) {
  EXPECT_EQ(Eval("$.a.b", R"({"a":{"b":[1,2]}})"), "[1,2]");
  EXPECT_EQ(Eval("$['a']['b']", R"({"a":{"b":3}})"), "3");
  EXPECT_EQ(Eval(R"($["a"]["b"])", R"({"a":{"b":3}})"), "3");
  EXPECT_EQ(Eval("$[ 'a' ]", R"({"a":2})"), "2");
  EXPECT_EQ(Eval("$.['a']", R"({"a":2})"), "2");
  EXPECT_EQ(Eval("$.key-dash", R"({"key-dash":1})"), "1");
  EXPECT_EQ(Eval("$.屬性", R"({"屬性":"v"})"), R"("v")");
  EXPECT_EQ(Eval("$.2", R"({"2":"two"})"), R"("two")");
  EXPECT_EQ(Eval("$.$", R"({"$":"dollar"})"), R"("dollar")");
  EXPECT_EQ(Eval("$['']", R"({"":0})"), "0");
  // Quotes after a dot are part of the name, as in Jayway.
  EXPECT_EQ(Eval("$.'a'", R"({"'a'":5,"a":6})"), "5");
}

TEST(JsonPathTest, BracketNameEscapes) {
  EXPECT_EQ(Eval(R"($['it\'s'])", R"({"it's":1})"), "1");
  EXPECT_EQ(Eval(R"($["say \"hi\""])", R"({"say \"hi\"":2})"), "2");
  EXPECT_EQ(Eval(R"($['back\\slash'])", R"({"back\\slash":3})"), "3");
  EXPECT_EQ(Eval(R"($['\u00e9t\u00e9'])", R"({"été":4})"), "4");
  EXPECT_EQ(Eval(R"($['tab\there'])", "{\"tab\\there\":5}"), "5");
  EXPECT_EQ(Eval(R"($['\ud83d\ude00'])", R"({"😀":6})"), "6");
  EXPECT_EQ(Eval("$['a.b']", R"({"a.b":7,"a":{"b":8}})"), "7");
  EXPECT_EQ(Eval("$[']']", R"({"]":9})"), "9");
  EXPECT_EQ(Eval("$['*']", R"({"*":10,"x":11})"), "10");
  EXPECT_EQ(Eval(R"($[':@."$,*\'\\'])", R"({":@.\"$,*'\\":12})"), "12");
}

TEST(JsonPathTest, Indexes) {
  EXPECT_EQ(Eval("$[0]", R"(["a","b","c"])"), R"("a")");
  EXPECT_EQ(Eval("$[2]", R"(["a","b","c"])"), R"("c")");
  EXPECT_EQ(Eval("$[-1]", R"(["a","b","c"])"), R"("c")");
  EXPECT_EQ(Eval("$[-3]", R"(["a","b","c"])"), R"("a")");
  EXPECT_EQ(Eval("$[010]", "[0,1,2,3,4,5,6,7,8,9,10,11]"), "10");
  EXPECT_EQ(Eval("$.a[1].b", R"({"a":[{"b":1},{"b":2}]})"), "2");
  EXPECT_THAT(Eval("$[3]", R"(["a","b","c"])"),
              "NOT_FOUND: No results for path: $[3]");
  EXPECT_THAT(Eval("$[-4]", R"(["a","b","c"])"),
              "NOT_FOUND: No results for path: $[-4]");
}

TEST(JsonPathTest, DefiniteAndSingleValue) {
  struct Case {
    const char* path;
    bool definite;
    bool single_value;
  };
  for (const Case& c : std::vector<Case>{
           {"$", true, true},
           {"$.a.b[0]", true, true},
           {"$['a'][-1]", true, true},
           {"$['a','b']", false, true},
           {"$.a.length()", false, true},
           {"$..a.sum()", false, true},
           {"$[*]", false, false},
           {"$.*", false, false},
           {"$[0,1]", false, false},
           {"$[0:1]", false, false},
           {"$..a", false, false},
           {"$[?(@.a)]", false, false},
           {"$['a','b'].c", false, false},
           {"$[*].length()", false, false},
       }) {
    absl::StatusOr<JsonPath> path = JsonPath::Parse(c.path);
    ASSERT_TRUE(path.ok()) << c.path << ": " << path.status();
    EXPECT_EQ(path->is_definite(), c.definite) << c.path;
    EXPECT_EQ(path->is_single_value(), c.single_value) << c.path;
  }
}

TEST(JsonPathTest, Canonical) {
  EXPECT_EQ(Canonical("$.a.b[0]"), "$['a']['b'][0]");
  EXPECT_EQ(Canonical(R"($["a"])"), R"($["a"])");
  EXPECT_EQ(Canonical("$['a','b']"), "$['a','b']");
  EXPECT_EQ(Canonical("$[0, 2]"), "$[0,2]");
  EXPECT_EQ(Canonical("$[1:]"), "$[1:]");
  EXPECT_EQ(Canonical("$[:2]"), "$[:2]");
  EXPECT_EQ(Canonical("$[-3:2:5]"), "$[-3:2]");
  EXPECT_EQ(Canonical("$.*"), "$[*]");
  EXPECT_EQ(Canonical("$..a[?(@.b > 1)]"), "$..['a'][?]");
  EXPECT_EQ(Canonical("$.a.length()"), "$['a'].length()");
  EXPECT_EQ(Canonical("$..a.sum()"), "$..['a'].sum()");
  EXPECT_EQ(Canonical("$$.Execution.Id"), "$$['Execution']['Id']");
  EXPECT_EQ(Canonical("$order.items[0]"), "$order['items'][0]");
}

// --- Context object and variables
// ---------------------------------------------

TEST(JsonPathTest, ContextObject) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse("$$.Execution.Id");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(path->is_context());
  EXPECT_FALSE(path->is_variable());
  EXPECT_TRUE(path->is_definite());
  json::Document context = Doc(R"({"Execution":{"Id":"arn:1"}})");
  absl::StatusOr<json::Value> id =
      path->Evaluate(context, context.GetAllocator());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(json::Serialize(*id), R"("arn:1")");
  EXPECT_EQ(Eval("$$", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(Eval("$$.Missing", "{}"),
            "NOT_FOUND: No results for path: $$['Missing']");
  EXPECT_EQ(Eval("$$.a.b", R"({"a":1})"),
            "NOT_FOUND: Expected to find an object with property ['b'] in path "
            "$$['a'] but found 'number'");
}

TEST(JsonPathTest, Variables) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse("$order.items[0].sku");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(path->is_variable());
  EXPECT_FALSE(path->is_context());
  EXPECT_EQ(path->variable_name(), "order");
  json::Document order = Doc(R"({"items":[{"sku":"X1"}]})");
  absl::StatusOr<json::Value> sku = path->Evaluate(order, order.GetAllocator());
  ASSERT_TRUE(sku.ok()) << sku.status();
  EXPECT_EQ(json::Serialize(*sku), R"("X1")");

  absl::StatusOr<JsonPath> whole = JsonPath::Parse("$_count2");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->variable_name(), "_count2");
  EXPECT_TRUE(whole->is_definite());
  EXPECT_EQ(Eval("$x[*]", "[1,2]"), "[1,2]");
  EXPECT_EQ(Eval("$x.missing", "{}"),
            "NOT_FOUND: No results for path: $x['missing']");

  absl::StatusOr<JsonPath> plain = JsonPath::Parse("$.a");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->is_variable());
  EXPECT_EQ(plain->variable_name(), "");
}

// --- Wildcards, unions and slices
// ---------------------------------------------

TEST(JsonPathTest, Wildcards) {
  EXPECT_EQ(Eval("$[*]", R"(["a",{"b":1},[2]])"), R"(["a",{"b":1},[2]])");
  EXPECT_EQ(Eval("$.*", R"({"x":1,"y":[2],"z":null})"), "[1,[2],null]");
  EXPECT_EQ(Eval("$[ * ]", R"({"x":1})"), "[1]");
  EXPECT_EQ(Eval("$.*", "42"), "[]");
  EXPECT_EQ(Eval("$.*.*", R"([[1,2],{"a":3},4])"), "[1,2,3]");
  EXPECT_EQ(Eval("$[*].a", R"([{"a":1},{"b":2},3,{"a":4}])"), "[1,4]");
  EXPECT_EQ(
      Eval("$.store.book[*].author", kStore),
      R"(["Nigel Rees","Evelyn Waugh","Herman Melville","J. R. R. Tolkien"])");
}

TEST(JsonPathTest, Unions) {
  EXPECT_EQ(Eval("$[0,2]", R"(["a","b","c"])"), R"(["a","c"])");
  EXPECT_EQ(Eval("$[2,0,0]", R"(["a","b","c"])"), R"(["c","a","a"])");
  EXPECT_EQ(Eval("$[0,-1,9]", R"(["a","b","c"])"), R"(["a","c"])");
  EXPECT_EQ(Eval("$[ 0 , 1 ]", R"(["a","b","c"])"), R"(["a","b"])");
  // A union of keys at the end is one object with the keys found.
  EXPECT_EQ(Eval("$['a','c']", R"({"a":1,"b":2,"c":3})"), R"({"a":1,"c":3})");
  EXPECT_EQ(Eval("$['a','missing']", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(Eval("$['a','a']", R"({"a":1})"), R"({"a":1})");
  EXPECT_EQ(Eval("$['x','y']", R"({"a":1})"), "{}");
  EXPECT_EQ(Eval("$[*]['a','b']", R"([{"a":1,"b":2,"c":3},{"b":4},5])"),
            R"([{"a":1,"b":2},{"b":4}])");
  // Elsewhere it selects each key.
  EXPECT_EQ(Eval("$['a','b'].v", R"({"a":{"v":1},"b":{"v":2}})"), "[1,2]");
  EXPECT_EQ(Eval("$['a','b'].v", R"({"b":{"v":2}})"), "[2]");
}

TEST(JsonPathTest, Slices) {
  constexpr absl::string_view kFive = R"(["a","b","c","d","e"])";
  EXPECT_EQ(Eval("$[1:3]", kFive), R"(["b","c"])");
  EXPECT_EQ(Eval("$[1:]", kFive), R"(["b","c","d","e"])");
  EXPECT_EQ(Eval("$[:2]", kFive), R"(["a","b"])");
  EXPECT_EQ(Eval("$[-2:]", kFive), R"(["d","e"])");
  EXPECT_EQ(Eval("$[:-3]", kFive), R"(["a","b"])");
  EXPECT_EQ(Eval("$[-9:]", kFive), R"(["a","b","c","d","e"])");
  EXPECT_EQ(Eval("$[1:100]", kFive), R"(["b","c","d","e"])");
  EXPECT_EQ(Eval("$[3:1]", kFive), "[]");
  EXPECT_EQ(Eval("$[7:9]", kFive), "[]");
  // Jayway ignores the step...
  EXPECT_EQ(Eval("$[0:4:2]", kFive), R"(["a","b","c","d"])");
  EXPECT_EQ(Eval("$[3::-1]", kFive), R"(["d","e"])");
  // ...and lets a negative start in [from:to] count from the end, unclamped.
  EXPECT_EQ(Eval("$[-2:1]", kFive), R"(["d","e","a"])");
  EXPECT_EQ(Eval("$[-3:-1]", kFive), R"(["c","d"])");
  EXPECT_EQ(Eval("$[0:2].k", R"([{"k":1},{"k":2},{"k":3}])"), "[1,2]");
  EXPECT_EQ(
      Eval("$[1:3]", R"({"a":1})"),
      "NOT_FOUND: Filter: [1:3] can only be applied to arrays; $ is an object");
  EXPECT_EQ(Eval("$.a[0:1]", R"({"a":null})"),
            "NOT_FOUND: The path $['a'] is null");
  EXPECT_EQ(Eval("$[*][0:1]", R"([[1,2],{"a":1},[3]])"), "[1,3]");
}

// --- Deep scan
// ------------------------------------------------------------------

TEST(JsonPathTest, DeepScan) {
  EXPECT_EQ(
      Eval("$..author", kStore),
      R"(["Nigel Rees","Evelyn Waugh","Herman Melville","J. R. R. Tolkien"])");
  EXPECT_EQ(Eval("$.store..price", kStore), "[8.95,12.99,8.99,22.99,19.95]");
  EXPECT_EQ(Eval("$..book[2].title", kStore), R"(["Moby Dick"])");
  EXPECT_EQ(Eval("$..book[-1:].title", kStore), R"(["The Lord of the Rings"])");
  EXPECT_EQ(Eval("$..*", R"({"a":[1,{"b":2}],"c":3})"),
            R"([[1,{"b":2}],3,1,{"b":2},2])");
  EXPECT_EQ(Eval("$..[0]", R"({"a":[[1,2],[3]],"b":[4]})"), "[[1,2],1,3,4]");
  EXPECT_EQ(Eval("$..a", "42"), "[]");
  EXPECT_EQ(Eval("$..['a','b']", R"({"x":{"a":1,"b":2},"y":{"a":3}})"),
            R"([{"a":1,"b":2}])");
}

TEST(JsonPathTest, DeepScanKeepsJaywaysArrayHandling) {
  // An array the index applies to hands the next segment each element, and
  // a final name must then sit at the written index.
  EXPECT_EQ(
      Eval(
          "$..[1].key",
          R"({"k":[{"key":"some"},{"key":42}],"kk":[[{"key":100},{"key":200}],[{"key":400},{"key":500}]]})"),
      "[42,200,500]");
  // With more segments after the index, every element qualifies.
  EXPECT_EQ(Eval("$..[0].a.b", R"({"x":[{"a":{"b":1}},{"a":{"b":2}}]})"),
            "[1,2]");
  // A wildcard before a filter lists elements of arrays twice: once when
  // the scan hands them to the filter, once below their parent.
  EXPECT_EQ(Eval("$..*[?(@.id>2)]",
                 R"([{"one":[{"id":1},{"id":3}],"two":{"id":5}},{"id":6}])"),
            R"([{"id":6},{"id":3},{"id":5},{"id":3}])");
}

// --- Filters
// ----------------------------------------------------------------------

TEST(JsonPathTest, FilterComparisons) {
  EXPECT_EQ(Eval("$.store.book[?(@.price < 10)].title", kStore),
            R"(["Sayings of the Century","Moby Dick"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price <= 8.99)].price", kStore),
            "[8.95,8.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price > 20)].price", kStore), "[22.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price >= 22.99)].price", kStore), "[22.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.category == 'reference')].author", kStore),
            R"(["Nigel Rees"])");
  EXPECT_EQ(Eval(R"($.store.book[?(@.category != "fiction")].author)", kStore),
            R"(["Nigel Rees"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price < $.expensive)].price", kStore),
            "[8.95,8.99]");
  EXPECT_EQ(Eval("$[?(@.a == @.b)]",
                 R"([{"a":1,"b":1},{"a":1,"b":2},{"a":[1],"b":[1]},{}])"),
            R"([{"a":1,"b":1},{"a":[1],"b":[1]}])");
  EXPECT_EQ(Eval("$[?(@ > 'b')]", R"(["a","b","c",3])"), R"(["c"])");
  EXPECT_EQ(Eval("$[?(@.a == true)]", R"([{"a":true},{"a":"true"},{"a":1}])"),
            R"([{"a":true}])");
  EXPECT_EQ(Eval("$[?(@.a == null)]", R"([{"a":null},{"b":1}])"),
            R"([{"a":null}])");
  EXPECT_EQ(Eval("$[?(@.a == -1.5e0)]", R"([{"a":-1.5},{"a":1.5}])"),
            R"([{"a":-1.5}])");
  EXPECT_EQ(Eval("$[?(1 == 1)]", "[1,2]"), "[1,2]");
  EXPECT_EQ(
      Eval("$[?(@.a == {'k':'v'})]", R"([{"a":{"k":"v"}},{"a":{"k":"w"}}])"),
      R"([{"a":{"k":"v"}}])");
  EXPECT_EQ(
      Eval("$[?(@.a == [1,2])]", R"([{"a":[1,2]},{"a":[2,1]},{"a":[1.0,2]}])"),
      R"([{"a":[1,2]}])");
  // Jayway compares a JSON literal on the left with nothing.
  EXPECT_EQ(Eval("$[?([1,2] == @.a)]", R"([{"a":[1,2]}])"), "[]");
}

TEST(JsonPathTest, FilterStringsAndNumbers) {
  constexpr absl::string_view kValues =
      R"([{"k":42},{"k":"42"},{"k":42.0},{"k":"42.0"},{"k":"042"},{"k":"x"}])";
  // A number on the left parses the string; a string on the left compares
  // with the number's BigDecimal text.
  EXPECT_EQ(Eval("$[?(@.k == 42)]", kValues),
            R"([{"k":42},{"k":"42"},{"k":42.0}])");
  EXPECT_EQ(Eval("$[?(@.k == 42.0)]", kValues),
            R"([{"k":42},{"k":42.0},{"k":"42.0"}])");
  EXPECT_EQ(Eval("$[?(@.k == '42')]", kValues),
            R"([{"k":42},{"k":"42"},{"k":42.0}])");
  EXPECT_EQ(Eval("$[?(@.k === 42)]", kValues), R"([{"k":42},{"k":42.0}])");
  EXPECT_EQ(Eval("$[?(@.k !== 42)]", kValues),
            R"([{"k":"42"},{"k":"42.0"},{"k":"042"},{"k":"x"}])");
  EXPECT_EQ(Eval("$[?(@.k == 010)]", R"([{"k":"010"},{"k":"10"},{"k":10}])"),
            R"([{"k":"10"},{"k":10}])");
  // Ordering needs two numbers or two strings.
  EXPECT_EQ(Eval("$[?(@.k < 50)]", kValues), R"([{"k":42},{"k":42.0}])");
  // A missing value equals nothing, so != holds.
  EXPECT_EQ(Eval("$[?(@.k != 1)]", R"([{"k":1},{"j":1}])"), R"([{"j":1}])");
  // UTF-16 order: U+FFFD sorts after a supplementary character.
  EXPECT_EQ(Eval("$[?(@ > '😀')]", R"(["\uFFFD","a"])"), R"(["�"])");
}

TEST(JsonPathTest, FilterExistence) {
  EXPECT_EQ(Eval("$.store.book[?(@.isbn)].title", kStore),
            R"(["Moby Dick","The Lord of the Rings"])");
  EXPECT_EQ(Eval("$.store.book[?(!@.isbn)].title", kStore),
            R"(["Sayings of the Century","Sword of Honour"])");
  EXPECT_EQ(Eval("$[?(@.a)]", R"([{"a":null},{"a":false},{"b":1},5])"),
            R"([{"a":null},{"a":false}])");
  EXPECT_EQ(Eval("$[?(@.a.b)]", R"([{"a":{"b":0}},{"a":{}},{"a":1}])"),
            R"([{"a":{"b":0}}])");
  EXPECT_EQ(Eval("$[?(@)]", R"([null,0])"), "[null,0]");
  // An indefinite path exists whenever it can be evaluated.
  EXPECT_EQ(Eval("$[?(@.a.*)]", R"([{"a":0},{"a":[]},{"b":1}])"),
            R"([{"a":0},{"a":[]}])");
  EXPECT_EQ(Eval("$[?(@.a[?(@.p > 10)])]", R"([{"a":[{"p":1}]},{"b":2}])"),
            R"([{"a":[{"p":1}]}])");
  // A filter applied to an object tests the object itself.
  EXPECT_EQ(Eval("$[?(@.key)]", R"({"key":1,"other":{"key":2}})"),
            R"([{"key":1,"other":{"key":2}}])");
  EXPECT_EQ(
      Eval("$.a[?(@.b)]", R"({"a":7})"),
      "INVALID_ARGUMENT: Filter: [?] can not be applied to primitives. Current "
      "context is: 7");
  EXPECT_EQ(Eval("$[*][?(@.b)]", R"([7,[{"b":1}]])"), R"([{"b":1}])");
}

TEST(JsonPathTest, FilterLogic) {
  constexpr absl::string_view kItems =
      R"([{"a":1,"b":1},{"a":1,"b":2},{"a":2,"b":1},{"a":2,"b":2}])";
  EXPECT_EQ(Eval("$[?(@.a == 1 && @.b == 2)]", kItems), R"([{"a":1,"b":2}])");
  EXPECT_EQ(Eval("$[?(@.a == 1 || @.b == 2)]", kItems),
            R"([{"a":1,"b":1},{"a":1,"b":2},{"a":2,"b":2}])");
  EXPECT_EQ(Eval("$[?(!(@.a == 1))]", kItems),
            R"([{"a":2,"b":1},{"a":2,"b":2}])");
  EXPECT_EQ(Eval("$[?(@.a == 2 && (@.b == 1 || @.b == 3))]", kItems),
            R"([{"a":2,"b":1}])");
  EXPECT_EQ(Eval("$[?(@.a == 1 && @.b == 1 || @.a == 2 && @.b == 2)]", kItems),
            R"([{"a":1,"b":1},{"a":2,"b":2}])");
  EXPECT_EQ(Eval("$[?(!(@.a == 1) && !(@.b == 1))]", kItems),
            R"([{"a":2,"b":2}])");
}

TEST(JsonPathTest, FilterRegex) {
  constexpr absl::string_view kNames =
      R"([{"n":"hello world"},{"n":"Hello"},{"n":"say hello"},{"n":42},{"m":"hello"}])";
  EXPECT_EQ(Eval("$[?(@.n =~ /hello.*/)].n", kNames), R"(["hello world"])");
  EXPECT_EQ(Eval("$[?(@.n =~ /hello.*/i)].n", kNames),
            R"(["hello world","Hello"])");
  EXPECT_EQ(Eval("$[?(@.n =~ /.*hello.*/)].n", kNames),
            R"(["hello world","say hello"])");
  EXPECT_EQ(Eval("$[?(@.n =~ /4\\d/)].n", kNames), "[42]");
  EXPECT_EQ(Eval("$[?(@.n =~ /a\\/b/)].n", R"([{"n":"a/b"}])"), R"(["a/b"])");
  EXPECT_EQ(Eval("$[?(@.n =~ / h e l l o  # comment\n/x)].n", kNames), "[]");
  EXPECT_EQ(Eval("$[?(@.n =~ /h e l l o/x)].n", R"([{"n":"hello"}])"),
            R"(["hello"])");
  EXPECT_EQ(Eval("$[?(@.n =~ /a.b/)].n", "[{\"n\":\"a\\nb\"}]"), "[]");
  EXPECT_EQ(Eval("$[?(@.n =~ /a.b/s)].n", "[{\"n\":\"a\\nb\"}]"),
            R"(["a\nb"])");
  // A missing value matches as the empty string.
  EXPECT_EQ(Eval("$[?(@.n =~ /.*/)]", R"([{"m":1}])"), R"([{"m":1}])");
}

// Whether `input` matches the filter regex literal `regex` (e.g. "/a+/i").
bool RegexMatches(absl::string_view regex, absl::string_view input) {
  absl::StatusOr<JsonPath> path =
      JsonPath::Parse(absl::StrCat("$[?(@ =~ ", regex, ")]"));
  EXPECT_TRUE(path.ok()) << path.status();
  if (!path.ok()) return false;
  json::Document doc;
  doc.SetArray();
  doc.PushBack(
      json::Value(input.data(), static_cast<rapidjson::SizeType>(input.size()),
                  doc.GetAllocator()),
      doc.GetAllocator());
  return path->Select(doc).size() == 1;
}

TEST(JsonPathTest, RegexJavaSyntax) {
  EXPECT_TRUE(RegexMatches(R"(/\d{3}-\d{4}/)", "555-1234"));
  EXPECT_FALSE(RegexMatches(R"(/\d{3}-\d{4}/)", "555-123"));
  EXPECT_TRUE(RegexMatches(R"(/[A-Z][a-z]+(?: [A-Z][a-z]+)*/)", "Moby Dick"));
  EXPECT_TRUE(RegexMatches(R"(/[^0-9]+/)", "abc"));
  EXPECT_FALSE(RegexMatches(R"(/[^0-9]+/)", "ab1"));
  EXPECT_TRUE(RegexMatches(R"(/(?<word>\w+)\s+\w+/)", "hello world"));
  EXPECT_TRUE(RegexMatches(R"(/a{2,3}b?/)", "aaa"));
  EXPECT_FALSE(RegexMatches(R"(/a{2,3}b?/)", "aaaa"));
  EXPECT_TRUE(RegexMatches(R"(/.*?end/)", "the end"));
  EXPECT_TRUE(RegexMatches(R"(/cat|dog/)", "dog"));
  EXPECT_FALSE(
      RegexMatches(R"(/cat|dog/)", "cats"));  // the whole input must match
  EXPECT_TRUE(RegexMatches(R"(/^\Qa.b\E$/)", "a.b"));
  EXPECT_FALSE(RegexMatches(R"(/\Qa.b\E/)", "axb"));
  EXPECT_TRUE(RegexMatches(R"(/\p{Alpha}+\P{Alpha}/)", "abc1"));
  EXPECT_TRUE(RegexMatches(R"(/.*\bword\b.*/)", "a word here"));
  EXPECT_FALSE(RegexMatches(R"(/.*\bword\b.*/)", "swordfish"));
  EXPECT_TRUE(RegexMatches(R"(/\x41\u0042\0103/)", "ABC"));
  EXPECT_TRUE(RegexMatches(R"(/a\.b/)", "a.b"));
  EXPECT_TRUE(RegexMatches(R"(/[\w-]+/)", "a-b_c"));
  // Code points, not bytes.
  EXPECT_TRUE(RegexMatches("/^.$/", "é"));
  EXPECT_TRUE(RegexMatches("/^.$/", "😀"));
  EXPECT_TRUE(RegexMatches("/[à-ÿ]+/", "éü"));
}

TEST(JsonPathTest, RegexFlags) {
  EXPECT_FALSE(RegexMatches("/hello/", "HeLLo"));
  EXPECT_TRUE(RegexMatches("/hello/i", "HeLLo"));
  EXPECT_TRUE(RegexMatches("/(?i)hello/", "HELLO"));
  EXPECT_TRUE(RegexMatches("/(?i:he)llo/", "HEllo"));
  EXPECT_FALSE(RegexMatches("/(?i:he)llo/", "HELLO"));
  EXPECT_TRUE(RegexMatches("/[a-c]+/i", "AbC"));
  EXPECT_FALSE(RegexMatches("/[^a]/i", "A"));
  EXPECT_FALSE(RegexMatches("/é/i", "É"));  // Java folds ASCII only without u
  EXPECT_FALSE(RegexMatches("/a.b/", "a\nb"));
  EXPECT_TRUE(RegexMatches("/a.b/s", "a\nb"));
  EXPECT_FALSE(RegexMatches("/a.b/", "a\rb"));
  EXPECT_TRUE(
      RegexMatches("/a.b/d", "a\rb"));  // UNIX_LINES: only \n ends a line
  EXPECT_TRUE(RegexMatches(R"(/a$\n^b/m)", "a\nb"));
  EXPECT_FALSE(RegexMatches(R"(/a$\n^b/)", "a\nb"));
  EXPECT_TRUE(RegexMatches(R"(/abc$\n/)", "abc\n"));
  EXPECT_TRUE(RegexMatches("/a b c # letters/x", "abc"));
  EXPECT_TRUE(RegexMatches(R"(/a\ b/x)", "a b"));
}

TEST(JsonPathTest, RegexRejectsWhatNeedsBacktracking) {
  EXPECT_THAT(ParseError(R"($[?(@ =~ /(a)\1/)])"),
              HasSubstr("back-references are not supported"));
  EXPECT_THAT(ParseError("$[?(@ =~ /(?=a)a/)]"),
              HasSubstr("look-around groups are not supported"));
  EXPECT_THAT(ParseError("$[?(@ =~ /(?<!a)b/)]"),
              HasSubstr("look-around groups are not supported"));
  EXPECT_THAT(ParseError("$[?(@ =~ /(?>a)/)]"),
              HasSubstr("atomic groups are not supported"));
  EXPECT_THAT(ParseError("$[?(@ =~ /a*+/)]"),
              HasSubstr("possessive quantifiers are not supported"));
  EXPECT_THAT(ParseError("$[?(@ =~ /[a[b]]/)]"),
              HasSubstr("nested character classes"));
  EXPECT_THAT(ParseError(R"($[?(@ =~ /\p{L}/)])"),
              HasSubstr("unsupported character property"));
  EXPECT_THAT(ParseError("$[?(@ =~ /*a/)]"),
              HasSubstr("dangling meta character '*'"));
  EXPECT_THAT(ParseError("$[?(@ =~ /a{/)]"), HasSubstr("illegal repetition"));
  EXPECT_THAT(ParseError("$[?(@ =~ /[z-a]/)]"),
              HasSubstr("illegal character range"));
  EXPECT_THAT(ParseError("$[?(@ =~ /(a/)]"), HasSubstr("unclosed group"));
  EXPECT_THAT(ParseError(R"($[?(@ =~ /\y/)])"),
              HasSubstr("illegal or unsupported escape"));
  EXPECT_EQ(
      ParseError("$[?(@ =~ /a)]/)]"),
      "invalid JSONPath '$[?(@ =~ /a)]/)]' at position 9: invalid regular "
      "expression: unmatched ')' near index 1");
}

TEST(JsonPathTest, RegexRunsInLinearTime) {
  // A backtracking engine needs 2^n steps here, and std::regex also
  // overflows the stack on long inputs.
  const std::string as(30, 'a');
  EXPECT_FALSE(RegexMatches("/(a|a)*b/", as));
  EXPECT_FALSE(RegexMatches("/(a*)*b/", as));
  const std::string long_input(300000, 'a');
  EXPECT_TRUE(RegexMatches("/((a|b)|(c|a))*/", long_input));
  EXPECT_TRUE(RegexMatches("/.*a/", long_input));
}

TEST(JsonPathTest, FilterListOperators) {
  constexpr absl::string_view kItems =
      R"([{"d":1,"t":["a","b"]},{"d":2,"t":["b"]},{"d":3,"t":[]},{"d":"x","t":"ab"}])";
  EXPECT_EQ(Eval("$[?(@.d in [1, 3])].d", kItems), "[1,3]");
  EXPECT_EQ(Eval("$[?(@.d in ['x'])].d", kItems), R"(["x"])");
  EXPECT_EQ(Eval("$[?(@.d nin [1, 3])].d", kItems), R"([2,"x"])");
  EXPECT_EQ(Eval("$[?('b' in @.t)].d", kItems), "[1,2]");
  EXPECT_EQ(Eval("$[?(@.t contains 'a')].d", kItems), R"([1,"x"])");
  EXPECT_EQ(Eval("$[?(@.t subsetof ['a','b','c'])].d", kItems), "[1,2,3]");
  EXPECT_EQ(Eval("$[?(@.t anyof ['a','z'])].d", kItems), "[1]");
  EXPECT_EQ(Eval("$[?(@.t noneof ['a'])].d", kItems), "[2,3]");
  EXPECT_EQ(Eval("$[?(@.t size 2)].d", kItems), R"([1,"x"])");
  EXPECT_EQ(Eval("$[?(@.t empty true)].d", kItems), "[3]");
  EXPECT_EQ(Eval("$[?(@.t empty false)].d", kItems), R"([1,2,"x"])");
  EXPECT_EQ(Eval("$[?(@.d IN [2])].d", kItems),
            "[2]");  // operators ignore case
  // A right side that is no list makes the predicate fail (even for nin).
  EXPECT_EQ(Eval("$[?(@.d nin 'x')].d", kItems), "[]");
  EXPECT_EQ(Eval("$[?(@.d in [[1]])].d", kItems),
            "INVALID_ARGUMENT: Could not determine value type");
}

TEST(JsonPathTest, FilterInDeepScanAndOnRoot) {
  EXPECT_EQ(Eval("$..book[?(@.author =~ /.*Tolkien/)].title", kStore),
            R"(["The Lord of the Rings"])");
  EXPECT_EQ(Eval("$..[?(@.color)].color", kStore), R"(["red"])");
  EXPECT_EQ(Eval("$[?($.flag == true)]", R"({"flag":true})"),
            R"([{"flag":true}])");
}

// --- Functions
// -----------------------------------------------------------------------

TEST(JsonPathTest, Functions) {
  constexpr absl::string_view kData =
      R"({"n":[1,2,3,4],"m":[-1,-2],"s":["a","b",1],"o":{"x":1,"y":2},"e":[]})";
  EXPECT_EQ(Eval("$.n.length()", kData), "4");
  EXPECT_EQ(Eval("$.o.size()", kData), "2");
  EXPECT_EQ(Eval("$.s[0].length()", kData), "null");
  EXPECT_EQ(Eval("$.n.sum()", kData), "10.0");
  EXPECT_EQ(Eval("$.n.avg()", kData), "2.5");
  EXPECT_EQ(Eval("$.n.min()", kData), "1.0");
  EXPECT_EQ(Eval("$.n.max()", kData), "4.0");
  EXPECT_EQ(Eval("$.m.max()", kData),
            "5e-324");  // Jayway starts at Double.MIN_VALUE
  EXPECT_EQ(Eval("$.m.min()", kData), "-2.0");
  EXPECT_EQ(Eval("$.n.stddev()", kData), "1.118033988749895");
  EXPECT_EQ(Eval("$.o.keys()", kData), R"(["x","y"])");
  EXPECT_EQ(Eval("$.n.keys()", kData), "null");
  EXPECT_EQ(Eval("$.s.concat()", kData), R"("ab")");
  EXPECT_EQ(Eval("$.n.append()", kData), "[1,2,3,4]");
  EXPECT_EQ(
      Eval("$.e.sum()", kData),
      "INVALID_ARGUMENT: Aggregation function attempted to calculate value "
      "using empty array");
  EXPECT_EQ(Eval("$.*.length()", kData), "[4,2,3,2,0]");
  EXPECT_EQ(Eval("$[?(@.length() == 2)]", "[[1,2],[3],{\"a\":1,\"b\":2}]"),
            R"([[1,2],{"a":1,"b":2}])");
}

TEST(JsonPathTest, FunctionAfterDeepScan) {
  // "$..x.fn()" is fn over the document plus the matches of "$..x".
  EXPECT_EQ(Eval("$..price.sum()", kStore), "73.87");
  EXPECT_EQ(Eval("$..p.sum()", R"([1,{"p":2},{"q":{"p":3}}])"), "6.0");
  EXPECT_EQ(Eval("$..book.length()", kStore), "4");
  EXPECT_EQ(
      Eval("$..author.concat()", R"({"a":{"author":"x"},"b":{"author":1}})"),
      R"("x1")");
}

// --- Select
// ---------------------------------------------------------------------------

TEST(JsonPathTest, SelectPointsIntoTheDocument) {
  json::Document doc = Doc(kStore);
  absl::StatusOr<JsonPath> path = JsonPath::Parse("$.store.book[*].price");
  ASSERT_TRUE(path.ok());
  std::vector<const json::Value*> prices = path->Select(doc);
  ASSERT_EQ(prices.size(), 4u);
  EXPECT_EQ(prices[0], &doc["store"]["book"][0]["price"]);
  EXPECT_EQ(prices[3], &doc["store"]["book"][3]["price"]);

  absl::StatusOr<JsonPath> keys =
      JsonPath::Parse("$.store.bicycle['price','color','x']");
  ASSERT_TRUE(keys.ok());
  std::vector<const json::Value*> selected = keys->Select(doc);
  ASSERT_EQ(selected.size(), 2u);
  EXPECT_EQ(selected[0], &doc["store"]["bicycle"]["price"]);
  EXPECT_EQ(selected[1], &doc["store"]["bicycle"]["color"]);

  absl::StatusOr<JsonPath> length = JsonPath::Parse("$.store.book.length()");
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(length->Select(doc),
            std::vector<const json::Value*>{&doc["store"]["book"]});

  absl::StatusOr<JsonPath> failing = JsonPath::Parse("$.missing[*]");
  ASSERT_TRUE(failing.ok());
  EXPECT_TRUE(failing->Select(doc).empty());
  absl::StatusOr<JsonPath> missing = JsonPath::Parse("$.store.missing.x");
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->Select(doc).empty());
  absl::StatusOr<JsonPath> last = JsonPath::Parse("$.store.book[-1]");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->Select(doc),
            std::vector<const json::Value*>{&doc["store"]["book"][3]});
}

TEST(JsonPathTest, SelectOnAReferencePathAllocatesOnlyItsResult) {
  json::Document doc = Doc(kStore);
  absl::StatusOr<JsonPath> path = JsonPath::Parse("$.store.book[2]['title']");
  ASSERT_TRUE(path.ok());
  const long before = g_allocations.load();
  std::vector<const json::Value*> title = path->Select(doc);
  const long allocations = g_allocations.load() - before;
  ASSERT_EQ(title.size(), 1u);
  EXPECT_STREQ(title[0]->GetString(), "Moby Dick");
  EXPECT_LE(allocations, 1);
}

TEST(JsonPathTest, CopiesShareTheProgramAndEvaluateConcurrently) {
  absl::StatusOr<JsonPath> parsed =
      JsonPath::Parse("$..book[?(@.price > 10)].title");
  ASSERT_TRUE(parsed.ok());
  const JsonPath copy = *parsed;
  json::Document doc = Doc(kStore);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        json::Document out;
        absl::StatusOr<json::Value> v = copy.Evaluate(doc, out.GetAllocator());
        if (v.ok() && json::Serialize(*v) ==
                          R"(["Sword of Honour","The Lord of the Rings"])") {
          ++good;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), 200);
  EXPECT_EQ(copy.text(), "$..book[?(@.price > 10)].title");
}

// --- Evaluation errors
// -------------------------------------------------------------

TEST(JsonPathTest, NotFoundMessages) {
  EXPECT_EQ(Eval("$.missing", "{}"),
            "NOT_FOUND: No results for path: $['missing']");
  EXPECT_EQ(Eval("$.a.b", "{}"), "NOT_FOUND: Missing property in path $['a']");
  EXPECT_EQ(Eval("$.a.b", R"({"a":"s"})"),
            "NOT_FOUND: Expected to find an object with property ['b'] in path "
            "$['a'] "
            "but found 'string'");
  EXPECT_EQ(
      Eval("$.a", "[1]"),
      "NOT_FOUND: Expected to find an object with property ['a'] in path $ but "
      "found 'array'");
  EXPECT_EQ(Eval("$.a[0]", R"({"a":{}})"),
            "NOT_FOUND: Filter: [0] can only be applied to arrays; $['a'] is "
            "an object");
  EXPECT_EQ(Eval("$.missing[*]", "{}"),
            "NOT_FOUND: Missing property in path $['missing']");
  EXPECT_EQ(
      Eval("$['a','b']", "[]"),
      "NOT_FOUND: Expected to find an object with property ['a','b'] in path $ "
      "but found 'array'");
  // Indefinite paths give an empty array where nothing matches.
  EXPECT_EQ(Eval("$[*].missing", "[{},{}]"), "[]");
  EXPECT_EQ(Eval("$..missing", "{}"), "[]");
  EXPECT_EQ(Eval("$[?(@.a)]", "[]"), "[]");
}

// --- Parse errors
// ---------------------------------------------------------------------

TEST(JsonPathTest, ParseErrorsNameThePosition) {
  EXPECT_EQ(ParseError(""),
            "invalid JSONPath '' at position 0: the path is empty");
  EXPECT_EQ(ParseError("a.b"),
            "invalid JSONPath 'a.b' at position 0: a path must start with '$'");
  EXPECT_EQ(ParseError("@.a"),
            "invalid JSONPath '@.a' at position 0: a path must start with '$'");
  EXPECT_EQ(ParseError("$."),
            "invalid JSONPath '$.' at position 1: a path must not end with '.' "
            "or '..'");
  EXPECT_EQ(ParseError("$.a.."),
            "invalid JSONPath '$.a..' at position 4: a path must not end with "
            "'.' or '..'");
  EXPECT_EQ(ParseError("$...a"),
            "invalid JSONPath '$...a' at position 3: character '.' is not "
            "valid here");
  EXPECT_EQ(ParseError("$(a)"),
            "invalid JSONPath '$(a)' at position 1: expected '.' or '['");
  EXPECT_EQ(ParseError("$1"),
            "invalid JSONPath '$1' at position 1: expected '.' or '['");
  EXPECT_EQ(ParseError("$.a b"),
            "invalid JSONPath '$.a b' at position 3: use bracket "
            "notation ['my prop'] if a name contains blanks");
  EXPECT_EQ(ParseError("$. a"),
            "invalid JSONPath '$. a' at position 2: could not parse the "
            "token starting here");
  EXPECT_THAT(ParseError("$[]"),
              HasSubstr("at position 1: could not parse the token"));
  EXPECT_THAT(ParseError("$[key]"),
              HasSubstr("at position 1: could not parse the token"));
  EXPECT_EQ(ParseError("$['a"),
            "invalid JSONPath '$['a' at position 2: the property is not "
            "closed; missing '");
  EXPECT_EQ(ParseError("$['a' 'b']"),
            "invalid JSONPath '$['a' 'b']' at position 5: "
            "properties must be separated by ',' and closed by ']'");
  EXPECT_EQ(ParseError("$['a',,'b']"),
            "invalid JSONPath '$['a',,'b']' at position 6: found "
            "an empty property");
  EXPECT_EQ(ParseError("$[*,1]"),
            "invalid JSONPath '$[*,1]' at position 3: expected ']' after '[*'");
  EXPECT_EQ(ParseError("$[1:2,3]"),
            "invalid JSONPath '$[1:2,3]' at position 2: invalid slice "
            "[1:2,3]: only digits, '-' and ':' are allowed");
  EXPECT_EQ(ParseError("$[:]"),
            "invalid JSONPath '$[:]' at position 2: invalid slice [:]: a "
            "start or an end is required");
  EXPECT_EQ(ParseError("$[2:113667776004]"),
            "invalid JSONPath '$[2:113667776004]' at position 2: invalid slice "
            "[2:113667776004]: '113667776004' is not a 32-bit integer");
  EXPECT_EQ(ParseError("$[1 2]"),
            "invalid JSONPath '$[1 2]' at position 2: invalid array "
            "index '1 2' in [1 2]");
  EXPECT_EQ(ParseError("$[?]"),
            "invalid JSONPath '$[?]' at position 1: a filter needs an "
            "expression: [?(<expression>)]");
  EXPECT_EQ(ParseError("$$$"),
            "invalid JSONPath '$$$' at position 2: expected '.' or '['");
  EXPECT_EQ(ParseError("$x y"),
            "invalid JSONPath '$x y' at position 2: expected '.' or '['");
}

TEST(JsonPathTest, FilterParseErrors) {
  EXPECT_EQ(ParseError("$[?()]"),
            "invalid JSONPath '$[?()]' at position 4: expected a "
            "value: a path, 'string', number, true, false, null, "
            "JSON or /regex/");
  EXPECT_EQ(ParseError("$[?(@.a == )]"),
            "invalid JSONPath '$[?(@.a == )]' at position 11: "
            "expected a value: a path, 'string', number, true, "
            "false, null, JSON or /regex/");
  EXPECT_EQ(ParseError("$[?(@.a = 1)]"),
            "invalid JSONPath '$[?(@.a = 1)]' at position 8: "
            "expected ')'");
  EXPECT_EQ(ParseError("$[?(@.a <> 1)]"),
            "invalid JSONPath '$[?(@.a <> 1)]' at position 8: "
            "expected ')'");
  EXPECT_EQ(ParseError("$[?(true)]"),
            "invalid JSONPath '$[?(true)]' at position 4: expected a "
            "path before an existence test or a comparison operator "
            "after a value");
  EXPECT_EQ(ParseError("$[?(@.a == 'x)]"),
            "invalid JSONPath '$[?(@.a == 'x)]' at position 3: "
            "a string or /regular expression/ in the filter is "
            "not closed");
  EXPECT_EQ(ParseError("$[?(@.a/2 == 1)]"),
            "invalid JSONPath '$[?(@.a/2 == 1)]' at position 3: "
            "a string or /regular expression/ in the filter is "
            "not closed");
  EXPECT_THAT(ParseError("$[?(@.a =~ /(/)]"),
              HasSubstr("at position 11: invalid regular expression: "));
  EXPECT_EQ(ParseError("$[?(@.a == {x)]"),
            "invalid JSONPath '$[?(@.a == {x)]' at position 11: "
            "the JSON literal is not closed");
  EXPECT_EQ(ParseError("$[?(@.a == [1,,2])]"),
            "invalid JSONPath '$[?(@.a == [1,,2])]' at "
            "position 11: invalid JSON literal");
  EXPECT_EQ(ParseError("$[?(@.a == tru)]"),
            "invalid JSONPath '$[?(@.a == tru)]' at position "
            "11: expected true or false");
  EXPECT_EQ(ParseError("$[?(@.a > 1) || (@.b)]"),
            "invalid JSONPath '$[?(@.a > 1) || (@.b)]' at position 1: could "
            "not parse the "
            "token starting here; expected 'name', \"name\", a number, a "
            "slice, * or ?(...) "
            "after '['");
  EXPECT_EQ(ParseError("$[?(!1)]"),
            "invalid JSONPath '$[?(!1)]' at position 5: expected a "
            "path before an existence test or a comparison operator "
            "after a value");
  EXPECT_EQ(ParseError("$[?(@.a[)]"),
            "invalid JSONPath '$[?(@.a[)]' at position 7: unbalanced "
            "'[' in the filter");
  EXPECT_EQ(ParseError("$[?(@.a. == 1)]"),
            "invalid JSONPath '$[?(@.a. == 1)]' at position 7: "
            "a path must not end with '.' or '..'");
}

TEST(JsonPathTest, FunctionParseErrors) {
  EXPECT_EQ(ParseError("$.a.foo()"),
            "invalid JSONPath '$.a.foo()' at position 4: unknown "
            "function 'foo()'; the functions are length(), size(), "
            "min(), max(), avg(), stddev(), sum(), keys(), concat() "
            "and append()");
  EXPECT_EQ(ParseError("$.a.sum(1)"),
            "invalid JSONPath '$.a.sum(1)' at position 8: function "
            "'sum' takes no arguments here");
  EXPECT_EQ(ParseError("$.a.length().b"),
            "invalid JSONPath '$.a.length().b' at position 12: a "
            "function call must end the path");
  EXPECT_EQ(ParseError("$.a.length("),
            "invalid JSONPath '$.a.length(' at position 10: the "
            "arguments of function 'length' are not closed");
  EXPECT_EQ(ParseError("$..length()"),
            "invalid JSONPath '$..length()' at position 10: a "
            "function cannot follow '..' directly");
}

TEST(JsonPathTest, JaywayLeniencyKept) {
  // One stray character after a bracket at the end is ignored...
  EXPECT_EQ(Eval("$['a']x", R"({"a":1})"), "1");
  EXPECT_EQ(Eval("$[*]]", "[1]"), "[1]");
  // ...and a name may follow a bracket without a dot.
  EXPECT_EQ(Eval("$[0]ab", R"([{"ab":2}])"), "2");
  // `!` before a path in a comparison changes nothing.
  EXPECT_EQ(Eval("$[?(!@.a == 1)]", R"([{"a":1},{"a":2}])"), R"([{"a":1}])");
}

}  // namespace
}  // namespace stepflow::asl
