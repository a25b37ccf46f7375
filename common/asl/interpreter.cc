#include "common/asl/interpreter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "common/asl/timestamp.h"
#include "common/jsonata/jsonata.h"
#include "google/protobuf/timestamp.pb.h"

namespace stepflow::asl {
namespace {

using ::stepflow::internal::v1::ExecutionState;
using ::stepflow::internal::v1::Frame;

// What a frame's timer_id waits for.
// kFailureTimer: a failed branch or iteration hands its failure to its
// Parallel or Map (see FrameFailed).
enum TimerKind : int32_t { kWaitTimer = 1, kRetryTimer = 2, kFailureTimer = 3 };

constexpr char kRuntime[] = "States.Runtime";
constexpr char kTimeout[] = "States.Timeout";
constexpr char kHeartbeatTimeout[] = "States.HeartbeatTimeout";

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

// An ASL error raised while running a state.
struct StateError {
  std::string error;
  std::string cause;
  // A missed heartbeat: reported as States.Timeout, but also matched by
  // States.HeartbeatTimeout.
  bool heartbeat = false;
};

// AWS's limit on the history of one execution.
constexpr int64_t kMaxHistoryEvents = 25000;

// Largest state input, output or result AWS accepts (256 KiB).
constexpr size_t kMaxPayloadBytes = 256 * 1024;

// Whether an ErrorEquals list matches `error` (AWS's rules: States.ALL
// matches everything but States.Runtime, which nothing catches;
// States.TaskFailed everything but that and the timeouts).
bool Matches(const std::vector<std::string>& error_equals, const StateError& failure) {
  const std::string& error = failure.error;
  if (error == kRuntime) return false;
  for (const std::string& name : error_equals) {
    if (name == error) return true;
    if (name == kHeartbeatTimeout && failure.heartbeat) return true;
    if (name == "States.ALL") return true;
    if (name == "States.TaskFailed" && error != kTimeout && error != kHeartbeatTimeout) {
      return true;
    }
  }
  return false;
}

// A state input parsed once and handed from the step that produced it to
// the step that reads it, so a chain of states does not parse the same text
// again. It owns its memory, unlike the per-step arena, and the step that
// takes it may change it in place (ResultPath writes into it).
struct ParsedInput {
  static constexpr size_t kChunkBytes = 16 * 1024;
  ParsedInput() : allocator(first_chunk, sizeof(first_chunk), kChunkBytes, &base) {}
  ParsedInput(const ParsedInput&) = delete;
  ParsedInput& operator=(const ParsedInput&) = delete;
  // The first chunk lives in the object and the allocator does not make a
  // base allocator of its own: one allocation for a typical payload
  // instead of three.
  rapidjson::CrtAllocator base;
  alignas(16) char first_chunk[kChunkBytes];
  rapidjson::MemoryPoolAllocator<> allocator;
  json::Value value;
};
using ParsedInputPtr = std::unique_ptr<ParsedInput>;
// Child executions a map run keeps running at once without MaxConcurrency.
constexpr int32_t kDefaultMapRunConcurrency = 10000;

// AWS ends an EXPRESS child execution of a distributed map after 5 minutes.
constexpr absl::Duration kExpressChildTimeout = absl::Minutes(5);

// A UUID-shaped id derived from its arguments (FNV-1a, then splitmix64), for
// when the caller injects no id source.
std::string DerivedUuid(absl::string_view seed, int64_t event_id, int64_t part) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](absl::string_view bytes) {
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  };
  mix(seed);
  mix(absl::StrCat("#", event_id, "#", part));
  auto next = [&h]() {
    uint64_t z = (h += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  const std::string hex = absl::StrCat(absl::Hex(next(), absl::kZeroPad16),
                                       absl::Hex(next(), absl::kZeroPad16));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20, 12));
}

json::Value StringValue(absl::string_view text, json::Allocator& a) {
  return json::Value(text.data(), static_cast<rapidjson::SizeType>(text.size()), a);
}

// --- ResultPath on canonical text -------------------------------------------
// A state whose ResultPath writes into its input changes one member of a
// document whose text it already has: when that text is canonical
// (json::Serialize's), the new text is the old one with that member's value
// replaced, or the member added at the end of its object, which is far
// cheaper than writing the whole document again. The helpers below read
// canonical text only: no whitespace, strings as json::Serialize escapes
// them.

// Bytes that end a run of ordinary ones in canonical text: quotes and
// backslashes (inside strings), brackets and braces (outside).
constexpr std::array<bool, 256> kCanonicalStops = [] {
  std::array<bool, 256> stops{};
  for (unsigned char c : {'"', '\\', '{', '}', '[', ']'}) stops[c] = true;
  return stops;
}();

bool IsStop(char c) { return kCanonicalStops[static_cast<unsigned char>(c)]; }

// Past the string that starts at `p` (a '"'), or nullptr.
const char* SkipCanonicalString(const char* p, const char* end) {
  for (++p; p < end; ++p) {
    while (p < end && !IsStop(*p)) ++p;
    if (p == end) return nullptr;
    if (*p == '"') return p + 1;
    if (*p == '\\') ++p;
  }
  return nullptr;
}

// Past the value that starts at `p`, or nullptr.
const char* SkipCanonicalValue(const char* p, const char* end) {
  if (p >= end) return nullptr;
  if (*p == '"') return SkipCanonicalString(p, end);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < end) {
      while (p < end && !IsStop(*p)) ++p;
      if (p == end) return nullptr;
      switch (*p) {
        case '"':
          p = SkipCanonicalString(p, end);
          if (p == nullptr) return nullptr;
          continue;
        case '{':
        case '[':
          ++depth;
          break;
        case '}':
        case ']':
          if (--depth == 0) return p + 1;
          break;
        default:  // a backslash outside a string: not canonical text
          return nullptr;
      }
      ++p;
    }
    return nullptr;
  }
  while (p < end && *p != ',' && *p != '}' && *p != ']') ++p;
  return p;
}

// `name` as a canonical JSON string.
std::string CanonicalKey(const std::string& name) {
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') {
      return json::Serialize(json::Value(
          rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
    }
  }
  std::string key;
  key.reserve(name.size() + 2);
  key.push_back('"');
  key.append(name);
  key.push_back('"');
  return key;
}

// Writes `text` with `insert` (the member `key`:`value`, after a comma
// unless `empty`) put in at `at`, into `*out`.
void InsertMember(absl::string_view text, size_t at, bool empty, const std::string& key,
                  const json::Value& value, std::string* out) {
  const std::string written = json::Serialize(value);
  std::string spliced;
  spliced.reserve(text.size() + key.size() + written.size() + 2);
  spliced.append(text.data(), at);
  if (!empty) spliced.push_back(',');
  spliced.append(key);
  spliced.push_back(':');
  spliced.append(written);
  spliced.append(text.data() + at, text.size() - at);
  *out = std::move(spliced);
}

// json::Serialize(after) into `*out`, given `text` = json::Serialize(before)
// and `after` = `before` with `path` (member names only) Set in it, as
// ReferencePath::Set does: the first member of that name replaced, or a
// new member (with any missing intermediate objects) added last. False,
// with `*out` untouched, when the text is not shaped as expected.
// `first_is_new`: the path's first member was not in `before`, so the
// member was added last to the top-level object, whose end is the text's.
bool SpliceResultPath(absl::string_view text, const ReferencePath& path, const json::Value& after,
                      bool first_is_new, std::string* out) {
  if (first_is_new) {
    if (path.size() == 0 || path.name(0) == nullptr || text.size() < 2 || text.front() != '{' ||
        text.back() != '}' || !after.IsObject() || after.MemberCount() == 0) {
      return false;
    }
    const auto& added = *(after.MemberEnd() - 1);
    if (absl::string_view(added.name.GetString(), added.name.GetStringLength()) != *path.name(0)) {
      return false;
    }
    InsertMember(text, text.size() - 1, text.size() == 2, CanonicalKey(*path.name(0)),
                 added.value, out);
    return true;
  }
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* object = begin;  // the '{' of the object being searched
  const json::Value* node = &after;
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string* name = path.name(i);
    if (name == nullptr || object >= end || *object != '{' || !node->IsObject()) return false;
    const std::string key = CanonicalKey(*name);
    const bool last = i + 1 == path.size();
    const char* p = object + 1;
    const char* value = nullptr;
    const char* value_end = nullptr;
    bool empty = false;
    if (p < end && *p == '}') {
      empty = true;
    } else {
      while (true) {
        const char* key_end = p < end && *p == '"' ? SkipCanonicalString(p, end) : nullptr;
        if (key_end == nullptr || key_end >= end || *key_end != ':') return false;
        const char* v = key_end + 1;
        const char* v_end = SkipCanonicalValue(v, end);
        if (v_end == nullptr || v_end >= end) return false;
        if (absl::string_view(p, static_cast<size_t>(key_end - p)) == key) {
          value = v;
          value_end = v_end;
          break;
        }
        if (*v_end == ',') {
          p = v_end + 1;
          continue;
        }
        if (*v_end != '}') return false;
        p = v_end;
        break;
      }
    }
    if (value != nullptr) {
      auto member = node->FindMember(
          json::Value(rapidjson::StringRef(name->data(), static_cast<rapidjson::SizeType>(name->size()))));
      if (member == node->MemberEnd()) return false;
      if (!last) {
        object = value;
        node = &member->value;
        continue;
      }
      const std::string written = json::Serialize(member->value);
      std::string spliced;
      spliced.reserve(text.size() - static_cast<size_t>(value_end - value) + written.size());
      spliced.append(begin, value);
      spliced.append(written);
      spliced.append(value_end, end);
      *out = std::move(spliced);
      return true;
    }
    // Not there: Set added it as the object's last member.
    if (node->MemberCount() == 0) return false;
    const auto& added = *(node->MemberEnd() - 1);
    if (absl::string_view(added.name.GetString(), added.name.GetStringLength()) != *name) {
      return false;
    }
    InsertMember(text, static_cast<size_t>(p - begin), empty, key, added.value, out);
    return true;
  }
  return false;
}

}  // namespace

EventList::EventList() : storage_(std::make_unique<Storage>()) {
  events_ = google::protobuf::Arena::CreateMessage<
      google::protobuf::RepeatedPtrField<v1::HistoryEvent>>(&storage_->arena);
  // Room for a typical transition's events without growing step by step.
  events_->Reserve(16);
}

// The arena's constructor for an initial block alone: lighter than one
// taking ArenaOptions.
EventList::Storage::Storage() : arena(first_block, sizeof(first_block)) {}

// One transition: runs frames until every one waits or the execution
// closes, accumulating events and effects into an Outcome.
class Interpreter::Run {
 public:
  // The run fills an Outcome of its own, which Finish hands over, or
  // `*out` when given (for the caller to return without a move).
  Run(const Interpreter& interpreter, ExecutionState* state, absl::Time now,
      Outcome* out = nullptr)
      : definition_(interpreter.definition_),
        context_(interpreter.context_),
        state_(state),
        now_(now),
        outcome_(out != nullptr ? *out : owned_outcome_.emplace()) {
    const int64_t nanos = absl::ToUnixNanos(now);
    now_seconds_ = nanos / 1000000000;
    now_nanos_ = static_cast<int32_t>(nanos % 1000000000);
  }

  Outcome Finish() {
    ReconcileMapRuns();
    return std::move(outcome_);
  }
  // Finish for a run given the Outcome to fill.
  void FinishInPlace() { ReconcileMapRuns(); }
  bool closed() const { return !outcome_.closed_status.empty(); }

  // --- Events ---------------------------------------------------------------

  v1::HistoryEvent* Emit(absl::string_view type, bool advance_cursor = true) {
    return EmitTyped(std::string(type), advance_cursor);
  }

  // Emit for a type held in a std::string already (no temporary copy).
  template <typename TypeString>
  v1::HistoryEvent* EmitTyped(TypeString&& type, bool advance_cursor = true) {
    if (child_root_ != 0) return EmitInChildExecution(std::forward<TypeString>(type));
    v1::HistoryEvent& event = *outcome_.events.Add();
    const int64_t id = state_->next_event_id() == 0 ? 1 : state_->next_event_id();
    // AWS links each event to the one before it, except that the first
    // state entered names no predecessor, and a Map iteration's end event
    // does not become the predecessor of what follows.
    const bool first_state = id == 2 && absl::EndsWith(type, "StateEntered");
    event.set_type(std::forward<TypeString>(type));
    event.set_id(id);
    event.set_previous_event_id(first_state ? 0 : state_->last_event_id());
    SetNow(event.mutable_timestamp());
    state_->set_next_event_id(id + 1);
    if (advance_cursor) state_->set_last_event_id(id);
    return &event;
  }

  // Events of the frames of a distributed map's child executions belong to
  // those executions' own histories, not to this one: they are numbered
  // apart (their ids still name scheduled activities) and not reported.
  template <typename TypeString>
  v1::HistoryEvent* EmitInChildExecution(TypeString&& type) {
    v1::HistoryEvent& event = child_events_.emplace_back();
    event.set_type(std::forward<TypeString>(type));
    const int64_t id = std::max(state_->next_child_event_id(), kFirstChildEventId);
    event.set_id(id);
    SetNow(event.mutable_timestamp());
    state_->set_next_child_event_id(id + 1);
    // A child execution has AWS's history limit too; Drain ends it.
    if (Frame* root = F(child_root_); root != nullptr) {
      auto* child = root->mutable_child_execution();
      child->set_events(child->events() + 1);
      if (child->events() > kMaxHistoryEvents && runaway_child_ == 0) runaway_child_ = root->id();
    }
    return &event;
  }

  // Sets `out` to the transition's time, split once per run.
  void SetNow(google::protobuf::Timestamp* out) const {
    out->set_seconds(now_seconds_);
    out->set_nanos(now_nanos_);
  }

  // The id the next Emit gives its event.
  int64_t NextEventId() const {
    if (child_root_ != 0) return std::max(state_->next_child_event_id(), kFirstChildEventId);
    return state_->next_event_id() == 0 ? 1 : state_->next_event_id();
  }

  // Makes Emit record the events of `frame_id`'s execution (0: the top
  // level) for as long as it lives.
  class EventScope {
   public:
    EventScope(Run* run, int64_t frame_id) : run_(run), saved_(run->child_root_) {
      // Only a distributed Map's children are executions of their own.
      if (!run->definition_.has_distributed_map()) return;
      const Frame* frame = frame_id == 0 ? nullptr : run->F(frame_id);
      run->child_root_ = frame == nullptr ? 0 : run->EnclosingChildFrame(*frame);
    }
    ~EventScope() { run_->child_root_ = saved_; }
    EventScope(const EventScope&) = delete;
    EventScope& operator=(const EventScope&) = delete;

   private:
    Run* run_;
    int64_t saved_;
  };

  // --- Frames ---------------------------------------------------------------

  // The frame `id`, or nullptr. The last one found is remembered: a step
  // asks for its frame a dozen times. Map values stay where they are until
  // erased (DropFrame forgets it then), and the first lookup of a run goes
  // through mutable_frames(), which marks the map modified for reflection.
  Frame* F(int64_t id) {
    if (id == last_frame_id_ && last_frame_ != nullptr) return last_frame_;
    auto* frames = state_->mutable_frames();
    auto it = frames->find(id);
    if (it == frames->end()) return nullptr;
    last_frame_id_ = id;
    last_frame_ = &it->second;
    return last_frame_;
  }

  Frame* NewFrame(int64_t parent, int32_t index) {
    const int64_t id = state_->next_frame_id() + 1;
    state_->set_next_frame_id(id);
    Frame& frame = (*state_->mutable_frames())[id];
    frame.set_id(id);
    frame.set_parent_id(parent);
    frame.set_index(index);
    return &frame;
  }

  const StateMachine* MachineOf(const Frame& frame) {
    if (frame.parent_id() == 0) return &definition_.root();
    Frame* parent = F(frame.parent_id());
    if (parent == nullptr) return nullptr;
    const State* owner = StateOf(*parent);
    if (owner == nullptr) return nullptr;
    if (owner->type == StateType::kParallel) {
      return frame.index() < static_cast<int>(owner->branches.size())
                 ? owner->branches[frame.index()].get()
                 : nullptr;
    }
    return owner->processor.get();
  }

  const State* StateOf(const Frame& frame) {
    const StateMachine* machine = MachineOf(frame);
    return machine == nullptr ? nullptr : machine->Find(frame.state());
  }

  // Removes a frame and everything below it, giving up their tasks.
  // The frames whose parent is `parent_id` (0: the top-level ones), in
  // creation order. The frames map iterates in no fixed order, and events
  // emitted per child must come out the same on every run and replica.
  std::vector<int64_t> ChildrenOf(int64_t parent_id) const {
    std::vector<int64_t> children;
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.parent_id() == parent_id) children.push_back(id);
    }
    std::sort(children.begin(), children.end());
    return children;
  }

  void DropFrame(int64_t id) {
    // A lone frame has no children to look for.
    if (state_->frames_size() > 1) {
      for (int64_t child : ChildrenOf(id)) DropFrame(child);
    }
    if (Frame* frame = F(id); frame != nullptr && frame->scheduled_event_id() != 0) {
      outcome_.cancelled_tasks.push_back(frame->scheduled_event_id());
    }
    if (id == last_frame_id_) last_frame_ = nullptr;
    state_->mutable_frames()->erase(id);
  }

  void DropChildren(int64_t id) {
    for (int64_t child : ChildrenOf(id)) DropFrame(child);
  }

  // --- The work queue -------------------------------------------------------
  // States are entered from a FIFO queue rather than by recursion, so long
  // synchronous chains cannot exhaust the stack, and Parallel branches
  // advance in step as they do on AWS.

  // `parsed`, when given, is `input` parsed. `canonical` says `input` is
  // text json::Serialize wrote, so a state that changes nothing may pass it
  // on as its output without parsing and writing it again.
  void Enqueue(int64_t frame, std::string name, std::string input,
               ParsedInputPtr parsed = nullptr, bool canonical = true) {
    queue_.push_back(Step{frame, std::move(name), nullptr, std::move(input), std::move(parsed),
                          canonical});
  }

  // Enqueue for a state known already (`next` belongs to the frame's
  // machine), which spares its lookup by name.
  void EnqueueState(int64_t frame, const State& next, std::string input,
                    ParsedInputPtr parsed = nullptr, bool canonical = true) {
    queue_.push_back(
        Step{frame, std::string(), &next, std::move(input), std::move(parsed), canonical});
  }

  // Enqueue of the StartAt state of `machine`, the frame's machine.
  void EnqueueStart(int64_t frame, const StateMachine& machine, std::string input,
                    ParsedInputPtr parsed = nullptr, bool canonical = true) {
    if (machine.start_state != nullptr) {
      EnqueueState(frame, *machine.start_state, std::move(input), std::move(parsed), canonical);
    } else {
      Enqueue(frame, machine.start_at, std::move(input), std::move(parsed), canonical);
    }
  }

  void Drain() {
    ++drain_depth_;
    while (!queue_.empty() && !closed()) {
      Step step = std::move(queue_.front());
      queue_.pop_front();
      if (F(step.frame) == nullptr) continue;  // dropped meanwhile
      EnterState(step.frame, step.state != nullptr ? step.state->name : step.name,
                 std::move(step.input), std::move(step.parsed), step.canonical, step.state);
      // Between two steps of the outermost loop no temporary document is
      // alive: their memory can be reused.
      if (drain_depth_ == 1) {
        arena_.Clear();
        context_docs_.clear();
      }
      // AWS ends an execution whose history outgrows its limit, which also
      // bounds a loop that never waits.
      if (!closed() && state_->next_event_id() > kMaxHistoryEvents) {
        FailExecution(kRuntime,
                      absl::StrCat("The execution reached the maximum number of history "
                                   "events (", kMaxHistoryEvents, ")."));
      }
      if (runaway_child_ != 0) EndRunawayChild();
    }
    --drain_depth_;
    if (closed()) queue_.clear();
  }

  // --- Execution-level ------------------------------------------------------

  // The execution-level timeout: the definition's TimeoutSeconds, capped by
  // the context's max_duration.
  void ArmExecutionTimeout() {
    absl::Duration limit = definition_.timeout_seconds() > 0
                               ? absl::Seconds(definition_.timeout_seconds())
                               : absl::ZeroDuration();
    if (context_.max_duration > absl::ZeroDuration() &&
        (limit == absl::ZeroDuration() || context_.max_duration < limit)) {
      limit = context_.max_duration;
    }
    if (limit > absl::ZeroDuration()) state_->set_execution_timeout_timer(ArmTimer(limit));
  }

  void Start(absl::string_view input) {
    state_->set_next_event_id(1);
    auto* details = Emit("ExecutionStarted")->mutable_execution_started_event_details();
    details->set_input(std::string(input));
    details->mutable_input_details()->set_truncated(false);
    // An empty string field is absent in proto3 anyway; setting it would
    // only allocate.
    if (!context_.role_arn.empty()) details->set_role_arn(context_.role_arn);
    ArmExecutionTimeout();
    Frame* root = NewFrame(0, 0);
    EnqueueStart(root->id(), definition_.root(), std::string(input), nullptr,
                 context_.input_is_canonical);
    Drain();
  }

  void Redrive() {
    last_frame_ = nullptr;
    *state_->mutable_frames() = state_->redrive_frames();
    state_->clear_redrive_frames();
    Emit("ExecutionRedriven")
        ->mutable_execution_redriven_event_details()
        ->set_redrive_count(context_.redrive_count);
    ArmExecutionTimeout();
    RedriveMapRuns();
    // Frames waiting for children keep waiting; the others enter their
    // state again.
    std::set<int64_t> parents;
    for (const auto& [id, frame] : state_->frames()) parents.insert(frame.parent_id());
    std::vector<int64_t> leaves;
    for (const auto& [id, frame] : state_->frames()) {
      if (!parents.count(id)) leaves.push_back(id);
    }
    std::sort(leaves.begin(), leaves.end());
    for (int64_t id : leaves) {
      const Frame& frame = *F(id);
      Enqueue(id, frame.state(), frame.input());
    }
    Drain();
  }

  void CloseExecution(absl::string_view status) {
    outcome_.closed_status = std::string(status);
    state_->clear_execution_timeout_timer();
    // A closed execution awaits no timer: those armed by this transition
    // (the execution timeout of one that starts and ends at once) need not
    // be stored only to be ignored when they fire.
    outcome_.timers.clear();
    if (status != "SUCCEEDED") {
      *state_->mutable_redrive_frames() =
          redrive_snapshot_.has_value() ? *redrive_snapshot_ : state_->frames();
    }
    if (state_->frames_size() == 1) {
      // The usual case, a workflow without branches: no list of top
      // frames to build.
      if (const auto& [id, frame] = *state_->frames().begin(); frame.parent_id() == 0) {
        DropFrame(id);
      }
    } else {
      for (int64_t id : ChildrenOf(0)) DropFrame(id);
    }
    queue_.clear();
  }

  void SucceedExecution(std::string output) {
    EventScope scope(this, 0);
    auto* details = Emit("ExecutionSucceeded")->mutable_execution_succeeded_event_details();
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    outcome_.output = std::move(output);
    CloseExecution("SUCCEEDED");
  }

  void FailExecution(absl::string_view error, absl::string_view cause) {
    EventScope scope(this, 0);
    auto* details = Emit("ExecutionFailed")->mutable_execution_failed_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
    CloseExecution("FAILED");
  }

  void AbortExecution(absl::string_view error, absl::string_view cause) {
    EventScope scope(this, 0);
    EmitMapRunsAborted();
    auto* details = Emit("ExecutionAborted")->mutable_execution_aborted_event_details();
    details->set_error(std::string(error));
    details->set_cause(std::string(cause));
    outcome_.error = std::string(error);
    outcome_.cause = std::string(cause);
    CloseExecution("ABORTED");
  }

  void TimeOutExecution() {
    EventScope scope(this, 0);
    EmitMapRunsAborted();
    auto* details = Emit("ExecutionTimedOut")->mutable_execution_timed_out_event_details();
    details->set_error(kTimeout);
    details->set_cause("The execution timed out");
    outcome_.error = kTimeout;
    outcome_.cause = "The execution timed out";
    CloseExecution("TIMED_OUT");
  }

  int64_t ArmTimer(absl::Duration delay) {
    const int64_t id = state_->next_timer_id() + 1;
    state_->set_next_timer_id(id);
    outcome_.timers.push_back(TimerRequest{id, now_ + delay});
    return id;
  }

  // --- States ---------------------------------------------------------------

  // `known`, when given, is the state `name` names in the frame's machine.
  void EnterState(int64_t frame_id, const std::string& name, std::string input,
                  ParsedInputPtr parsed = nullptr, bool canonical = false,
                  const State* known = nullptr) {
    EventScope scope(this, frame_id);
    Frame* frame = F(frame_id);
    const State* state = known;
    if (state == nullptr) {
      const StateMachine* machine = MachineOf(*frame);
      state = machine == nullptr ? nullptr : machine->Find(name);
    }
    if (state == nullptr) {
      // Validation guarantees targets exist; a definition that lost one is
      // failed rather than left hanging.
      FailExecution(kRuntime, absl::StrCat("State '", name, "' does not exist"));
      return;
    }
    v1::HistoryEvent* entered = EmitTyped(state->entered_event_type);
    auto* details = entered->mutable_state_entered_event_details();
    details->set_name(name);
    details->set_input(input);
    details->mutable_input_details()->set_truncated(false);
    // The frame moves on to the new state: it keeps its place in the tree,
    // its Map item and its variables, and forgets the rest. Cleared in place
    // rather than rebuilt, its strings keep their memory; its timestamp, a
    // message Clear would free, is taken out and put back. What is kept is
    // set aside only when there is some (usually there is none). A frame
    // entering its first state (entered_event_id still 0) holds nothing
    // else yet, nor does one whose last state left it as entered (see
    // pristine_frame_).
    const bool pristine = pristine_frame_ == frame_id;
    pristine_frame_ = 0;
    google::protobuf::Timestamp* entered_time = frame->release_entered_time();
    if (frame->entered_event_id() != 0 && !pristine) {
      const int64_t id = frame->id();
      const int64_t parent_id = frame->parent_id();
      const int32_t index = frame->index();
      std::string item_value;
      if (!frame->item_value().empty()) item_value = std::move(*frame->mutable_item_value());
      std::optional<google::protobuf::Map<std::string, std::string>> variables;
      if (!frame->variables().empty()) variables.emplace().swap(*frame->mutable_variables());
      std::optional<::stepflow::internal::v1::ChildExecution> child_execution;
      if (frame->has_child_execution()) {
        child_execution.emplace().Swap(frame->mutable_child_execution());
      }
      frame->Clear();
      frame->set_id(id);
      frame->set_parent_id(parent_id);
      frame->set_index(index);
      if (!item_value.empty()) *frame->mutable_item_value() = std::move(item_value);
      if (variables.has_value()) frame->mutable_variables()->swap(*variables);
      if (child_execution.has_value()) {
        frame->mutable_child_execution()->Swap(&*child_execution);
      }
    }
    frame->set_state(name);
    *frame->mutable_input() = std::move(input);
    frame->set_entered_event_id(entered->id());
    if (entered_time != nullptr) frame->set_allocated_entered_time(entered_time);
    SetNow(frame->mutable_entered_time());
    carried_ = Carried{frame_id, std::move(parsed), canonical};
    Execute(frame_id, state);
    if (carried_.frame == frame_id) carried_ = Carried{};
  }

  // Runs the frame's current state (also again after a retry backoff);
  // `known`, when given, is that state (EnterState has just looked it up).
  void Execute(int64_t frame_id, const State* known = nullptr) {
    const State& state = known != nullptr ? *known : *StateOf(*F(frame_id));
    if (state.jsonata) {
      ExecuteJsonata(frame_id, state);
      return;
    }
    switch (state.type) {
      case StateType::kPass:
        RunPass(frame_id, state);
        return;
      case StateType::kTask:
        ScheduleTask(frame_id, state);
        return;
      case StateType::kChoice:
        RunChoice(frame_id, state);
        return;
      case StateType::kWait:
        RunWait(frame_id, state);
        return;
      case StateType::kSucceed:
        RunSucceed(frame_id, state);
        return;
      case StateType::kFail:
        RunFail(frame_id, state);
        return;
      case StateType::kParallel:
        StartParallel(frame_id, state);
        return;
      case StateType::kMap:
        StartMap(frame_id, state);
        return;
    }
  }

  void ExecuteJsonata(int64_t frame_id, const State& state) {
    switch (state.type) {
      case StateType::kPass:
      case StateType::kSucceed:
        RunJsonataPassOrSucceed(frame_id, state);
        return;
      case StateType::kTask:
        ScheduleJsonataTask(frame_id, state);
        return;
      case StateType::kChoice:
        RunJsonataChoice(frame_id, state);
        return;
      case StateType::kWait:
        RunJsonataWait(frame_id, state);
        return;
      case StateType::kFail:
        RunJsonataFail(frame_id, state);
        return;
      case StateType::kParallel:
        StartJsonataParallel(frame_id, state);
        return;
      case StateType::kMap:
        if (state.distributed) {
          StartJsonataDistributedMap(frame_id, state);
        } else {
          StartJsonataMap(frame_id, state);
        }
        return;
    }
  }

  // Emits <Type>StateExited with the output and the variables assigned,
  // and applies the assignments.
  void EmitExited(int64_t frame_id, const State& state, const std::string& output,
                  const std::map<std::string, std::string>& assigned) {
    EventScope scope(this, frame_id);
    auto* details = EmitTyped(state.exited_event_type)
                        ->mutable_state_exited_event_details();
    details->set_name(state.name);
    details->set_output(output);
    details->mutable_output_details()->set_truncated(false);
    ApplyAssignments(frame_id, assigned, details);
  }

  // Emits <Type>StateExited and moves on: to Next, or ends the frame.
  void ExitState(int64_t frame_id, const State& state, std::string output,
                 const std::map<std::string, std::string>& assigned = {},
                 ParsedInputPtr parsed_output = nullptr) {
    if (output.size() > kMaxPayloadBytes) {
      pristine_frame_ = 0;
      HandleError(frame_id,
                  StateError{"States.DataLimitExceeded",
                             absl::StrCat("The state/task '", state.name,
                                          "' returned a result with a size exceeding the "
                                          "maximum number of bytes service limit.")});
      return;
    }
    EmitExited(frame_id, state, output, assigned);
    if (state.end) {
      FrameSucceeded(frame_id, std::move(output));
    } else {
      if (state.next_state != nullptr) {
        EnqueueState(frame_id, *state.next_state, std::move(output), std::move(parsed_output));
      } else {
        Enqueue(frame_id, state.next, std::move(output), std::move(parsed_output));
      }
    }
  }

  void FrameSucceeded(int64_t frame_id, std::string output) {
    Frame* frame = F(frame_id);
    if (frame->parent_id() == 0) {
      SucceedExecution(std::move(output));
      return;
    }
    const int64_t parent_id = frame->parent_id();
    const int32_t index = frame->index();
    EventScope scope(this, parent_id);
    Frame* parent = F(parent_id);
    const State* owner = StateOf(*parent);
    // A distributed map's children are executions of their own: nothing of
    // them shows in this history.
    if (owner->type == StateType::kMap && !owner->distributed) {
      auto* details = Emit("MapIterationSucceeded", /*advance_cursor=*/false)
                          ->mutable_map_iteration_succeeded_event_details();
      details->set_name(owner->name);
      details->set_index(index);
    }
    if (owner->distributed) NoteChildClosed(parent_id, index, kChildSucceeded);
    *parent->mutable_child_outputs(index) = std::move(output);
    parent->set_running_children(parent->running_children() - 1);
    DropFrame(frame_id);
    ChildDone(parent_id);
  }

  // `handed_over`: the failure of a branch or iteration reaches its
  // Parallel or Map now (its failure timer fired).
  void FrameFailed(int64_t frame_id, const StateError& failure, bool handed_over = false) {
    Frame* frame = F(frame_id);
    if (frame->parent_id() == 0) {
      FailExecution(failure.error, failure.cause);
      return;
    }
    // Branches and iterations run concurrently on AWS: by the time a
    // failure reaches the Parallel or Map, the siblings have moved on to
    // where they wait (their tasks scheduled, maybe started), and are then
    // aborted. A timer due at once hands the failure over in a transition
    // of its own; meanwhile the frame stays, so the siblings go on.
    if (!handed_over && !StateOf(*F(frame->parent_id()))->distributed) {
      frame->set_failure_error(failure.error);
      frame->set_failure_cause(failure.cause);
      frame->set_failure_heartbeat(failure.heartbeat);
      frame->set_timer_kind(kFailureTimer);
      frame->set_timer_id(ArmTimer(absl::ZeroDuration()));
      return;
    }
    // What a redrive reopens if this failure ends the execution: the
    // frames before the failed one's siblings are cut short.
    if (!redrive_snapshot_.has_value()) redrive_snapshot_ = state_->frames();
    const int64_t parent_id = frame->parent_id();
    EventScope scope(this, parent_id);
    Frame* parent = F(parent_id);
    const State* owner = StateOf(*parent);
    if (owner->distributed) {
      NoteChildClosed(parent_id, frame->index(), kChildFailed);
      ChildExecutionFailed(parent_id, frame_id);
      return;
    }
    if (owner->type == StateType::kMap) {
      auto* details = Emit("MapIterationFailed", /*advance_cursor=*/false)
                          ->mutable_map_iteration_failed_event_details();
      details->set_name(owner->name);
      details->set_index(frame->index());
    }
    // A failing branch or iteration stops the others; AWS records what was
    // cut short.
    if (const State* failing = StateOf(*frame);
        failing != nullptr && failing->type == StateType::kTask) {
      Emit("TaskStateAborted");
    }
    for (int64_t sibling : ChildrenOf(parent_id)) {
      if (sibling != frame_id) EmitAborted(sibling, owner);
    }
    DropChildren(parent_id);
    parent = F(parent_id);
    parent->set_waiting_children(false);
    if (!WillRetry(*parent, *owner, failure)) {
      Emit(owner->type == StateType::kMap ? "MapStateFailed" : "ParallelStateFailed");
    }
    HandleError(parent_id, failure);
  }

  // Events for a frame stopped because a sibling failed: a Map iteration
  // is aborted, then its running state (AWS's order).
  void EmitAborted(int64_t frame_id, const State* owner) {
    const std::vector<int64_t> children = ChildrenOf(frame_id);
    Frame* frame = F(frame_id);
    if (owner != nullptr && owner->type == StateType::kMap) {
      auto* details = Emit("MapIterationAborted", /*advance_cursor=*/false)
                          ->mutable_map_iteration_aborted_event_details();
      details->set_name(owner->name);
      details->set_index(frame->index());
    }
    if (const State* current = StateOf(*frame); current != nullptr) {
      if (frame->has_map_run()) {
        Emit("MapRunAborted");  // its child executions are not in this history
      } else {
        for (int64_t child : children) EmitAborted(child, current);
      }
      if (current->type == StateType::kTask || current->type == StateType::kWait ||
          current->type == StateType::kParallel || current->type == StateType::kMap) {
        Emit(absl::StrCat(StateTypeName(current->type), "StateAborted"));
      }
    }
  }

  // Whether HandleError will schedule a retry for `failure`.
  static bool WillRetry(const Frame& frame, const State& state, const StateError& failure) {
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      const int attempts = static_cast<int>(i) < frame.retrier_attempts_size()
                               ? frame.retrier_attempts(static_cast<int>(i))
                               : 0;
      return attempts < retrier.max_attempts;
    }
    return false;
  }

  // Retry, then Catch, then fail the frame.
  void HandleError(int64_t frame_id, const StateError& failure) {
    EventScope scope(this, frame_id);
    Frame* frame = F(frame_id);
    const State& state = *StateOf(*frame);
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      while (frame->retrier_attempts_size() <= static_cast<int>(i)) frame->add_retrier_attempts(0);
      const int attempts = frame->retrier_attempts(static_cast<int>(i));
      if (attempts >= retrier.max_attempts) break;  // exhausted: on to Catch
      double delay = retrier.interval_seconds * std::pow(retrier.backoff_rate, attempts);
      if (retrier.max_delay_seconds > 0) {
        delay = std::min(delay, static_cast<double>(retrier.max_delay_seconds));
      }
      // A huge BackoffRate must not overflow into a timer in the past.
      constexpr double kMaxDelaySeconds = 99999999;
      if (!std::isfinite(delay) || delay > kMaxDelaySeconds) delay = kMaxDelaySeconds;
      if (retrier.full_jitter) {
        delay *= context_.random_unit ? context_.random_unit() : 0.5;
      }
      frame->set_retrier_attempts(static_cast<int>(i), attempts + 1);
      frame->set_retry_count(frame->retry_count() + 1);
      frame->set_timer_kind(kRetryTimer);
      frame->set_timer_id(ArmTimer(absl::Milliseconds(std::llround(delay * 1000))));
      redrive_snapshot_.reset();  // handled: the execution goes on
      return;
    }
    for (const Catcher& catcher : state.catchers) {
      if (!Matches(catcher.error_equals, failure)) continue;
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      json::Value error_output(rapidjson::kObjectType);
      error_output.AddMember("Error", StringValue(failure.error, a), a);
      error_output.AddMember("Cause", StringValue(failure.cause, a), a);
      auto raw = json::Parse(frame->input(), &arena_);
      std::map<std::string, std::string> assigned;
      if (state.jsonata) {
        // Output (default: the error output) and Assign see
        // $states.errorOutput.
        json::Value states;
        BuildStates(*frame, raw.ok() ? static_cast<const json::Value&>(*raw) : doc, "errorOutput",
                    &error_output, &states, a);
        std::string output;
        if (auto problem = JsonataOutput(*F(frame_id), catcher.output, catcher.assign, states,
                                         error_output, &output, &assigned, a)) {
          FrameFailed(frame_id, *problem);
          return;
        }
        EmitExited(frame_id, state, output, assigned);
        Enqueue(frame_id, catcher.next, std::move(output));
        redrive_snapshot_.reset();
        return;
      }
      if (auto problem = EvaluateAssign(*F(frame_id), catcher.assign, error_output, &assigned)) {
        FrameFailed(frame_id, *problem);
        return;
      }
      json::Value combined;
      if (auto problem = ApplyResultPath(state, catcher.result_path, raw.ok() ? *raw : doc,
                                         std::move(error_output), &combined, a)) {
        FrameFailed(frame_id, *problem);
        return;
      }
      std::string output = json::Serialize(combined);
      EmitExited(frame_id, state, output, assigned);
      Enqueue(frame_id, catcher.next, std::move(output));
      redrive_snapshot_.reset();  // handled: the execution goes on
      return;
    }
    FrameFailed(frame_id, failure);
  }

  StateError RuntimeError(const Frame& frame, absl::string_view message) {
    return StateError{kRuntime, absl::StrCat("An error occurred while executing the state '",
                                             frame.state(), "' (entered at the event id #",
                                             frame.entered_event_id(), "). ", message)};
  }

  // --- Input and output processing ------------------------------------------

  const json::Value& ContextObject(const Frame& frame) {
    // Each call builds a new document and keeps the earlier ones alive: a
    // Choice rule may hold values of two $$ paths at once.
    json::Document& doc = context_docs_.emplace_back();
    auto& a = doc.GetAllocator();
    if (context_.given_context_object) {
      auto given = json::Parse(*context_.given_context_object);
      if (given.ok()) {
        doc.CopyFrom(*given, a);
        return doc;
      }
    }
    doc.SetObject();
    // Inside a distributed map, $$ describes the child execution.
    const ::stepflow::internal::v1::ChildExecution* child = EnclosingChildExecution(frame);
    json::Value execution(rapidjson::kObjectType);
    execution.AddMember(
        "Id", StringValue(child ? child->execution_arn() : context_.execution_arn, a), a);
    auto input = json::Parse(child ? child->input() : context_.execution_input);
    execution.AddMember("Input", input.ok() ? json::Copy(*input, a) : json::Value(), a);
    execution.AddMember("Name", StringValue(child ? child->name() : context_.execution_name, a),
                        a);
    // null, as AWS gives it, when the execution has no role (TestState
    // without roleArn).
    execution.AddMember("RoleArn",
                        context_.role_arn.empty() ? json::Value()
                                                  : StringValue(context_.role_arn, a),
                        a);
    execution.AddMember(
        "StartTime",
        StringValue(FormatTimestamp(child ? FromProto(child->start_time()) : context_.start_time),
                    a),
        a);
    if (context_.has_redrive_count) {
      execution.AddMember("RedriveCount", child ? 0 : context_.redrive_count, a);
    }
    doc.AddMember("Execution", execution, a);
    json::Value state(rapidjson::kObjectType);
    state.AddMember("EnteredTime",
                    StringValue(FormatTimestamp(FromProto(frame.entered_time())), a), a);
    state.AddMember("Name", StringValue(frame.state(), a), a);
    // States that take a Retry count their retries (AWS's TestState shows
    // it for a Map too); a Pass state's $$.State has none.
    if (const State* current = StateOf(frame);
        current != nullptr &&
        (current->type == StateType::kTask || current->type == StateType::kMap ||
         current->type == StateType::kParallel)) {
      state.AddMember("RetryCount", frame.retry_count(), a);
    }
    doc.AddMember("State", state, a);
    json::Value machine(rapidjson::kObjectType);
    machine.AddMember(
        "Id", StringValue(child ? child->state_machine_arn() : context_.state_machine_arn, a), a);
    machine.AddMember(
        "Name", StringValue(child ? child->state_machine_name() : context_.state_machine_name, a),
        a);
    doc.AddMember("StateMachine", machine, a);
    if (!task_token_.empty()) {
      json::Value task(rapidjson::kObjectType);
      task.AddMember("Token", StringValue(task_token_, a), a);
      doc.AddMember("Task", task, a);
    }
    if (map_item_.has_value()) {
      json::Value item(rapidjson::kObjectType);
      item.AddMember("Index", map_item_->first, a);
      auto value = json::Parse(map_item_->second);
      item.AddMember("Value", value.ok() ? json::Copy(*value, a) : json::Value(), a);
      json::Value map(rapidjson::kObjectType);
      map.AddMember("Item", item, a);
      doc.AddMember("Map", map, a);
    }
    return doc;
  }

  // The value of workflow variable `name` as `frame` sees it (its own
  // scope, then the enclosing ones), or nullptr.
  const json::Value* Variable(const Frame& frame, const std::string& name) {
    for (const Frame* scope = &frame; scope != nullptr;
         scope = scope->parent_id() == 0 ? nullptr : F(scope->parent_id())) {
      auto it = scope->variables().find(name);
      if (it == scope->variables().end()) {
        // A distributed map's child execution does not see enclosing scopes.
        if (scope->has_child_execution()) break;
        continue;
      }
      auto& cached = variable_cache_[std::make_pair(scope->id(), name)];
      if (!cached) {
        auto parsed = json::Parse(it->second);
        if (!parsed.ok()) return nullptr;
        cached = std::make_unique<json::Document>(std::move(*parsed));
      }
      return cached.get();
    }
    return nullptr;
  }

  std::string MissingMessage(const Frame& frame, const ReferencePath& path,
                             const json::Value& input) {
    if (path.is_context()) return path.MissingMessage(ContextObject(frame));
    if (path.is_variable()) {
      const json::Value* value = Variable(frame, path.variable());
      if (value == nullptr) return absl::StrCat("No results for path: ", path.Canonical());
      return path.MissingMessage(*value);
    }
    return path.MissingMessage(input);
  }

  // Resolves `path` against `input`, the context object or a variable.
  const json::Value* Resolve(const Frame& frame, const ReferencePath& path,
                             const json::Value& input) {
    if (path.is_context()) return path.Find(ContextObject(frame));
    if (path.is_variable()) {
      const json::Value* value = Variable(frame, path.variable());
      return value == nullptr ? nullptr : path.Find(*value);
    }
    return path.Find(input);
  }

  // Evaluates an Assign block against `source` (the state's result) with
  // the variables as they were before the state.
  std::optional<StateError> EvaluateAssign(const Frame& frame, const json::Value* assign,
                                           const json::Value& source,
                                           std::map<std::string, std::string>* out) {
    if (assign == nullptr) return std::nullopt;
    json::Document doc(&arena_);
    json::Value values;
    if (auto error = ApplyTemplate(frame, *assign, source, &values, doc.GetAllocator())) {
      return error;
    }
    for (const auto& member : values.GetObject()) {
      (*out)[std::string(member.name.GetString(), member.name.GetStringLength())] =
          json::Serialize(member.value);
    }
    return std::nullopt;
  }

  void ApplyAssignments(int64_t frame_id, const std::map<std::string, std::string>& assigned,
                        v1::StateExitedEventDetails* details) {
    if (assigned.empty()) return;
    Frame* frame = F(frame_id);
    for (const auto& [name, value] : assigned) {
      (*frame->mutable_variables())[name] = value;
      (*details->mutable_assigned_variables())[name] = value;
      variable_cache_.erase(std::make_pair(frame_id, name));
    }
    details->mutable_assigned_variables_details()->set_truncated(false);
  }

  // A general JSONPath: an array of every match (empty when none, as AWS
  // gives), or the single value a definite one names.
  std::optional<StateError> SelectGeneral(const Frame& frame, const JsonPath& path,
                                          const json::Value& input, json::Value* out,
                                          json::Allocator& allocator) {
    const json::Value* root = &input;
    if (path.is_context()) {
      root = &ContextObject(frame);
    } else if (path.is_variable()) {
      root = Variable(frame, path.variable_name());
      if (root == nullptr) {
        return RuntimeError(frame, absl::StrCat("Invalid path '", path.text(),
                                                "' : The variable is not defined"));
      }
    }
    auto value = path.Evaluate(*root, allocator);
    if (value.ok()) {
      *out = std::move(*value);
      return std::nullopt;
    }
    if (absl::IsNotFound(value.status()) && !path.is_single_value()) {
      out->SetArray();
      return std::nullopt;
    }
    return RuntimeError(frame, absl::StrCat("Invalid path '", path.text(), "' : ",
                                            value.status().message()));
  }

  std::optional<StateError> SelectPath(const Frame& frame, const PathField& field,
                                       const json::Value& input, json::Value* out,
                                       json::Allocator& allocator) {
    switch (field.kind) {
      case PathField::Kind::kDefault:
        *out = json::Copy(input, allocator);
        return std::nullopt;
      case PathField::Kind::kNull:
        out->SetObject();
        return std::nullopt;
      case PathField::Kind::kPath: {
        if (field.any) return SelectGeneral(frame, *field.any, input, out, allocator);
        const json::Value* found = Resolve(frame, *field.path, input);
        if (found == nullptr) {
          return RuntimeError(frame, absl::StrCat("Invalid path '", field.path->text(), "' : ",
                                                  MissingMessage(frame, *field.path, input)));
        }
        *out = json::Copy(*found, allocator);
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // Evaluates a Parameters / ResultSelector / ItemSelector template.
  std::optional<StateError> ApplyTemplate(const Frame& frame, const json::Value& tmpl,
                                          const json::Value& input, json::Value* out,
                                          json::Allocator& allocator) {
    if (tmpl.IsObject()) {
      out->SetObject();
      for (const auto& member : tmpl.GetObject()) {
        absl::string_view key(member.name.GetString(), member.name.GetStringLength());
        if (key.size() > 2 && key.substr(key.size() - 2) == ".$" && member.value.IsString()) {
          absl::string_view field_name = key.substr(0, key.size() - 2);
          if (const JsonPath* general = definition_.TemplatePath(&member.value)) {
            json::Value value;
            if (auto error = SelectGeneral(frame, *general, input, &value, allocator)) {
              return error;
            }
            out->AddMember(StringValue(field_name, allocator), std::move(value), allocator);
            continue;
          }
          if (const IntrinsicCall* call = definition_.Intrinsic(&member.value)) {
            auto value = EvaluateIntrinsic(frame, *call, input, allocator);
            if (!value.ok()) {
              absl::string_view message = value.status().message();
              absl::ConsumePrefix(&message, "States.Runtime: ");
              return RuntimeError(frame, message);
            }
            out->AddMember(StringValue(field_name, allocator), std::move(*value), allocator);
            continue;
          }
          const ReferencePath* path = definition_.Reference(
              absl::string_view(member.value.GetString(), member.value.GetStringLength()));
          std::optional<ReferencePath> parsed;
          if (path == nullptr) {
            auto fresh = ReferencePath::Parse(member.value.GetString());
            if (!fresh.ok()) return RuntimeError(frame, fresh.status().message());
            parsed = std::move(*fresh);
            path = &*parsed;
          }
          const json::Value* found = Resolve(frame, *path, input);
          if (found == nullptr) {
            return RuntimeError(
                frame, absl::StrCat("The JSONPath '", path->text(), "' specified for the field '",
                                    key, "' could not be found in the input '",
                                    json::Serialize(input), "'"));
          }
          out->AddMember(StringValue(field_name, allocator), json::Copy(*found, allocator),
                         allocator);
        } else {
          json::Value value;
          if (auto error = ApplyTemplate(frame, member.value, input, &value, allocator)) {
            return error;
          }
          out->AddMember(json::Value(member.name, allocator), value, allocator);
        }
      }
      return std::nullopt;
    }
    if (tmpl.IsArray()) {
      out->SetArray();
      for (const auto& item : tmpl.GetArray()) {
        json::Value value;
        if (auto error = ApplyTemplate(frame, item, input, &value, allocator)) return error;
        out->PushBack(value, allocator);
      }
      return std::nullopt;
    }
    *out = json::Copy(tmpl, allocator);
    return std::nullopt;
  }

  absl::StatusOr<json::Value> EvaluateIntrinsic(const Frame& frame, const IntrinsicCall& call,
                                                const json::Value& input,
                                                json::Allocator& allocator) {
    PathResolver resolve = [&](absl::string_view text,
                               json::Allocator& a) -> absl::StatusOr<json::Value> {
      auto path = ReferencePath::Parse(text);
      if (path.ok()) {
        const json::Value* found = Resolve(frame, *path, input);
        if (found == nullptr) return absl::NotFoundError(text);
        return json::Copy(*found, a);
      }
      // An argument is a Path, as in Parameters: bracketed names with
      // spaces ($.abc.['def ghi'], AWS's own example), wildcards, filters.
      auto general = JsonPath::Parse(text);
      if (!general.ok()) return path.status();
      const json::Value* root = &input;
      if (general->is_context()) {
        root = &ContextObject(frame);
      } else if (general->is_variable()) {
        root = Variable(frame, general->variable_name());
        if (root == nullptr) return absl::NotFoundError(text);
      }
      absl::StatusOr<json::Value> value = general->Evaluate(*root, a);
      if (value.ok() || !absl::IsNotFound(value.status())) return value;
      if (general->is_single_value()) return absl::NotFoundError(text);
      json::Value none(rapidjson::kArrayType);
      return none;
    };
    // Deterministic within a transition; the outcome is what persists.
    struct UnitRandom : RandomSource {
      const ExecutionContext* context;
      uint64_t counter = 0;
      uint64_t Next() override {
        if (context->random_unit) {
          return static_cast<uint64_t>(context->random_unit() * 18446744073709551615.0);
        }
        // splitmix64 of a counter when no source was given.
        uint64_t z = (counter += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
      }
    } random;
    random.context = &context_;
    return call.Evaluate(resolve, random, allocator);
  }

  // InputPath then Parameters: the state's effective input.
  std::optional<StateError> EffectiveInput(const Frame& frame, const State& state,
                                           const json::Value& raw, json::Value* out,
                                           json::Allocator& allocator) {
    json::Value selected;
    if (auto error = SelectPath(frame, state.input_path, raw, &selected, allocator)) {
      return error;
    }
    if (state.parameters == nullptr) {
      *out = std::move(selected);
      return std::nullopt;
    }
    return ApplyTemplate(frame, *state.parameters, selected, out, allocator);
  }

  std::optional<StateError> ApplyResultPath(const State& state, const PathField& result_path,
                                            const json::Value& raw, json::Value result,
                                            json::Value* out, json::Allocator& allocator) {
    switch (result_path.kind) {
      case PathField::Kind::kDefault:
        *out = std::move(result);
        return std::nullopt;
      case PathField::Kind::kNull:
        *out = json::Copy(raw, allocator);
        return std::nullopt;
      case PathField::Kind::kPath:
        if (result_path.path->is_root()) {
          *out = std::move(result);
          return std::nullopt;
        }
        if (!raw.IsObject()) {
          return StateError{kRuntime,
                            absl::StrCat("An error occurred while executing the state '",
                                         state.name, "'. Unable to apply ResultPath '",
                                         result_path.path->text(), "' to input '",
                                         json::Serialize(raw), "'")};
        }
        *out = json::Copy(raw, allocator);
        if (auto status = result_path.path->Set(out, std::move(result), allocator);
            !status.ok()) {
          return StateError{kRuntime, std::string(status.message())};
        }
        return std::nullopt;
    }
    return std::nullopt;
  }

  // Whether ResultPath keeps any of the state's input in its output.
  static bool NeedsInputForResultPath(const PathField& result_path) {
    return result_path.kind == PathField::Kind::kNull ||
           (result_path.kind == PathField::Kind::kPath && !result_path.path->is_root());
  }

  // ResultSelector, ResultPath, OutputPath: a state's output from its raw
  // input and result.
  std::optional<StateError> StateOutput(const Frame& frame, const State& state,
                                        const json::Value& raw, json::Value result,
                                        std::string* out_text,
                                        std::map<std::string, std::string>* assigned) {
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected;
    if (state.result_selector != nullptr) {
      if (auto error = ApplyTemplate(frame, *state.result_selector, result, &selected, a)) {
        return error;
      }
    } else {
      selected = std::move(result);
    }
    if (auto error = EvaluateAssign(frame, state.assign, selected, assigned)) return error;
    json::Value combined;
    if (auto error = ApplyResultPath(state, state.result_path, raw, std::move(selected),
                                     &combined, a)) {
      return error;
    }
    json::Value output;
    if (auto error = SelectPath(frame, state.output_path, combined, &output, a)) return error;
    *out_text = json::Serialize(output);
    return std::nullopt;
  }

  // The frame's input in the step's arena: a copy of what the previous step
  // handed over (cheaper than parsing), else parsed from the frame.
  std::optional<json::Document> ParseInput(int64_t frame_id) {
    if (carried_.frame == frame_id && carried_.parsed != nullptr) {
      json::Document doc(&arena_);
      doc.CopyFrom(carried_.parsed->value, arena_);
      return doc;
    }
    auto raw = json::Parse(F(frame_id)->input(), &arena_);
    if (!raw.ok()) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), raw.status().message()));
      return std::nullopt;
    }
    return std::move(*raw);
  }

  // The frame's input for this step to own and change: what the previous
  // step handed over, else parsed from the frame. nullptr (and the frame
  // failed) when the text is not JSON.
  ParsedInputPtr TakeInput(int64_t frame_id) {
    if (carried_.frame == frame_id && carried_.parsed != nullptr) {
      return std::move(carried_.parsed);
    }
    auto parsed = std::make_unique<ParsedInput>();
    if (auto status = json::ParseInto(F(frame_id)->input(), parsed->allocator, &parsed->value);
        !status.ok()) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), status.message()));
      return nullptr;
    }
    return parsed;
  }

  // Whether the frame's input is text json::Serialize wrote.
  bool InputIsCanonical(int64_t frame_id) const {
    return carried_.frame == frame_id && carried_.canonical;
  }

  // Like SelectPath, but points at the selected node of `input` instead of
  // copying it; values built for the occasion (a null path's {}, a general
  // JSONPath's matches) go to `*storage`.
  std::optional<StateError> SelectView(const Frame& frame, const PathField& field,
                                       const json::Value& input, const json::Value** out,
                                       json::Value* storage, json::Allocator& allocator) {
    switch (field.kind) {
      case PathField::Kind::kDefault:
        *out = &input;
        return std::nullopt;
      case PathField::Kind::kNull:
        storage->SetObject();
        *out = storage;
        return std::nullopt;
      case PathField::Kind::kPath: {
        if (field.any) {
          if (auto error = SelectGeneral(frame, *field.any, input, storage, allocator)) {
            return error;
          }
          *out = storage;
          return std::nullopt;
        }
        const json::Value* found = Resolve(frame, *field.path, input);
        if (found == nullptr) {
          return RuntimeError(frame, absl::StrCat("Invalid path '", field.path->text(), "' : ",
                                                  MissingMessage(frame, *field.path, input)));
        }
        *out = found;
        return std::nullopt;
      }
    }
    return std::nullopt;
  }

  // The value `*view` shows, as a value of `allocator`'s: moved out when it
  // is one of `owned` (values built in that allocator for this step alone),
  // copied otherwise.
  static json::Value Detach(const json::Value* view, std::initializer_list<json::Value*> owned,
                            json::Allocator& allocator) {
    for (json::Value* candidate : owned) {
      if (candidate == view) return std::move(*candidate);
    }
    return json::Copy(*view, allocator);
  }

  // ResultSelector, Assign, ResultPath and OutputPath over an input this
  // step owns: ResultPath writes into `raw` in place instead of into a
  // copy of it. `result` may point into `raw`, at `*result_storage` (built
  // in raw's allocator, free to move) or elsewhere. On success `*out_text`
  // is the output and `*parsed_output` the same output, for the next state.
  // `canonical`: the frame's input text is canonical and `raw` is it parsed
  // and unchanged, so a ResultPath write may be spliced into that text.
  std::optional<StateError> OutputInPlace(const Frame& frame, const State& state,
                                          ParsedInputPtr raw, const json::Value* result,
                                          json::Value* result_storage, std::string* out_text,
                                          std::map<std::string, std::string>* assigned,
                                          ParsedInputPtr* parsed_output, bool canonical = false) {
    json::Allocator& a = raw->allocator;
    json::Value selected_storage;
    const json::Value* selected = result;
    if (state.result_selector != nullptr) {
      if (auto error =
              ApplyTemplate(frame, *state.result_selector, *result, &selected_storage, a)) {
        return error;
      }
      selected = &selected_storage;
    }
    if (auto error = EvaluateAssign(frame, state.assign, *selected, assigned)) return error;
    const json::Value* combined = selected;
    bool spliceable = false;
    bool first_is_new = false;
    const PathField& result_path = state.result_path;
    if (result_path.kind == PathField::Kind::kNull) {
      combined = &raw->value;
    } else if (result_path.kind == PathField::Kind::kPath && !result_path.path->is_root()) {
      if (!raw->value.IsObject()) {
        return StateError{kRuntime,
                          absl::StrCat("An error occurred while executing the state '",
                                       state.name, "'. Unable to apply ResultPath '",
                                       result_path.path->text(), "' to input '",
                                       json::Serialize(raw->value), "'")};
      }
      // Set either fails before changing anything or succeeds; a failed
      // step's input is parsed again from the frame by whoever catches.
      json::Value value = Detach(selected, {&selected_storage, result_storage}, a);
      const std::string* first = result_path.path->name(0);
      first_is_new = canonical && first != nullptr &&
                     !raw->value.HasMember(json::Value(rapidjson::StringRef(
                         first->data(), static_cast<rapidjson::SizeType>(first->size()))));
      if (auto status = result_path.path->Set(&raw->value, std::move(value), a);
          !status.ok()) {
        return StateError{kRuntime, std::string(status.message())};
      }
      combined = &raw->value;
      spliceable = canonical;
    }
    const json::Value* output = nullptr;
    json::Value output_storage;
    if (auto error =
            SelectView(frame, state.output_path, *combined, &output, &output_storage, a)) {
      return error;
    }
    if (!(spliceable && output == &raw->value &&
          SpliceResultPath(frame.input(), *result_path.path, raw->value, first_is_new,
                           out_text))) {
      *out_text = json::Serialize(*output, frame.input().size());
    }
    if (output != &raw->value) {
      json::Value kept = Detach(output, {&output_storage, &selected_storage, result_storage}, a);
      raw->value = std::move(kept);
    }
    *parsed_output = Compact(std::move(raw), out_text->size());
    return std::nullopt;
  }

  // A handed-over document whose allocator holds much more than its value
  // (left over by the in-place changes of a long chain of states) is copied
  // into a fresh one, so memory stays proportional to the data.
  static ParsedInputPtr Compact(ParsedInputPtr parsed, size_t text_size) {
    if (parsed->allocator.Size() <= 4 * text_size + 4 * ParsedInput::kChunkBytes) return parsed;
    auto fresh = std::make_unique<ParsedInput>();
    fresh->value.CopyFrom(parsed->value, fresh->allocator);
    return fresh;
  }

  // A positive integer given literally or through a path of the input.
  std::optional<int64_t> ResolveInt(int64_t frame_id, const IntOrPath& field,
                                    const json::Value& input, absl::string_view name) {
    if (field.value) return *field.value;
    if (!field.path) return 0;
    const Frame& frame = *F(frame_id);
    const ReferencePath& path = *field.path;
    const json::Value* found = Resolve(frame, path, input);
    std::optional<std::string> problem;
    if (name == "Seconds") {
      // AWS's wording for each way a Wait's SecondsPath can be wrong.
      if (found == nullptr) {
        problem = absl::StrCat("The SecondsPath parameter does not reference an input value: ",
                               path.text());
      } else if (!found->IsInt64()) {
        problem = absl::StrCat("The SecondsPath parameter cannot be parsed as a long value: ",
                               path.text(), " == ", json::Serialize(*found));
      } else if (found->GetInt64() < 0) {
        problem = absl::StrCat("The SecondsPath parameter references a negative value: ",
                               path.text(), " == ", found->GetInt64());
      }
    } else if (found == nullptr) {
      problem = absl::StrCat("Invalid path '", path.text(), "' : ",
                             MissingMessage(frame, path, input));
    } else {
      // AWS takes a MaxConcurrencyPath value given as a string of digits.
      std::optional<int64_t> value = name == "MaxConcurrency" ? IntegerOrDigits(*found)
                                     : found->IsInt64() ? std::optional(found->GetInt64())
                                                        : std::nullopt;
      if (value.has_value() && *value >= 0) return *value;
      std::string shown = found->IsString() ? found->GetString() : json::Serialize(*found);
      problem = absl::StrCat("The ", name, "Path field refers to value \"", shown,
                             "\" which is not a valid integer: ", path.text());
    }
    if (problem) {
      FrameFailed(frame_id, RuntimeError(frame, *problem));
      return std::nullopt;
    }
    return found->GetInt64();
  }

  // An integer, or a string that holds one.
  static std::optional<int64_t> IntegerOrDigits(const json::Value& value) {
    if (value.IsInt64()) return value.GetInt64();
    int64_t parsed = 0;
    if (value.IsString() &&
        absl::SimpleAtoi(absl::string_view(value.GetString(), value.GetStringLength()), &parsed)) {
      return parsed;
    }
    return std::nullopt;
  }

  // --- JSONata states -------------------------------------------------------
  // A state with "QueryLanguage": "JSONata" reads its input, result or
  // error output and context through $states, and workflow variables as
  // $name; its `{% %}` strings were compiled with the definition.

  // $states for one evaluation: input, context, and `result` or
  // `errorOutput` (named by `extra_name`) when there is one.
  void BuildStates(const Frame& frame, const json::Value& input, const char* extra_name,
                   const json::Value* extra, json::Value* out, json::Allocator& a) {
    out->SetObject();
    out->AddMember("input", json::Copy(input, a), a);
    if (extra != nullptr) {
      out->AddMember(json::Value(rapidjson::StringRef(extra_name)), json::Copy(*extra, a), a);
    }
    out->AddMember("context", json::Copy(ContextObject(frame), a), a);
  }

  static absl::string_view JsonTypeName(const json::Value& value) {
    if (value.IsNull()) return "null";
    if (value.IsBool()) return "boolean";
    if (value.IsNumber()) return "number";
    if (value.IsString()) return "string";
    if (value.IsArray()) return "array";
    return "object";
  }

  // Whether `text` reads `$name` (not a longer name that starts with it).
  static bool MentionsVariable(absl::string_view text, absl::string_view name) {
    for (size_t at = text.find('$'); at != absl::string_view::npos;
         at = text.find('$', at + 1)) {
      const absl::string_view rest = text.substr(at + 1);
      if (!absl::StartsWith(rest, name)) continue;
      const size_t end = name.size();
      if (end == rest.size() ||
          !(absl::ascii_isalnum(static_cast<unsigned char>(rest[end])) || rest[end] == '_' ||
            static_cast<unsigned char>(rest[end]) >= 0x80)) {
        return true;
      }
    }
    return false;
  }

  static absl::string_view ExpressionText(const jsonata::Expression& expression) {
    return absl::StripAsciiWhitespace(expression.text());
  }

  // States.QueryEvaluationError for the field at `location`, recorded by
  // an EvaluationFailed event as AWS does.
  StateError QueryError(const Frame& frame, absl::string_view location,
                        absl::string_view message) {
    StateError failure{"States.QueryEvaluationError",
                       absl::StrCat("An error occurred while executing the state '",
                                    frame.state(), "' (entered at the event id #",
                                    frame.entered_event_id(), "). ", message)};
    auto* details = Emit("EvaluationFailed")->mutable_evaluation_failed_event_details();
    details->set_error(failure.error);
    details->set_cause(failure.cause);
    details->set_location(std::string(location));
    details->set_state(frame.state());
    return failure;
  }

  StateError UnexpectedType(const Frame& frame, const jsonata::Expression& expression,
                            absl::string_view location, absl::string_view expected,
                            const json::Value& value) {
    return QueryError(frame, location,
                      absl::StrCat("The JSONata expression '", ExpressionText(expression),
                                   "' specified for the field '", location,
                                   "' returned an unexpected result type. Expected '", expected,
                                   "', but was '", JsonTypeName(value),
                                   "' for value: ", json::Serialize(value)));
  }

  // Evaluates one compiled expression; its value must be defined.
  std::optional<StateError> EvaluateExpression(const Frame& frame,
                                               const jsonata::Expression& expression,
                                               const json::Value& states,
                                               absl::string_view location, json::Value* out,
                                               json::Allocator& a) {
    jsonata::Bindings bindings;
    for (const std::string& name : expression.Variables()) {
      if (name == "states") {
        bindings.emplace_back(name, &states);
      } else if (const json::Value* value = Variable(frame, name)) {
        bindings.emplace_back(name, value);
      }
    }
    // A workflow variable named like a built-in function ($sum, $count)
    // shadows it, as bindings do in JSONata; Variables() leaves such names
    // out, so they are looked for in the text.
    for (const Frame* scope = &frame; scope != nullptr;
         scope = scope->parent_id() == 0 || scope->has_child_execution()
                     ? nullptr
                     : F(scope->parent_id())) {
      for (const auto& [name, text] : scope->variables()) {
        if (!MentionsVariable(expression.text(), name) ||
            std::binary_search(expression.Variables().begin(), expression.Variables().end(),
                               name) ||
            std::any_of(bindings.begin(), bindings.end(),
                        [&](const auto& bound) { return bound.first == name; })) {
          continue;
        }
        if (const json::Value* value = Variable(frame, name)) bindings.emplace_back(name, value);
      }
    }
    jsonata::Environment env;
    env.now = now_;
    if (context_.random_unit) env.random = context_.random_unit;
    // $uuid: derived from the execution and the step, so a replay gives the
    // same ids.
    env.uuid = [this, counter = int64_t{0}]() mutable {
      return DerivedUuid(context_.execution_arn, NextEventId(), (int64_t{1} << 32) + counter++);
    };
    jsonata::EvalError error;
    auto result = expression.Evaluate(nullptr, bindings, env, &a, &error);
    if (!result.ok()) {
      return QueryError(frame, location,
                        absl::StrCat("The JSONata expression '", ExpressionText(expression),
                                     "' specified for the field '", location,
                                     "' threw an error during evaluation. ", error.code, ": ",
                                     error.message));
    }
    if (result->function) {
      return QueryError(frame, location,
                        absl::StrCat("The JSONata expression '", ExpressionText(expression),
                                     "' specified for the field '", location,
                                     "' returned an unsupported result type."));
    }
    if (!result->defined) {
      return QueryError(frame, location,
                        absl::StrCat("The JSONata expression '", ExpressionText(expression),
                                     "' specified for the field '", location,
                                     "' returned nothing (undefined)."));
    }
    *out = std::move(result->value);
    return std::nullopt;
  }

  // A JSONata template: its `{% %}` strings evaluated, everything else
  // literal. `location` names the field, e.g. "Output/result".
  std::optional<StateError> ApplyJsonata(const Frame& frame, const json::Value& tmpl,
                                         const json::Value& states, const std::string& location,
                                         json::Value* out, json::Allocator& a) {
    if (const jsonata::Expression* expression = definition_.Jsonata(&tmpl)) {
      return EvaluateExpression(frame, *expression, states, location, out, a);
    }
    if (tmpl.IsObject()) {
      out->SetObject();
      for (const auto& member : tmpl.GetObject()) {
        json::Value value;
        if (auto error = ApplyJsonata(frame, member.value, states,
                                      absl::StrCat(location, "/", member.name.GetString()),
                                      &value, a)) {
          return error;
        }
        out->AddMember(json::Value(member.name, a), value, a);
      }
      return std::nullopt;
    }
    if (tmpl.IsArray()) {
      out->SetArray();
      for (rapidjson::SizeType i = 0; i < tmpl.Size(); ++i) {
        json::Value value;
        if (auto error =
                ApplyJsonata(frame, tmpl[i], states, absl::StrCat(location, "/", i), &value, a)) {
          return error;
        }
        out->PushBack(value, a);
      }
      return std::nullopt;
    }
    *out = json::Copy(tmpl, a);
    return std::nullopt;
  }

  // Assign, then Output (both over the variables as they were before the
  // state): `*out_text` is the output, `fallback` when there is no Output.
  std::optional<StateError> JsonataOutput(const Frame& frame, const json::Value* output,
                                          const json::Value* assign, const json::Value& states,
                                          const json::Value& fallback, std::string* out_text,
                                          std::map<std::string, std::string>* assigned,
                                          json::Allocator& a) {
    if (assign != nullptr && assign->IsObject()) {
      for (const auto& member : assign->GetObject()) {
        std::string name(member.name.GetString(), member.name.GetStringLength());
        json::Value value;
        if (auto error = ApplyJsonata(frame, member.value, states, "Assign/" + name, &value, a)) {
          return error;
        }
        (*assigned)[name] = json::Serialize(value);
      }
    }
    if (output == nullptr) {
      *out_text = json::Serialize(fallback);
      return std::nullopt;
    }
    json::Value value;
    if (auto error = ApplyJsonata(frame, *output, states, "Output", &value, a)) return error;
    *out_text = json::Serialize(value);
    return std::nullopt;
  }

  // A non-negative integer field (Seconds, TimeoutSeconds, ...): a literal
  // or an expression; nullopt (and the error in `*failure`) when invalid.
  std::optional<int64_t> JsonataInt(const Frame& frame, const State& state,
                                    absl::string_view field, const IntOrPath& literal,
                                    const json::Value& states, json::Allocator& a,
                                    std::optional<StateError>* failure) {
    auto it = state.expressions.find(field);
    if (it == state.expressions.end()) return literal.value.value_or(0);
    const jsonata::Expression& expression = *definition_.Jsonata(it->second);
    json::Value value;
    if ((*failure = EvaluateExpression(frame, expression, states, field, &value, a))) {
      return std::nullopt;
    }
    if (value.IsNumber() && !value.IsInt64() && value.IsDouble() &&
        value.GetDouble() == std::floor(value.GetDouble()) && std::fabs(value.GetDouble()) < 9e15) {
      value.SetInt64(static_cast<int64_t>(value.GetDouble()));
    }
    if (!value.IsInt64() || value.GetInt64() < 0 || value.GetInt64() > 99999999) {
      *failure = UnexpectedType(frame, expression, field, "integer", value);
      return std::nullopt;
    }
    return value.GetInt64();
  }

  // A string field (Error, Cause, Timestamp): a literal or an expression.
  std::optional<std::string> JsonataString(const Frame& frame, const State& state,
                                           absl::string_view field, const std::string& literal,
                                           const json::Value& states, json::Allocator& a,
                                           std::optional<StateError>* failure) {
    auto it = state.expressions.find(field);
    if (it == state.expressions.end()) return literal;
    const jsonata::Expression& expression = *definition_.Jsonata(it->second);
    json::Value value;
    if ((*failure = EvaluateExpression(frame, expression, states, field, &value, a))) {
      return std::nullopt;
    }
    if (!value.IsString()) {
      *failure = UnexpectedType(frame, expression, field, "string", value);
      return std::nullopt;
    }
    return std::string(value.GetString(), value.GetStringLength());
  }

  // Task, Parallel and Map once their result is in: Output (default: the
  // result) and Assign over $states.input and $states.result.
  void ExitJsonataWithResult(int64_t frame_id, const State& state, const json::Value& input,
                             const json::Value& result) {
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, input, "result", &result, &states, a);
    std::string output;
    std::map<std::string, std::string> assigned;
    if (auto error = JsonataOutput(frame, state.output, state.assign, states, result, &output,
                                   &assigned, a)) {
      HandleError(frame_id, *error);
      return;
    }
    ExitState(frame_id, state, std::move(output), assigned);
  }

  // Pass and Succeed: Output (default: the input) and Assign.
  void RunJsonataPassOrSucceed(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    std::string output;
    std::map<std::string, std::string> assigned;
    if (auto error =
            JsonataOutput(frame, state.output, state.assign, states, *raw, &output, &assigned, a)) {
      HandleError(frame_id, *error);
      return;
    }
    if (state.type == StateType::kSucceed) {
      EmitExited(frame_id, state, output, {});
      FrameSucceeded(frame_id, std::move(output));
      return;
    }
    ExitState(frame_id, state, std::move(output), assigned);
  }

  void RunJsonataFail(int64_t frame_id, const State& state) {
    StateError failure{state.error, state.cause};
    if (!state.expressions.empty()) {
      auto raw = ParseInput(frame_id);
      if (!raw) return;
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      const Frame& frame = *F(frame_id);
      json::Value states;
      BuildStates(frame, *raw, nullptr, nullptr, &states, a);
      std::optional<StateError> problem;
      auto error = JsonataString(frame, state, "Error", state.error, states, a, &problem);
      std::optional<std::string> cause;
      if (error) cause = JsonataString(frame, state, "Cause", state.cause, states, a, &problem);
      if (problem) {
        FrameFailed(frame_id, *problem);
        return;
      }
      failure = StateError{*error, *cause};
    }
    FrameFailed(frame_id, failure);
  }

  void RunJsonataChoice(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    const ConditionRule* matched = nullptr;
    for (size_t i = 0; i < state.conditions.size() && matched == nullptr; ++i) {
      const ConditionRule& rule = state.conditions[i];
      bool holds = rule.condition->IsBool() && rule.condition->GetBool();
      if (const jsonata::Expression* expression = definition_.Jsonata(rule.condition)) {
        json::Value value;
        if (auto error = EvaluateExpression(frame, *expression, states, "Condition", &value, a)) {
          HandleError(frame_id, *error);
          return;
        }
        if (!value.IsBool()) {
          HandleError(frame_id, UnexpectedType(frame, *expression, "Condition", "boolean", value));
          return;
        }
        holds = value.GetBool();
      }
      if (holds) matched = &rule;
    }
    std::string next = matched != nullptr ? matched->next : state.default_next;
    if (next.empty()) {
      HandleError(frame_id, StateError{"States.NoChoiceMatched", "No Matches!"});
      return;
    }
    const json::Value* output = state.output;
    const json::Value* assign = state.assign;
    if (matched != nullptr) {
      if (matched->output != nullptr) output = matched->output;
      if (matched->assign != nullptr) assign = matched->assign;
    }
    std::string text;
    std::map<std::string, std::string> assigned;
    if (auto error = JsonataOutput(frame, output, assign, states, *raw, &text, &assigned, a)) {
      HandleError(frame_id, *error);
      return;
    }
    EmitExited(frame_id, state, text, assigned);
    Enqueue(frame_id, next, std::move(text));
  }

  void RunJsonataWait(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    std::optional<StateError> problem;
    absl::Time fire_at = now_;
    if (state.seconds.present() || state.expressions.count("Seconds")) {
      auto seconds = JsonataInt(frame, state, "Seconds", state.seconds, states, a, &problem);
      if (!seconds) {
        HandleError(frame_id, *problem);
        return;
      }
      fire_at = now_ + absl::Seconds(*seconds);
    } else if (state.timestamp) {
      fire_at = *state.timestamp;
    } else if (state.expressions.count("Timestamp")) {
      auto text = JsonataString(frame, state, "Timestamp", "", states, a, &problem);
      if (!text) {
        HandleError(frame_id, *problem);
        return;
      }
      if (!TryParseTimestamp(*text, &fire_at)) {
        HandleError(frame_id,
                    QueryError(frame, "Timestamp",
                               absl::StrCat("The Timestamp field cannot be parsed as an ISO-8601 "
                                            "extended offset date-time format string: ",
                                            *text)));
        return;
      }
    }
    if (fire_at - now_ > absl::Seconds(2147483647)) {
      HandleError(frame_id, RuntimeError(frame, "Wait state delay is too long."));
      return;
    }
    if (fire_at <= now_) {
      FinishWait(frame_id, state);
      return;
    }
    Frame* waiting = F(frame_id);
    waiting->set_timer_kind(kWaitTimer);
    waiting->set_timer_id(ArmTimer(fire_at - now_));
  }

  void ScheduleJsonataTask(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    const int64_t scheduled_id = NextEventId();
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    // $states.context.Task.Token names the ActivityScheduled event to come.
    task_token_ = TokenFor(scheduled_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    task_token_.clear();
    json::Value arguments;
    std::optional<StateError> problem;
    if (state.arguments != nullptr) {
      problem = ApplyJsonata(frame, *state.arguments, states, "Arguments", &arguments, a);
    } else {
      arguments = json::Copy(*raw, a);
    }
    std::optional<int64_t> timeout, heartbeat;
    if (!problem) {
      timeout = JsonataInt(frame, state, "TimeoutSeconds", state.timeout_seconds, states, a,
                           &problem);
    }
    if (!problem) {
      heartbeat = JsonataInt(frame, state, "HeartbeatSeconds", state.heartbeat_seconds, states,
                             a, &problem);
    }
    if (problem) {
      HandleError(frame_id, *problem);
      return;
    }
    DispatchTask(frame_id, state, json::Serialize(arguments), *timeout, *heartbeat);
  }

  void StartJsonataParallel(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    json::Value arguments;
    if (state.arguments != nullptr) {
      if (auto error = ApplyJsonata(frame, *state.arguments, states, "Arguments", &arguments, a)) {
        HandleError(frame_id, *error);
        return;
      }
    } else {
      arguments = json::Copy(*raw, a);
    }
    StartBranches(frame_id, state, arguments);
  }

  void StartJsonataMap(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    json::Value items;
    std::optional<StateError> problem = JsonataItems(frame, state, *raw, states, &items, a);
    std::optional<int64_t> max;
    if (!problem) {
      max = JsonataInt(frame, state, "MaxConcurrency", state.max_concurrency, states, a,
                       &problem);
    }
    if (problem) {
      // AWS records the Map state as failed before handling the error.
      if (!WillRetry(frame, state, *problem)) Emit("MapStateFailed");
      HandleError(frame_id, *problem);
      return;
    }
    StartIterations(frame_id, items, *raw, *max);
  }

  // A JSONata Map's items: Items over $states, or the input, which must be
  // an array.
  std::optional<StateError> JsonataItems(const Frame& frame, const State& state,
                                         const json::Value& input, const json::Value& states,
                                         json::Value* items, json::Allocator& a) {
    auto it = state.expressions.find("Items");
    if (it == state.expressions.end()) {
      *items = json::Copy(input, a);
    } else if (auto problem = ApplyJsonata(frame, *it->second, states, "Items", items, a)) {
      return problem;
    }
    if (items->IsArray()) return std::nullopt;
    if (it != state.expressions.end()) {
      if (const jsonata::Expression* expression = definition_.Jsonata(it->second)) {
        return UnexpectedType(frame, *expression, "Items", "array", *items);
      }
    }
    return QueryError(frame, "", absl::StrCat("Map state input must be an array but was: ",
                                              json::Serialize(*items)));
  }

  // The input of Map iteration `index`: ItemSelector over the Map's input
  // with $states.context.Map.Item set, or the item itself.
  std::optional<StateError> JsonataItemInput(const Frame& frame, const State& state,
                                             const json::Value& map_input, int32_t index,
                                             const std::string& item_text, std::string* input) {
    if (state.item_selector == nullptr) {
      *input = item_text;
      return std::nullopt;
    }
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    map_item_ = std::make_pair(static_cast<int64_t>(index), item_text);
    json::Value states;
    BuildStates(frame, map_input, nullptr, nullptr, &states, a);
    map_item_.reset();
    json::Value selected;
    if (auto error = ApplyJsonata(frame, *state.item_selector, states, "ItemSelector", &selected,
                                  a)) {
      return error;
    }
    *input = json::Serialize(selected);
    return std::nullopt;
  }

  // --- State types ----------------------------------------------------------

  // A Pass state with no field that selects, adds or assigns anything: its
  // output is its input.
  static bool PassesInputThrough(const State& state) {
    return state.input_path.kind == PathField::Kind::kDefault && state.parameters == nullptr &&
           state.result == nullptr && state.assign == nullptr &&
           state.output_path.kind == PathField::Kind::kDefault &&
           (state.result_path.kind == PathField::Kind::kDefault ||
            (state.result_path.kind == PathField::Kind::kPath && state.result_path.path &&
             state.result_path.path->is_root()));
  }

  void RunPass(int64_t frame_id, const State& state) {
    if (PassesInputThrough(state) && InputIsCanonical(frame_id)) {
      ParsedInputPtr parsed = std::move(carried_.parsed);
      // The frame's input is not read again once its state exits (a Pass
      // state has no Catch), so it moves rather than copies.
      pristine_frame_ = frame_id;
      ExitState(frame_id, state, std::move(*F(frame_id)->mutable_input()), {}, std::move(parsed));
      return;
    }
    const bool canonical = InputIsCanonical(frame_id);
    ParsedInputPtr raw = TakeInput(frame_id);
    if (raw == nullptr) return;
    json::Allocator& a = raw->allocator;
    const Frame& frame = *F(frame_id);
    const json::Value* result = nullptr;
    json::Value result_storage;
    if (state.result != nullptr) {
      const json::Value* ignored = nullptr;
      if (auto error =
              SelectView(frame, state.input_path, raw->value, &ignored, &result_storage, a)) {
        FrameFailed(frame_id, *error);
        return;
      }
      result = state.result;
    } else {
      json::Value selected_storage;
      const json::Value* selected = nullptr;
      if (auto error =
              SelectView(frame, state.input_path, raw->value, &selected, &selected_storage, a)) {
        FrameFailed(frame_id, *error);
        return;
      }
      if (state.parameters == nullptr) {
        if (selected == &selected_storage) {
          result_storage = std::move(selected_storage);
          result = &result_storage;
        } else {
          result = selected;
        }
      } else {
        if (auto error =
                ApplyTemplate(frame, *state.parameters, *selected, &result_storage, a)) {
          FrameFailed(frame_id, *error);
          return;
        }
        result = &result_storage;
      }
    }
    std::string output;
    std::map<std::string, std::string> assigned;
    ParsedInputPtr parsed_output;
    // Pass has no ResultSelector; OutputInPlace skips it when absent.
    if (auto error = OutputInPlace(frame, state, std::move(raw), result, &result_storage, &output,
                                   &assigned, &parsed_output, canonical)) {
      FrameFailed(frame_id, *error);
      return;
    }
    pristine_frame_ = frame_id;
    ExitState(frame_id, state, std::move(output), assigned, std::move(parsed_output));
  }

  void RunSucceed(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected, output;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &selected, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    if (auto error = SelectPath(*F(frame_id), state.output_path, selected, &output, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::string text = json::Serialize(output);
    EmitExited(frame_id, state, text, {});
    FrameSucceeded(frame_id, std::move(text));
  }

  void RunFail(int64_t frame_id, const State& state) {
    StateError failure{state.error, state.cause};
    if (state.error_call || state.cause_call) {
      auto raw = ParseInput(frame_id);
      if (!raw) return;
      for (auto [call_value, out] : {std::pair{state.error_call, &failure.error},
                                     std::pair{state.cause_call, &failure.cause}}) {
        if (call_value == nullptr) continue;
        json::Document doc(&arena_);
        auto value = EvaluateIntrinsic(*F(frame_id), *definition_.Intrinsic(call_value), *raw,
                                       doc.GetAllocator());
        if (!value.ok()) {
          absl::string_view message = value.status().message();
          absl::ConsumePrefix(&message, "States.Runtime: ");
          FrameFailed(frame_id, RuntimeError(*F(frame_id), message));
          return;
        }
        *out = value->IsString() ? std::string(value->GetString(), value->GetStringLength())
                                 : json::Serialize(*value);
      }
    }
    if (state.error_path || state.cause_path) {
      auto raw = ParseInput(frame_id);
      if (!raw) return;
      for (auto [path, out] : {std::pair{&state.error_path, &failure.error},
                               std::pair{&state.cause_path, &failure.cause}}) {
        if (!path->has_value()) continue;
        const json::Value* found = Resolve(*F(frame_id), **path, *raw);
        if (found == nullptr) {
          FrameFailed(frame_id,
                      RuntimeError(*F(frame_id),
                                   absl::StrCat("The JSONPath '", (*path)->text(),
                                                "' specified for the field '",
                                                path == &state.error_path ? "ErrorPath"
                                                                          : "CausePath",
                                                "' could not be found in the input '",
                                                json::Serialize(*raw), "'")));
          return;
        }
        if (!found->IsString()) {
          FrameFailed(frame_id,
                      RuntimeError(*F(frame_id),
                                   absl::StrCat("The JSONPath '", (*path)->text(),
                                                "' did not resolve to a string")));
          return;
        }
        *out = std::string(found->GetString(), found->GetStringLength());
      }
    }
    // A Fail state cannot be caught by itself: its frame fails.
    FrameFailed(frame_id, failure);
  }

  void RunChoice(int64_t frame_id, const State& state) {
    const bool canonical = InputIsCanonical(frame_id);
    ParsedInputPtr raw = TakeInput(frame_id);
    if (raw == nullptr) return;
    json::Allocator& a = raw->allocator;
    const Frame& frame = *F(frame_id);
    const json::Value* input = nullptr;
    json::Value input_storage;
    if (auto error = SelectView(frame, state.input_path, raw->value, &input, &input_storage, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    ChoicePathResolver resolve = [&](absl::string_view text) -> absl::StatusOr<const json::Value*> {
      const ReferencePath* path = definition_.Reference(text);
      std::optional<ReferencePath> parsed;
      if (path == nullptr) {
        auto fresh = ReferencePath::Parse(text);
        if (!fresh.ok()) return fresh.status();
        parsed = std::move(*fresh);
        path = &*parsed;
      }
      const json::Value* found = Resolve(frame, *path, *input);
      if (found == nullptr) return absl::NotFoundError(text);
      return found;
    };
    std::string next;
    const json::Value* assign = state.assign;
    for (size_t i = 0; i < state.choices.size(); ++i) {
      auto matched = state.choices[i]->Evaluate(resolve);
      if (!matched.ok()) {
        absl::string_view message = matched.status().message();
        if (absl::ConsumePrefix(&message, "States.Runtime: ")) {
          FrameFailed(frame_id, RuntimeError(frame, message));
        } else {
          FrameFailed(frame_id, RuntimeError(frame, matched.status().message()));
        }
        return;
      }
      if (*matched) {
        next = state.choices[i]->next();
        if (state.choice_assigns[i] != nullptr) assign = state.choice_assigns[i];
        break;
      }
    }
    if (next.empty()) next = state.default_next;
    if (next.empty()) {
      FrameFailed(frame_id, StateError{"States.NoChoiceMatched", "No Matches!"});
      return;
    }
    const json::Value* output = nullptr;
    json::Value output_storage;
    if (auto error = SelectView(frame, state.output_path, *input, &output, &output_storage, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::map<std::string, std::string> assigned;
    if (auto error = EvaluateAssign(frame, assign, *input, &assigned)) {
      FrameFailed(frame_id, *error);
      return;
    }
    // A Choice that selects nothing passes its input on as it came.
    std::string text = output == &raw->value && canonical ? frame.input()
                                                          : json::Serialize(*output, frame.input().size());
    if (output != &raw->value) {
      json::Value kept = Detach(output, {&output_storage, &input_storage}, a);
      raw->value = std::move(kept);
    }
    pristine_frame_ = frame_id;
    EmitExited(frame_id, state, text, assigned);
    Enqueue(frame_id, next, std::move(text), std::move(raw));
  }

  void RunWait(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value input;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &input, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    absl::Time fire_at = now_;
    if (state.seconds.present()) {
      auto seconds = ResolveInt(frame_id, state.seconds, input, "Seconds");
      if (!seconds) return;
      fire_at = now_ + absl::Seconds(*seconds);
    } else if (state.timestamp) {
      fire_at = *state.timestamp;
    } else if (state.timestamp_path) {
      const json::Value* found = Resolve(*F(frame_id), *state.timestamp_path, input);
      absl::Time parsed;
      if (found == nullptr || !found->IsString() ||
          !TryParseTimestamp(absl::string_view(found->GetString(), found->GetStringLength()),
                             &parsed)) {
        std::string shown = found == nullptr ? ""
                            : found->IsString() ? std::string(found->GetString())
                                                : json::Serialize(*found);
        FrameFailed(frame_id,
                    RuntimeError(*F(frame_id),
                                 absl::StrCat("The TimestampPath parameter does not reference a "
                                              "valid ISO-8601 extended offset date-time format "
                                              "string: ",
                                              state.timestamp_path->text(),
                                              found == nullptr ? "" : " == ", shown)));
        return;
      }
      fire_at = parsed;
    }
    // AWS keeps delays in a signed 32-bit count of seconds.
    if (fire_at - now_ > absl::Seconds(2147483647)) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), "Wait state delay is too long."));
      return;
    }
    if (fire_at <= now_) {
      FinishWait(frame_id, state);
      return;
    }
    Frame* frame = F(frame_id);
    frame->set_timer_kind(kWaitTimer);
    frame->set_timer_id(ArmTimer(fire_at - now_));
  }

  void FinishWait(int64_t frame_id, const State& state) {
    if (state.jsonata) {
      F(frame_id)->clear_timer_id();
      RunJsonataPassOrSucceed(frame_id, state);
      return;
    }
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value input, output;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &input, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    if (auto error = SelectPath(*F(frame_id), state.output_path, input, &output, a)) {
      FrameFailed(frame_id, *error);
      return;
    }
    std::map<std::string, std::string> assigned;
    if (auto error = EvaluateAssign(*F(frame_id), state.assign, input, &assigned)) {
      FrameFailed(frame_id, *error);
      return;
    }
    F(frame_id)->clear_timer_id();
    ExitState(frame_id, state, json::Serialize(output), assigned);
  }

  void ScheduleTask(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    // The token names the ActivityScheduled event about to be emitted, so
    // Parameters can pass $$.Task.Token along.
    const int64_t scheduled_id = NextEventId();
    task_token_ = TokenFor(scheduled_id);
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value effective;
    auto error = EffectiveInput(*F(frame_id), state, *raw, &effective, a);
    task_token_.clear();
    if (error) {
      FrameFailed(frame_id, *error);
      return;
    }
    auto timeout = ResolveInt(frame_id, state.timeout_seconds, *raw, "TimeoutSeconds");
    if (!timeout) return;
    auto heartbeat = ResolveInt(frame_id, state.heartbeat_seconds, *raw, "HeartbeatSeconds");
    if (!heartbeat) return;
    DispatchTask(frame_id, state, json::Serialize(effective), *timeout, *heartbeat);
  }

  // The task token of the task scheduled by event `event_id` (empty
  // without a minter). Minted once: $$.Task.Token needs it before the
  // event, the dispatch after.
  std::string TokenFor(int64_t event_id) {
    if (!context_.mint_task_token) return "";
    if (minted_token_event_ != event_id) {
      minted_token_ = context_.mint_task_token(event_id);
      minted_token_event_ = event_id;
    }
    return minted_token_;
  }

  // The region of the execution's ARN (arn:PARTITION:states:REGION:...).
  std::string Region() const {
    std::vector<absl::string_view> parts =
        absl::StrSplit(context_.execution_arn, absl::MaxSplits(':', 4));
    return parts.size() > 3 ? std::string(parts[3]) : std::string();
  }

  // TaskScheduled, and the service call for the caller to make.
  void DispatchServiceCall(int64_t frame_id, const State& state, std::string parameters,
                           int64_t timeout, int64_t heartbeat) {
    v1::HistoryEvent* scheduled = Emit("TaskScheduled");
    auto* details = scheduled->mutable_task_scheduled_event_details();
    details->set_resource_type(state.integration.service);
    details->set_resource(state.integration.resource_name);
    details->set_region(Region());
    details->set_parameters(parameters);
    details->set_timeout_in_seconds(timeout);
    details->set_heartbeat_in_seconds(heartbeat);
    Frame* frame = F(frame_id);
    frame->set_scheduled_event_id(scheduled->id());
    frame->set_task_started(false);
    frame->set_task_submitted(false);
    frame->set_heartbeat_seconds(heartbeat);
    frame->clear_timer_id();
    if (timeout > 0) frame->set_task_timeout_timer(ArmTimer(absl::Seconds(timeout)));
    outcome_.service_calls.push_back(ServiceCall{
        state.integration, scheduled->id(),
        TokenFor(scheduled->id()),
        std::move(parameters)});
  }

  // Whether the task `frame` waits for is a service integration's.
  const Integration* ServiceTaskOf(const Frame& frame) {
    const State* state = StateOf(frame);
    return state != nullptr && state->integration.present() ? &state->integration : nullptr;
  }

  // TaskSubmitted: the call of a .sync / .waitForTaskToken task answered.
  absl::Status TaskSubmitted(int64_t frame_id, absl::string_view output) {
    const Integration* integration = ServiceTaskOf(*F(frame_id));
    if (integration == nullptr || F(frame_id)->task_submitted()) {
      return absl::FailedPreconditionError("the task was submitted already");
    }
    TaskStarted(frame_id, "");
    EventScope scope(this, frame_id);
    auto* details = Emit("TaskSubmitted")->mutable_task_submitted_event_details();
    details->set_resource_type(integration->service);
    details->set_resource(integration->resource_name);
    details->set_output(std::string(output));
    details->mutable_output_details()->set_truncated(false);
    F(frame_id)->set_task_submitted(true);
    return absl::OkStatus();
  }

  // ActivityScheduled, and the activity task for the caller to dispatch;
  // for a service integration, TaskScheduled and its call.
  void DispatchTask(int64_t frame_id, const State& state, std::string task_input,
                    int64_t timeout, int64_t heartbeat) {
    if (state.integration.present()) {
      DispatchServiceCall(frame_id, state, std::move(task_input), timeout, heartbeat);
      return;
    }
    // AWS looks the activity up before scheduling it: a missing one fails
    // the state with no ActivityScheduled.
    if (context_.activity_exists && !context_.activity_exists(state.resource)) {
      FrameFailed(frame_id, RuntimeError(*F(frame_id), absl::StrCat("The activity ",
                                                                    state.resource,
                                                                    " does not exist.")));
      return;
    }
    v1::HistoryEvent* scheduled = Emit("ActivityScheduled");
    auto* details = scheduled->mutable_activity_scheduled_event_details();
    details->set_resource(state.resource);
    details->set_input(task_input);
    details->mutable_input_details()->set_truncated(false);
    details->set_timeout_in_seconds(timeout);
    details->set_heartbeat_in_seconds(heartbeat);
    Frame* frame = F(frame_id);
    frame->set_scheduled_event_id(scheduled->id());
    frame->set_task_started(false);
    frame->set_activity_arn(state.resource);
    frame->set_heartbeat_seconds(heartbeat);
    frame->clear_timer_id();
    if (timeout > 0) frame->set_task_timeout_timer(ArmTimer(absl::Seconds(timeout)));
    outcome_.dispatches.push_back(ActivityDispatch{
        state.resource, scheduled->id(),
        TokenFor(scheduled->id()),
        std::move(task_input), timeout, heartbeat});
  }

  int64_t FindTaskFrame(int64_t scheduled_event_id) {
    if (scheduled_event_id == 0) return 0;
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.scheduled_event_id() == scheduled_event_id) return id;
    }
    return 0;
  }

  void ClearTask(Frame* frame) {
    frame->clear_scheduled_event_id();
    frame->clear_task_started();
    frame->clear_task_submitted();
    frame->clear_activity_arn();
    frame->clear_task_timeout_timer();
    frame->clear_heartbeat_timer();
    frame->clear_heartbeat_seconds();
  }

  void TaskStarted(int64_t frame_id, absl::string_view worker_name) {
    EventScope scope(this, frame_id);
    Frame* frame = F(frame_id);
    if (frame->task_started()) return;
    if (const Integration* integration = ServiceTaskOf(*frame)) {
      auto* details = Emit("TaskStarted")->mutable_task_started_event_details();
      details->set_resource_type(integration->service);
      details->set_resource(integration->resource_name);
    } else {
      auto* event = Emit("ActivityStarted");
      event->mutable_activity_started_event_details()->set_worker_name(std::string(worker_name));
    }
    frame = F(frame_id);
    frame->set_task_started(true);
    if (frame->heartbeat_seconds() > 0) {
      frame->set_heartbeat_timer(ArmTimer(absl::Seconds(frame->heartbeat_seconds())));
    }
  }

  void TaskSucceeded(int64_t frame_id, absl::string_view output_text) {
    EventScope scope(this, frame_id);
    if (const Integration* integration = ServiceTaskOf(*F(frame_id))) {
      auto* succeeded = Emit("TaskSucceeded")->mutable_task_succeeded_event_details();
      succeeded->set_resource_type(integration->service);
      succeeded->set_resource(integration->resource_name);
      succeeded->set_output(std::string(output_text));
      succeeded->mutable_output_details()->set_truncated(false);
    } else {
      auto* succeeded = Emit("ActivitySucceeded")->mutable_activity_succeeded_event_details();
      succeeded->set_output(std::string(output_text));
      succeeded->mutable_output_details()->set_truncated(false);
    }
    Frame* frame = F(frame_id);
    ClearTask(frame);
    const State& state = *StateOf(*frame);
    // A result that replaces the input whole needs no parse of the input.
    std::optional<json::Document> raw;
    if (!state.jsonata && !NeedsInputForResultPath(state.result_path)) {
      raw.emplace(&arena_);
    } else {
      raw = ParseInput(frame_id);
      if (!raw) return;
    }
    auto result = json::Parse(output_text, &arena_);
    if (!result.ok()) {
      HandleError(frame_id, StateError{kRuntime, "The task output is not valid JSON"});
      return;
    }
    std::string output;
    std::map<std::string, std::string> assigned;
    if (state.jsonata) {
      ExitJsonataWithResult(frame_id, state, *raw, *result);
      return;
    }
    if (auto error = StateOutput(*F(frame_id), state, *raw,
                                 std::move(static_cast<json::Value&>(*result)), &output,
                                 &assigned)) {
      HandleError(frame_id, *error);
      return;
    }
    ExitState(frame_id, state, std::move(output), assigned);
  }

  void TaskFailed(int64_t frame_id, absl::string_view event_type, absl::string_view error,
                  absl::string_view cause, bool heartbeat = false) {
    EventScope scope(this, frame_id);
    if (const Integration* integration = ServiceTaskOf(*F(frame_id))) {
      if (event_type == "ActivityFailed") {
        auto* details = Emit("TaskFailed")->mutable_task_failed_event_details();
        details->set_resource_type(integration->service);
        details->set_resource(integration->resource_name);
        details->set_error(std::string(error));
        details->set_cause(std::string(cause));
      } else {
        auto* details = Emit("TaskTimedOut")->mutable_task_timed_out_event_details();
        details->set_resource_type(integration->service);
        details->set_resource(integration->resource_name);
        details->set_error(std::string(error));
        details->set_cause(std::string(cause));
      }
      ClearTask(F(frame_id));
      HandleError(frame_id, StateError{std::string(error), std::string(cause), heartbeat});
      return;
    }
    v1::HistoryEvent* event = Emit(event_type);
    if (event_type == "ActivityFailed") {
      auto* details = event->mutable_activity_failed_event_details();
      details->set_error(std::string(error));
      details->set_cause(std::string(cause));
    } else {
      auto* details = event->mutable_activity_timed_out_event_details();
      details->set_error(std::string(error));
      details->set_cause(std::string(cause));
    }
    ClearTask(F(frame_id));
    HandleError(frame_id, StateError{std::string(error), std::string(cause), heartbeat});
  }

  void StartParallel(int64_t frame_id, const State& state) {
    if (state.input_path.kind == PathField::Kind::kDefault && state.parameters == nullptr) {
      // The branches' input is the state's input: its text when that is
      // canonical, and the parsed input itself for the last branch.
      const bool canonical = InputIsCanonical(frame_id);
      ParsedInputPtr raw = TakeInput(frame_id);
      if (raw == nullptr) return;
      const std::string& input = F(frame_id)->input();
      std::string text = canonical ? input : json::Serialize(raw->value, input.size());
      const json::Value& effective = raw->value;
      StartBranches(frame_id, state, effective, std::move(text), std::move(raw));
      return;
    }
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value effective;
    if (auto error = EffectiveInput(*F(frame_id), state, *raw, &effective, a)) {
      HandleError(frame_id, *error);
      return;
    }
    StartBranches(frame_id, state, effective);
  }

  // ParallelStateStarted, and each branch enqueued with `effective` as input.
  void StartBranches(int64_t frame_id, const State& state, const json::Value& effective) {
    StartBranches(frame_id, state, effective,
                  json::Serialize(effective, F(frame_id)->input().size()), nullptr);
  }

  // The same with the input's text given, and `owned`, when given, holding
  // `effective` for the last branch to take instead of a copy.
  void StartBranches(int64_t frame_id, const State& state, const json::Value& effective,
                     std::string input, ParsedInputPtr owned) {
    Emit("ParallelStateStarted");
    Frame* frame = F(frame_id);
    const int total = static_cast<int>(state.branches.size());
    frame->set_waiting_children(true);
    frame->set_total_children(total);
    frame->set_next_child(total);
    frame->set_running_children(total);
    frame->clear_child_outputs();
    for (int i = 0; i < total; ++i) frame->add_child_outputs();
    for (int i = 0; i < total; ++i) {
      Frame* branch = NewFrame(frame_id, i);
      // Each branch gets the input parsed already: a copy costs less than
      // parsing the text again.
      ParsedInputPtr parsed;
      if (i + 1 == total && owned != nullptr && &owned->value == &effective) {
        parsed = std::move(owned);
      } else {
        parsed = std::make_unique<ParsedInput>();
        parsed->value.CopyFrom(effective, parsed->allocator);
      }
      EnqueueStart(branch->id(), *state.branches[i],
                   i + 1 == total ? std::move(input) : input, std::move(parsed));
    }
  }

  // The items of a Map state: ItemsPath applied to its input (after
  // InputPath), which must give an array.
  std::optional<StateError> SelectItems(const Frame& frame, const State& state,
                                        const json::Value& selected, json::Value* items,
                                        json::Allocator& a) {
    if (state.items_path.kind == PathField::Kind::kPath && state.items_path.any) {
      if (auto error = SelectGeneral(frame, *state.items_path.any, selected, items, a)) {
        return error;
      }
    } else if (state.items_path.kind == PathField::Kind::kPath) {
      const json::Value* found = Resolve(frame, *state.items_path.path, selected);
      if (found == nullptr) {
        return RuntimeError(frame, absl::StrCat("Invalid path '", state.items_path.path->text(),
                                                "' : No results for path: ",
                                                state.items_path.path->Canonical()));
      }
      *items = json::Copy(*found, a);
    } else {
      *items = json::Copy(selected, a);
    }
    if (!items->IsArray()) {
      // AWS's words, with a context path's "$$" shown as "$" and no
      // mention of the state.
      std::string path = state.items_path.kind == PathField::Kind::kPath
                             ? state.items_path.text()
                             : std::string("$");
      if (absl::StartsWith(path, "$$")) path.erase(0, 1);
      return StateError{kRuntime,
                        absl::StrCat("Reference path \"", path, "\" must point to array.")};
    }
    return std::nullopt;
  }

  void StartMap(int64_t frame_id, const State& state) {
    if (state.distributed) {
      StartDistributedMap(frame_id, state);
      return;
    }
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &selected, a)) {
      HandleError(frame_id, *error);
      return;
    }
    json::Value items;
    if (auto error = SelectItems(*F(frame_id), state, selected, &items, a)) {
      HandleError(frame_id, *error);
      return;
    }
    auto max = ResolveInt(frame_id, state.max_concurrency, selected, "MaxConcurrency");
    if (!max) return;
    StartIterations(frame_id, items, selected, *max);
  }

  // MapStateStarted, then iterations over `items` as MaxConcurrency allows;
  // `selected` is what ItemSelector reads.
  void StartIterations(int64_t frame_id, const json::Value& items, const json::Value& selected,
                       int64_t max) {
    auto* started = Emit("MapStateStarted")->mutable_map_state_started_event_details();
    started->set_length(static_cast<int32_t>(items.Size()));
    Frame* frame = F(frame_id);
    frame->set_waiting_children(true);
    frame->set_total_children(static_cast<int32_t>(items.Size()));
    frame->set_next_child(0);
    frame->set_running_children(0);
    frame->set_max_concurrency(static_cast<int32_t>(max));
    frame->clear_child_outputs();
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i) frame->add_child_outputs();
    frame->set_items(json::Serialize(items));
    frame->set_effective_input(json::Serialize(selected));
    Pump(frame_id);
  }

  // Starts Map iterations while the concurrency limit allows. Each runs
  // until it waits or ends before the next starts, as AWS orders them.
  void Pump(int64_t frame_id) {
    EventScope scope(this, frame_id);
    if (!pumping_.insert(frame_id).second) return;
    while (true) {
      Frame* frame = F(frame_id);
      if (frame == nullptr || !frame->waiting_children() || closed()) break;
      const State& state = *StateOf(*frame);
      if (frame->next_child() >= frame->total_children()) break;
      if (frame->max_concurrency() > 0 && frame->running_children() >= frame->max_concurrency()) {
        break;
      }
      const int32_t index = frame->next_child();
      frame->set_next_child(index + 1);
      frame->set_running_children(frame->running_children() + 1);
      auto items = json::Parse(frame->items(), &arena_);
      auto effective = json::Parse(frame->effective_input(), &arena_);
      if (!items.ok() || !effective.ok()) break;
      const json::Value& item = (*items)[static_cast<rapidjson::SizeType>(index)];
      std::string item_text = json::Serialize(item);
      std::string input = item_text;
      if (state.jsonata) {
        if (auto error = JsonataItemInput(*frame, state, *effective, index, item_text, &input)) {
          pumping_.erase(frame_id);
          DropChildren(frame_id);
          F(frame_id)->set_waiting_children(false);
          Emit("MapStateFailed");
          HandleError(frame_id, *error);
          return;
        }
      } else if (const json::Value* selector =
              state.item_selector != nullptr ? state.item_selector : state.parameters) {
        map_item_ = std::make_pair(static_cast<int64_t>(index), item_text);
        json::Document doc(&arena_);
        json::Value selected;
        auto error = ApplyTemplate(*frame, *selector, *effective, &selected, doc.GetAllocator());
        map_item_.reset();
        if (error) {
          pumping_.erase(frame_id);
          DropChildren(frame_id);
          F(frame_id)->set_waiting_children(false);
          Emit("MapStateFailed");
          HandleError(frame_id, *error);
          return;
        }
        input = json::Serialize(selected);
      }
      auto* details = Emit("MapIterationStarted")->mutable_map_iteration_started_event_details();
      details->set_name(state.name);
      details->set_index(index);
      Frame* child = NewFrame(frame_id, index);
      child->set_item_value(item_text);
      EnqueueStart(child->id(), *state.processor, std::move(input));
      Drain();
    }
    pumping_.erase(frame_id);
    MaybeCompleteChildren(frame_id);
  }

  void ChildDone(int64_t parent_id) {
    Frame* parent = F(parent_id);
    if (parent == nullptr || !parent->waiting_children()) return;
    if (pumping_.count(parent_id)) return;  // the pump loop goes on
    if (const State* owner = StateOf(*parent); owner->type == StateType::kMap) {
      if (owner->distributed) {
        PumpDistributed(parent_id);
      } else {
        Pump(parent_id);
      }
      return;
    }
    MaybeCompleteChildren(parent_id);
  }

  // Whether a Parallel or Map state's output is the array of its children's
  // outputs as it is (no ResultSelector, Assign, ResultPath or OutputPath
  // that changes it).
  static bool ResultsPassThrough(const State& state) {
    return !state.jsonata && state.result_selector == nullptr && state.assign == nullptr &&
           state.output_path.kind == PathField::Kind::kDefault &&
           (state.result_path.kind == PathField::Kind::kDefault ||
            (state.result_path.kind == PathField::Kind::kPath && state.result_path.path &&
             state.result_path.path->is_root()));
  }

  // Whether canonical JSON text nests at most `limit` levels deep.
  static bool NestsAtMost(absl::string_view text, int limit) {
    // Each level takes two bytes at least.
    if (text.size() <= 2 * static_cast<size_t>(limit)) return true;
    int depth = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      switch (text[i]) {
        case '"':
          for (++i; i < text.size() && text[i] != '"'; ++i) {
            if (text[i] == '\\') ++i;
          }
          break;
        case '[':
        case '{':
          if (++depth > limit) return false;
          break;
        case ']':
        case '}':
          --depth;
          break;
        default:
          break;
      }
    }
    return true;
  }

  // The JSON array of the children's outputs, written by joining their
  // texts: each is canonical (a state's output is json::Serialize's text),
  // so the join is what parsing and serializing them would give. False when
  // some child left no output, or one too deep for json::Parse (which the
  // general path turns into null).
  static bool JoinChildOutputs(const Frame& frame, std::string* out) {
    size_t size = 2;
    for (const std::string& text : frame.child_outputs()) {
      if (text.empty() || !NestsAtMost(text, json::kMaxDepth)) return false;
      size += text.size() + 1;
    }
    out->reserve(size);
    out->push_back('[');
    for (const std::string& text : frame.child_outputs()) {
      if (out->size() > 1) out->push_back(',');
      out->append(text);
    }
    out->push_back(']');
    return true;
  }

  void MaybeCompleteChildren(int64_t frame_id) {
    EventScope scope(this, frame_id);
    Frame* frame = F(frame_id);
    if (frame == nullptr || !frame->waiting_children() || closed()) return;
    if (frame->next_child() < frame->total_children() || frame->running_children() > 0) return;
    frame->set_waiting_children(false);
    const State& state = *StateOf(*frame);
    if (frame->has_map_run()) {
      NoteMapRunClosed(frame->map_run().map_run_arn(), "SUCCEEDED");
      frame->clear_map_run();
      Emit("MapRunSucceeded");
      // AWS does not make MapStateSucceeded the predecessor of what follows.
      Emit("MapStateSucceeded", /*advance_cursor=*/false);
    } else {
      Emit(state.type == StateType::kMap ? "MapStateSucceeded" : "ParallelStateSucceeded");
    }
    if (std::string output; ResultsPassThrough(state) && JoinChildOutputs(*frame, &output)) {
      frame->clear_child_outputs();
      frame->clear_items();
      frame->clear_effective_input();
      ExitState(frame_id, state, std::move(output));
      return;
    }
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value results(rapidjson::kArrayType);
    for (const std::string& text : frame->child_outputs()) {
      auto value = json::Parse(text, &arena_);  // in `a` already: moved, not copied
      results.PushBack(value.ok() ? std::move(static_cast<json::Value&>(*value)) : json::Value(),
                       a);
    }
    if (state.jsonata) {
      auto input = ParseInput(frame_id);
      if (!input) return;
      frame = F(frame_id);
      frame->clear_child_outputs();
      frame->clear_items();
      frame->clear_effective_input();
      ExitJsonataWithResult(frame_id, state, *input, results);
      return;
    }
    // The state's input matters only when ResultPath keeps some of it.
    std::optional<json::Document> raw;
    if (NeedsInputForResultPath(state.result_path)) {
      raw = ParseInput(frame_id);
      if (!raw) return;
    } else {
      raw.emplace(&arena_);
    }
    std::string output;
    std::map<std::string, std::string> assigned;
    if (auto error =
            StateOutput(*F(frame_id), state, *raw, std::move(results), &output, &assigned)) {
      HandleError(frame_id, *error);
      return;
    }
    frame = F(frame_id);
    frame->clear_child_outputs();
    frame->clear_items();
    frame->clear_effective_input();
    ExitState(frame_id, state, std::move(output), assigned);
  }

  // --- Distributed Map ------------------------------------------------------
  // A Map in DISTRIBUTED mode runs its items (or batches of them) as child
  // executions of one map run. They are frames below the Map's frame, as
  // inline iterations are, but their events are not part of this history:
  // it shows MapRunStarted and how the run ended. A failed child counts its
  // items as failed; the run fails with States.ExceedToleratedFailureThreshold
  // once the failed items exceed the tolerated count or percentage (with
  // neither given, any failure does).

  void StartDistributedMap(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    json::Value selected;
    if (auto error = SelectPath(*F(frame_id), state.input_path, *raw, &selected, a)) {
      HandleError(frame_id, *error);
      return;
    }
    // With an ItemReader the items would come from S3, not from the input.
    json::Value items(rapidjson::kArrayType);
    if (state.item_reader == nullptr) {
      if (auto error = SelectItems(*F(frame_id), state, selected, &items, a)) {
        HandleError(frame_id, *error);
        return;
      }
    }
    auto max = ResolveInt(frame_id, state.max_concurrency, selected, "MaxConcurrency");
    if (!max) return;
    auto* started = Emit("MapStateStarted")->mutable_map_state_started_event_details();
    started->set_length(static_cast<int32_t>(items.Size()));
    ::stepflow::internal::v1::MapRun run;
    if (!ResolveTolerance(frame_id, state, selected, &run)) return;
    auto max_items = ResolveBatchLimit(frame_id, state.max_items_per_batch, selected,
                                       "MaxItemsPerBatch");
    if (!max_items) return;
    auto max_bytes = ResolveBatchLimit(frame_id, state.max_input_bytes_per_batch, selected,
                                       "MaxInputBytesPerBatch");
    if (!max_bytes) return;
    run.set_express_children(state.express_children);
    StartMapRun(frame_id, state, &run);
    if (FailUnsupportedReaderOrWriter(frame_id, state)) return;
    // Each child's input: the item after ItemSelector, or a batch of them.
    json::Value inputs(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i) {
      json::Value input;
      if (state.item_selector != nullptr || state.parameters != nullptr) {
        map_item_ = std::make_pair(static_cast<int64_t>(i), json::Serialize(items[i]));
        auto error = ApplyTemplate(*F(frame_id),
                                   state.item_selector != nullptr ? *state.item_selector
                                                                  : *state.parameters,
                                   selected, &input, a);
        map_item_.reset();
        if (error) {
          FailMapRun(frame_id, *error);
          return;
        }
      } else {
        input = json::Copy(items[i], a);
      }
      inputs.PushBack(input, a);
    }
    json::Value batch_input;
    if (state.item_batcher && state.batch_input != nullptr) {
      if (auto error = ApplyTemplate(*F(frame_id), *state.batch_input, selected, &batch_input,
                                     a)) {
        FailMapRun(frame_id, *error);
        return;
      }
    }
    PlanMapRun(frame_id, state, items.Size(), std::move(inputs),
               state.batch_input != nullptr ? &batch_input : nullptr, *max_items, *max_bytes,
               *max, a);
  }

  // A Map in DISTRIBUTED mode of a JSONata state: Items (or the input),
  // MaxConcurrency, the tolerated failures and the batch limits evaluated
  // first (their errors fail the state before its map run starts), then
  // ItemSelector and BatchInput per child, as in StartJsonataMap.
  void StartJsonataDistributedMap(int64_t frame_id, const State& state) {
    auto raw = ParseInput(frame_id);
    if (!raw) return;
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    const Frame& frame = *F(frame_id);
    json::Value states;
    BuildStates(frame, *raw, nullptr, nullptr, &states, a);
    std::optional<StateError> problem;
    // With an ItemReader the items would come from S3, not from the input.
    json::Value items(rapidjson::kArrayType);
    if (state.item_reader == nullptr) {
      problem = JsonataItems(frame, state, *raw, states, &items, a);
    }
    std::optional<int64_t> max, max_items, max_bytes;
    ::stepflow::internal::v1::MapRun run;
    if (!problem) {
      max = JsonataInt(frame, state, "MaxConcurrency", state.max_concurrency, states, a,
                       &problem);
    }
    if (!problem) JsonataTolerance(frame, state, states, a, &run, &problem);
    if (!problem) {
      max_items = JsonataInt(frame, state, "MaxItemsPerBatch", state.max_items_per_batch, states,
                             a, &problem);
    }
    if (!problem) {
      max_bytes = JsonataInt(frame, state, "MaxInputBytesPerBatch",
                             state.max_input_bytes_per_batch, states, a, &problem);
    }
    if (problem) {
      // AWS records the Map state as failed before handling the error.
      if (!WillRetry(frame, state, *problem)) Emit("MapStateFailed");
      HandleError(frame_id, *problem);
      return;
    }
    auto* started = Emit("MapStateStarted")->mutable_map_state_started_event_details();
    started->set_length(static_cast<int32_t>(items.Size()));
    run.set_express_children(state.express_children);
    StartMapRun(frame_id, state, &run);
    if (FailUnsupportedReaderOrWriter(frame_id, state)) return;
    json::Value inputs(rapidjson::kArrayType);
    for (rapidjson::SizeType i = 0; i < items.Size(); ++i) {
      if (state.item_selector == nullptr) {
        inputs.PushBack(json::Copy(items[i], a), a);
        continue;
      }
      std::string input;
      if (auto error = JsonataItemInput(*F(frame_id), state, *raw, static_cast<int32_t>(i),
                                        json::Serialize(items[i]), &input)) {
        FailMapRun(frame_id, *error);
        return;
      }
      auto parsed = json::Parse(input);
      inputs.PushBack(parsed.ok() ? json::Copy(*parsed, a) : json::Value(), a);
    }
    json::Value batch_input;
    if (state.item_batcher && state.batch_input != nullptr) {
      if (auto error = ApplyJsonata(*F(frame_id), *state.batch_input, states, "BatchInput",
                                    &batch_input, a)) {
        FailMapRun(frame_id, *error);
        return;
      }
    }
    PlanMapRun(frame_id, state, items.Size(), std::move(inputs),
               state.batch_input != nullptr ? &batch_input : nullptr, *max_items, *max_bytes,
               *max, a);
  }

  // ToleratedFailureCount and ToleratedFailurePercentage of a JSONata Map,
  // literal or `{% %}`, into `run`.
  void JsonataTolerance(const Frame& frame, const State& state, const json::Value& states,
                        json::Allocator& a, ::stepflow::internal::v1::MapRun* run,
                        std::optional<StateError>* problem) {
    if (state.tolerated_failure_count.value || state.expressions.count("ToleratedFailureCount")) {
      auto count = JsonataInt(frame, state, "ToleratedFailureCount",
                              state.tolerated_failure_count, states, a, problem);
      if (!count) return;
      run->set_has_tolerated_count(true);
      run->set_tolerated_count(*count);
    }
    std::optional<double> percentage = state.tolerated_failure_percentage;
    if (auto it = state.expressions.find("ToleratedFailurePercentage");
        it != state.expressions.end()) {
      const jsonata::Expression& expression = *definition_.Jsonata(it->second);
      json::Value value;
      if ((*problem = EvaluateExpression(frame, expression, states, "ToleratedFailurePercentage",
                                         &value, a))) {
        return;
      }
      if (!value.IsNumber() || value.GetDouble() < 0 || value.GetDouble() > 100) {
        *problem = UnexpectedType(frame, expression, "ToleratedFailurePercentage",
                                  "number between 0 and 100", value);
        return;
      }
      percentage = value.GetDouble();
    }
    if (percentage) {
      run->set_has_tolerated_percentage(true);
      run->set_tolerated_percentage(*percentage);
    }
  }

  // ItemReader and ResultWriter need Amazon S3, which this release has
  // not: the map run fails (true) when the state has either.
  bool FailUnsupportedReaderOrWriter(int64_t frame_id, const State& state) {
    if (state.item_reader == nullptr && state.result_writer == nullptr) return false;
    const bool reader = state.item_reader != nullptr;
    FailMapRun(frame_id,
               StateError{reader ? "States.ItemReaderFailed" : "States.ResultWriterFailed",
                          absl::StrCat(reader ? "ItemReader" : "ResultWriter",
                                       " is not supported by this release: it has no Amazon "
                                       "S3 to read items from or write results to.")});
    return true;
  }

  // The children of a started map run: `inputs` (one per item), batched
  // when the state has an ItemBatcher, then started as MaxConcurrency
  // (`max`) allows.
  void PlanMapRun(int64_t frame_id, const State& state, rapidjson::SizeType total_items,
                  json::Value inputs, const json::Value* batch_input, int64_t max_items,
                  int64_t max_bytes, int64_t max, json::Allocator& a) {
    std::vector<int32_t> item_counts;
    if (state.item_batcher) {
      json::Value batches(rapidjson::kArrayType);
      if (auto error =
              MakeBatches(inputs, batch_input, max_items, max_bytes, &batches, &item_counts, a)) {
        FailMapRun(frame_id, *error);
        return;
      }
      inputs = std::move(batches);
    } else {
      item_counts.assign(inputs.Size(), 1);
    }
    Frame* frame = F(frame_id);
    ::stepflow::internal::v1::MapRun* map_run = frame->mutable_map_run();
    map_run->set_total_items(static_cast<int32_t>(total_items));
    for (int32_t count : item_counts) map_run->add_child_item_counts(count);
    for (const auto& input : inputs.GetArray()) map_run->add_child_inputs(json::Serialize(input));
    frame->set_waiting_children(true);
    frame->set_total_children(static_cast<int32_t>(inputs.Size()));
    frame->set_next_child(0);
    frame->set_running_children(0);
    frame->set_max_concurrency(static_cast<int32_t>(max));
    frame->clear_child_outputs();
    for (rapidjson::SizeType i = 0; i < inputs.Size(); ++i) frame->add_child_outputs("null");
    NoteMapRunPlanned(frame_id);
    PumpDistributed(frame_id);
  }

  // Emits MapRunStarted with the run's ARN,
  // arn:<partition>:states:<region>:<account>:mapRun:<machine>/<label or id>:<id>,
  // and makes `run` the frame's map run.
  void StartMapRun(int64_t frame_id, const State& state,
                   ::stepflow::internal::v1::MapRun* run) {
    const int64_t event_id = NextEventId();
    absl::string_view machine_arn = context_.state_machine_arn;
    const size_t cut = machine_arn.find(":stateMachine:");
    run->set_arn_prefix(std::string(cut == absl::string_view::npos ? "arn:aws:states::"
                                                                   : machine_arn.substr(0, cut)));
    run->set_run_name(absl::StrCat(context_.state_machine_name, "/",
                                   state.label.empty() ? MintId(event_id, 0) : state.label));
    run->set_map_run_arn(
        absl::StrCat(run->arn_prefix(), ":mapRun:", run->run_name(), ":", MintId(event_id, 1)));
    run->set_started_event_id(event_id);
    Emit("MapRunStarted")->mutable_map_run_started_event_details()->set_map_run_arn(
        run->map_run_arn());
    *F(frame_id)->mutable_map_run() = std::move(*run);
    NoteMapRunStarted(frame_id);
  }

  // A UUID-like id for the map run started by event `event_id`; `part`
  // tells apart the ids of one run (0 and 1 its ARN, 2 + i child i).
  std::string MintId(int64_t event_id, int64_t part) {
    if (context_.mint_id) return context_.mint_id(event_id, part);
    return DerivedUuid(context_.execution_arn, event_id, part);
  }

  // ToleratedFailureCount(Path) and ToleratedFailurePercentage(Path) into
  // `run`; false (the frame failed) when a path gives an invalid value.
  bool ResolveTolerance(int64_t frame_id, const State& state, const json::Value& input,
                        ::stepflow::internal::v1::MapRun* run) {
    const Frame& frame = *F(frame_id);
    std::optional<std::string> problem;
    if (state.tolerated_failure_count.value) {
      run->set_has_tolerated_count(true);
      run->set_tolerated_count(*state.tolerated_failure_count.value);
    } else if (state.tolerated_failure_count.path) {
      const ReferencePath& path = *state.tolerated_failure_count.path;
      const json::Value* found = Resolve(frame, path, input);
      if (found == nullptr) {
        problem = absl::StrCat("Invalid path '", path.text(), "' : ",
                               MissingMessage(frame, path, input));
      } else if (std::optional<int64_t> count = IntegerOrDigits(*found); !count.has_value()) {
        problem = absl::StrCat("The ToleratedFailureCountPath field refers to value \"",
                               found->IsString() ? found->GetString() : json::Serialize(*found),
                               "\" which is not a valid integer: ", path.text());
      } else if (*count < 0) {
        problem = "ToleratedFailureCount cannot be negative.";
      } else {
        run->set_has_tolerated_count(true);
        run->set_tolerated_count(*count);
      }
    }
    if (!problem && state.tolerated_failure_percentage) {
      run->set_has_tolerated_percentage(true);
      run->set_tolerated_percentage(*state.tolerated_failure_percentage);
    } else if (!problem && state.tolerated_failure_percentage_path) {
      const ReferencePath& path = *state.tolerated_failure_percentage_path;
      const json::Value* found = Resolve(frame, path, input);
      if (found == nullptr) {
        problem = absl::StrCat("Invalid path '", path.text(), "' : ",
                               MissingMessage(frame, path, input));
      } else {
        // A number, or a string that holds one (AWS takes "1").
        double percentage = 0;
        const bool number =
            found->IsNumber() ||
            (found->IsString() &&
             absl::SimpleAtod(absl::string_view(found->GetString(), found->GetStringLength()),
                              &percentage) &&
             std::isfinite(percentage));
        if (found->IsNumber()) percentage = found->GetDouble();
        if (!number) {
          problem = absl::StrCat("The ToleratedFailurePercentagePath field refers to value \"",
                                 found->IsString() ? found->GetString() : json::Serialize(*found),
                                 "\" which is not a valid float: ", path.text());
        } else if (percentage < 0 || percentage > 100) {
          problem = "ToleratedFailurePercentage must be between 0 and 100.";
        } else {
          run->set_has_tolerated_percentage(true);
          run->set_tolerated_percentage(percentage);
        }
      }
    }
    if (problem) {
      FrameFailed(frame_id, RuntimeError(frame, *problem));
      return false;
    }
    return true;
  }

  // MaxItemsPerBatch(Path) / MaxInputBytesPerBatch(Path): 0 when not given.
  // A path may name a number or a string holding one.
  std::optional<int64_t> ResolveBatchLimit(int64_t frame_id, const IntOrPath& field,
                                           const json::Value& input, absl::string_view name) {
    if (field.value) return *field.value;
    if (!field.path) return 0;
    const Frame& frame = *F(frame_id);
    const ReferencePath& path = *field.path;
    const json::Value* found = Resolve(frame, path, input);
    std::optional<std::string> problem;
    int64_t limit = 0;
    if (found == nullptr) {
      problem = absl::StrCat("Invalid path '", path.text(), "' : ",
                             MissingMessage(frame, path, input));
    } else if (found->IsInt64()) {
      limit = found->GetInt64();
    } else if (!found->IsString() ||
               !absl::SimpleAtoi(absl::string_view(found->GetString(),
                                                   found->GetStringLength()),
                                 &limit)) {
      problem = absl::StrCat("The ", name, "Path field refers to value \"",
                             found->IsString() ? found->GetString() : json::Serialize(*found),
                             "\" which is not a valid integer: ", path.text());
    }
    if (!problem && limit <= 0) problem = absl::StrCat(name, " must be greater than 0.");
    if (!problem && name == "MaxInputBytesPerBatch" && limit > 256 * 1024) {
      problem = absl::StrCat(name, " must be at most 262144.");
    }
    if (problem) {
      FrameFailed(frame_id, RuntimeError(frame, *problem));
      return std::nullopt;
    }
    return limit;
  }

  // Groups `inputs` into batches {"Items": [...], "BatchInput": ...}, in
  // order, each with at most `max_items` items (0: no limit) and a
  // serialized size of at most `max_bytes` (0: 256 KiB, the input limit).
  static std::optional<StateError> MakeBatches(const json::Value& inputs,
                                               const json::Value* batch_input,
                                               int64_t max_items, int64_t max_bytes,
                                               json::Value* batches,
                                               std::vector<int32_t>* item_counts,
                                               json::Allocator& a) {
    if (max_bytes == 0) max_bytes = static_cast<int64_t>(kMaxPayloadBytes);
    auto new_batch = [&]() {
      json::Value batch(rapidjson::kObjectType);
      batch.AddMember("Items", json::Value(rapidjson::kArrayType), a);
      if (batch_input != nullptr) batch.AddMember("BatchInput", json::Copy(*batch_input, a), a);
      return batch;
    };
    // {"Items":[]} plus BatchInput; each item adds its size and a comma.
    const int64_t empty_size = static_cast<int64_t>(json::Serialize(new_batch()).size());
    json::Value batch = new_batch();
    int64_t size = empty_size;
    int32_t count = 0;
    for (const auto& input : inputs.GetArray()) {
      const int64_t item_size = static_cast<int64_t>(json::Serialize(input).size());
      if (empty_size + item_size > max_bytes) {
        return StateError{kRuntime,
                          absl::StrCat("An item of the map run does not fit into a batch of "
                                       "MaxInputBytesPerBatch (",
                                       max_bytes, ") bytes.")};
      }
      const int64_t grown = size + item_size + (count > 0 ? 1 : 0);
      if (count > 0 && ((max_items > 0 && count >= max_items) || grown > max_bytes)) {
        batches->PushBack(batch, a);
        item_counts->push_back(count);
        batch = new_batch();
        size = empty_size;
        count = 0;
      }
      size += item_size + (count > 0 ? 1 : 0);
      batch["Items"].PushBack(json::Copy(input, a), a);
      ++count;
    }
    if (count > 0) {
      batches->PushBack(batch, a);
      item_counts->push_back(count);
    }
    return std::nullopt;
  }

  // Starts child executions while MaxConcurrency allows; each runs until it
  // waits or ends before the next starts.
  void PumpDistributed(int64_t frame_id) {
    EventScope scope(this, frame_id);
    if (!pumping_.insert(frame_id).second) return;
    while (true) {
      Frame* frame = F(frame_id);
      if (frame == nullptr || !frame->waiting_children() || closed()) break;
      if (frame->next_child() >= frame->total_children()) break;
      const int32_t limit = frame->max_concurrency() > 0 ? frame->max_concurrency()
                                                         : kDefaultMapRunConcurrency;
      if (frame->running_children() >= limit) break;
      const State& state = *StateOf(*frame);
      const int32_t index = frame->next_child();
      frame->set_next_child(index + 1);
      frame->set_running_children(frame->running_children() + 1);
      // Each input is read once: the child keeps it from here on.
      std::string input = std::move(*frame->mutable_map_run()->mutable_child_inputs(index));
      const ::stepflow::internal::v1::MapRun& run = frame->map_run();
      Frame* child = NewFrame(frame_id, index);
      auto* execution = child->mutable_child_execution();
      execution->set_name(MintId(run.started_event_id(), 2 + index));
      execution->set_execution_arn(absl::StrCat(run.arn_prefix(),
                                                run.express_children() ? ":express:"
                                                                       : ":execution:",
                                                run.run_name(), ":", execution->name()));
      execution->set_state_machine_arn(absl::StrCat(run.arn_prefix(), ":stateMachine:",
                                                    run.run_name()));
      execution->set_state_machine_name(run.run_name());
      execution->set_input(input);
      SetNow(execution->mutable_start_time());
      NoteChildStarted(frame_id, index);
      if (run.express_children()) execution->set_timeout_timer(ArmTimer(kExpressChildTimeout));
      EnqueueStart(child->id(), *state.processor, std::move(input));
      Drain();
    }
    pumping_.erase(frame_id);
    MaybeCompleteChildren(frame_id);
  }

  // A child execution failed (or timed out): its items count as failed, and
  // the run fails once they exceed the tolerance.
  void ChildExecutionFailed(int64_t parent_id, int64_t child_id) {
    Frame* parent = F(parent_id);
    const int32_t index = F(child_id)->index();
    ::stepflow::internal::v1::MapRun* run = parent->mutable_map_run();
    if (index < run->child_item_counts_size()) {
      run->set_failed_items(run->failed_items() + run->child_item_counts(index));
    }
    parent->set_running_children(parent->running_children() - 1);
    DropFrame(child_id);
    if (ToleranceExceeded(F(parent_id)->map_run())) {
      FailMapRun(parent_id, StateError{"States.ExceedToleratedFailureThreshold",
                                       "The specified tolerated failure threshold was exceeded"});
      return;
    }
    ChildDone(parent_id);
  }

  static bool ToleranceExceeded(const ::stepflow::internal::v1::MapRun& run) {
    if (run.failed_items() == 0) return false;
    if (!run.has_tolerated_count() && !run.has_tolerated_percentage()) return true;
    if (run.has_tolerated_count() && run.failed_items() > run.tolerated_count()) return true;
    return run.has_tolerated_percentage() && run.total_items() > 0 &&
           100.0 * run.failed_items() / run.total_items() > run.tolerated_percentage();
  }

  // Ends the map run with MapRunFailed, stopping its children, and fails
  // the Map state (Retry and Catch apply).
  void FailMapRun(int64_t frame_id, const StateError& failure) {
    EventScope scope(this, frame_id);
    DropChildren(frame_id);
    Frame* frame = F(frame_id);
    frame->set_waiting_children(false);
    NoteMapRunClosed(frame->map_run().map_run_arn(), "FAILED");
    frame->clear_map_run();
    auto* details = Emit("MapRunFailed")->mutable_map_run_failed_event_details();
    details->set_error(failure.error);
    details->set_cause(failure.cause);
    if (!WillRetry(*frame, *StateOf(*frame), failure)) Emit("MapStateFailed");
    HandleError(frame_id, failure);
  }

  // A child execution that outgrew AWS's history limit fails, as a loop
  // that never waits would otherwise never end.
  void EndRunawayChild() {
    const int64_t root = runaway_child_;
    runaway_child_ = 0;
    if (closed() || F(root) == nullptr) return;
    FrameFailed(root, StateError{kRuntime,
                                 absl::StrCat("The execution reached the maximum number of "
                                              "history events (", kMaxHistoryEvents, ").")});
  }

  // MapRunAborted for every map run still going when the execution ends.
  void EmitMapRunsAborted() {
    std::vector<int64_t> running;
    for (const auto& [id, frame] : state_->frames()) {
      // Runs inside child executions end with those, outside this history.
      if (frame.has_map_run() && EnclosingChildExecution(frame) == nullptr) {
        running.push_back(id);
      }
    }
    std::sort(running.begin(), running.end());
    for (size_t i = 0; i < running.size(); ++i) Emit("MapRunAborted");
  }

  // The top frame of the child execution of a distributed map that `frame`
  // belongs to, or 0 at the top level.
  int64_t EnclosingChildFrame(const Frame& frame) {
    for (const Frame* scope = &frame; scope != nullptr;
         scope = scope->parent_id() == 0 ? nullptr : F(scope->parent_id())) {
      if (scope->has_child_execution()) return scope->id();
    }
    return 0;
  }

  const ::stepflow::internal::v1::ChildExecution* EnclosingChildExecution(const Frame& frame) {
    const int64_t root = EnclosingChildFrame(frame);
    return root == 0 ? nullptr : &F(root)->child_execution();
  }

  // --- Map run summaries ------------------------------------------------------
  // ExecutionState.map_runs keeps what DescribeMapRun and
  // ListExecutions(map_run_arn) report, after the run's frame is gone.

  using ChildStatus = ::stepflow::internal::v1::MapRunChildStatus;
  static constexpr ChildStatus kChildPending = ::stepflow::internal::v1::CHILD_PENDING;
  static constexpr ChildStatus kChildRunning = ::stepflow::internal::v1::CHILD_RUNNING;
  static constexpr ChildStatus kChildSucceeded = ::stepflow::internal::v1::CHILD_SUCCEEDED;
  static constexpr ChildStatus kChildFailed = ::stepflow::internal::v1::CHILD_FAILED;
  static constexpr ChildStatus kChildTimedOut = ::stepflow::internal::v1::CHILD_TIMED_OUT;
  static constexpr ChildStatus kChildAborted = ::stepflow::internal::v1::CHILD_ABORTED;

  ::stepflow::internal::v1::MapRunSummary* SummaryOf(absl::string_view map_run_arn) {
    auto* runs = state_->mutable_map_runs();
    for (int i = runs->size() - 1; i >= 0; --i) {
      if (runs->Get(i).map_run_arn() == map_run_arn) return runs->Mutable(i);
    }
    return nullptr;
  }

  // The frame running the map run `map_run_arn`, or 0.
  int64_t MapRunFrame(absl::string_view map_run_arn) const {
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.has_map_run() && frame.map_run().map_run_arn() == map_run_arn) return id;
    }
    return 0;
  }

  void NoteMapRunStarted(int64_t frame_id) {
    const ::stepflow::internal::v1::MapRun& run = F(frame_id)->map_run();
    auto* summary = state_->add_map_runs();
    summary->set_map_run_arn(run.map_run_arn());
    summary->set_status("RUNNING");
    SetNow(summary->mutable_start_date());
    if (run.has_tolerated_count()) summary->set_tolerated_failure_count(run.tolerated_count());
    if (run.has_tolerated_percentage()) {
      summary->set_tolerated_failure_percentage(run.tolerated_percentage());
    }
    summary->set_arn_prefix(run.arn_prefix());
    summary->set_run_name(run.run_name());
    summary->set_express_children(run.express_children());
    summary->set_started_event_id(run.started_event_id());
  }

  // The run's children are known: all pending.
  void NoteMapRunPlanned(int64_t frame_id) {
    const Frame& frame = *F(frame_id);
    auto* summary = SummaryOf(frame.map_run().map_run_arn());
    if (summary == nullptr) return;
    summary->set_max_concurrency(frame.max_concurrency());
    summary->set_total_items(frame.map_run().total_items());
    *summary->mutable_child_item_counts() = frame.map_run().child_item_counts();
    const int32_t total = frame.total_children();
    summary->mutable_child_status()->Resize(total, kChildPending);
    summary->mutable_child_start_ms()->Resize(total, 0);
    summary->mutable_child_stop_ms()->Resize(total, 0);
  }

  // The summary of the map run `map_frame_id` runs, when it has child `index`.
  ::stepflow::internal::v1::MapRunSummary* SummaryWithChild(int64_t map_frame_id, int32_t index) {
    const Frame* frame = F(map_frame_id);
    if (frame == nullptr || !frame->has_map_run()) return nullptr;
    auto* summary = SummaryOf(frame->map_run().map_run_arn());
    if (summary == nullptr || index < 0 || index >= summary->child_status_size()) return nullptr;
    return summary;
  }

  void NoteChildStarted(int64_t map_frame_id, int32_t index) {
    auto* summary = SummaryWithChild(map_frame_id, index);
    if (summary == nullptr) return;
    summary->set_child_status(index, kChildRunning);
    summary->set_child_start_ms(index, absl::ToUnixMillis(now_));
    summary->set_child_stop_ms(index, 0);
  }

  // The first close of a running child counts (a timed-out child then
  // fails through FrameFailed).
  void NoteChildClosed(int64_t map_frame_id, int32_t index, ChildStatus status) {
    auto* summary = SummaryWithChild(map_frame_id, index);
    if (summary == nullptr || summary->child_status(index) != kChildRunning) return;
    summary->set_child_status(index, status);
    summary->set_child_stop_ms(index, absl::ToUnixMillis(now_));
  }

  // The run ended; children still running were stopped with it.
  void NoteMapRunClosed(absl::string_view map_run_arn, absl::string_view status) {
    auto* summary = SummaryOf(map_run_arn);
    if (summary == nullptr || summary->status() != "RUNNING") return;
    summary->set_status(std::string(status));
    SetNow(summary->mutable_stop_date());
    for (int i = 0; i < summary->child_status_size(); ++i) {
      if (summary->child_status(i) != kChildRunning) continue;
      summary->set_child_status(i, kChildAborted);
      summary->set_child_stop_ms(i, absl::ToUnixMillis(now_));
    }
  }

  // Map runs whose frame went away without succeeding or failing (the
  // execution or an enclosing branch stopped) were aborted.
  void ReconcileMapRuns() {
    std::vector<std::string> gone;
    for (const auto& summary : state_->map_runs()) {
      if (summary.status() == "RUNNING" && MapRunFrame(summary.map_run_arn()) == 0) {
        gone.push_back(summary.map_run_arn());
      }
    }
    for (const std::string& arn : gone) NoteMapRunClosed(arn, "ABORTED");
  }

  // A redrive reopened the frames of map runs that were cut short: they run
  // again under the same ARN, their reopened children with them.
  void RedriveMapRuns() {
    std::vector<int64_t> frames;
    for (const auto& [id, frame] : state_->frames()) {
      if (frame.has_map_run()) frames.push_back(id);
    }
    std::sort(frames.begin(), frames.end());
    for (int64_t frame_id : frames) {
      const std::string arn = F(frame_id)->map_run().map_run_arn();
      auto* summary = SummaryOf(arn);
      if (summary != nullptr) {
        summary->set_status("RUNNING");
        summary->clear_stop_date();
        summary->set_redrive_count(summary->redrive_count() + 1);
        SetNow(summary->mutable_redrive_date());
        for (int64_t child_id : ChildrenOf(frame_id)) {
          const int32_t index = F(child_id)->index();
          if (index < 0 || index >= summary->child_status_size()) continue;
          summary->set_child_status(index, kChildRunning);
          summary->set_child_stop_ms(index, 0);
        }
      }
      EventScope scope(this, frame_id);
      auto* details = Emit("MapRunRedriven")->mutable_map_run_redriven_event_details();
      details->set_map_run_arn(arn);
      details->set_redrive_count(summary != nullptr ? summary->redrive_count()
                                                    : context_.redrive_count);
    }
  }

  // UpdateMapRun: new limits for the children not started yet and the
  // failure threshold from now on.
  absl::Status UpdateMapRun(const MapRunUpdate& update) {
    const int64_t frame_id = MapRunFrame(update.map_run_arn);
    if (frame_id == 0 || closed()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the map run ", update.map_run_arn, " is not running"));
    }
    Frame* frame = F(frame_id);
    auto* run = frame->mutable_map_run();
    auto* summary = SummaryOf(update.map_run_arn);
    if (update.max_concurrency.has_value()) {
      frame->set_max_concurrency(*update.max_concurrency);
      if (summary != nullptr) summary->set_max_concurrency(*update.max_concurrency);
    }
    if (update.tolerated_failure_count.has_value()) {
      run->set_has_tolerated_count(true);
      run->set_tolerated_count(*update.tolerated_failure_count);
      if (summary != nullptr) summary->set_tolerated_failure_count(*update.tolerated_failure_count);
    }
    if (update.tolerated_failure_percentage.has_value()) {
      run->set_has_tolerated_percentage(true);
      run->set_tolerated_percentage(*update.tolerated_failure_percentage);
      if (summary != nullptr) {
        summary->set_tolerated_failure_percentage(*update.tolerated_failure_percentage);
      }
    }
    PumpDistributed(frame_id);
    Drain();
    return absl::OkStatus();
  }

  // --- Timers ---------------------------------------------------------------

  absl::Status Fire(int64_t timer_id) {
    if (timer_id != 0 && timer_id == state_->execution_timeout_timer()) {
      TimeOutExecution();
      return absl::OkStatus();
    }
    for (const auto& [id, frame] : state_->frames()) {
      if (timer_id != 0 && frame.has_child_execution() &&
          frame.child_execution().timeout_timer() == timer_id) {
        // An EXPRESS child execution ran out of its five minutes.
        NoteChildClosed(frame.parent_id(), frame.index(), kChildTimedOut);
        FrameFailed(id, StateError{kTimeout, "The execution timed out"});
        Drain();
        return absl::OkStatus();
      }
      if (frame.timer_id() == timer_id) {
        const int64_t frame_id = id;
        const int32_t kind = frame.timer_kind();
        F(frame_id)->clear_timer_id();
        EventScope scope(this, frame_id);
        if (kind == kWaitTimer) {
          FinishWait(frame_id, *StateOf(*F(frame_id)));
        } else if (kind == kFailureTimer) {
          const Frame& failed = *F(frame_id);
          FrameFailed(frame_id,
                      StateError{failed.failure_error(), failed.failure_cause(),
                                 failed.failure_heartbeat()},
                      /*handed_over=*/true);
        } else {
          Execute(frame_id);  // a retry: the state runs again
        }
        Drain();
        return absl::OkStatus();
      }
      if (frame.task_timeout_timer() == timer_id || frame.heartbeat_timer() == timer_id) {
        const int64_t frame_id = id;
        const bool heartbeat = frame.heartbeat_timer() == timer_id;
        outcome_.cancelled_tasks.push_back(frame.scheduled_event_id());
        // AWS reports a missed heartbeat as States.Timeout too.
        TaskFailed(frame_id, "ActivityTimedOut", kTimeout, "", heartbeat);
        Drain();
        return absl::OkStatus();
      }
    }
    return absl::FailedPreconditionError(absl::StrCat("timer ", timer_id, " is not armed"));
  }

  // --- TestState --------------------------------------------------------

  // Runs the root frame's current state once and describes what happened.
  v1::TestStateResponse Test(const v1::TestStateRequest& request) {
    v1::TestStateResponse response;
    const bool inspect =
        request.inspection_level() == "DEBUG" || request.inspection_level() == "TRACE";
    v1::InspectionData* data = response.mutable_inspection_data();
    const int64_t frame_id = state_->frames().begin()->first;
    const Frame& frame = *F(frame_id);
    const State& state = *StateOf(frame);
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    auto fail = [&](const StateError& error) {
      response.set_status("FAILED");
      response.set_error(error.error);
      response.set_cause(error.cause);
    };
    auto raw = json::Parse(frame.input());
    data->set_input(frame.input());
    if (state.jsonata) {
      TestJsonata(request, frame, state, *raw, &response);
      return Finish(response, inspect);
    }
    json::Value after_input;
    if (auto error = SelectPath(frame, state.input_path, *raw, &after_input, a)) {
      fail(*error);
      return Finish(response, inspect);
    }
    data->set_after_input_path(json::Serialize(after_input));
    std::map<std::string, std::string> assigned;
    auto succeed = [&](const std::string& output, const std::string& next) {
      response.set_status("SUCCEEDED");
      response.set_output(output);
      if (!next.empty()) response.set_next_state(next);
    };
    switch (state.type) {
      case StateType::kSucceed: {
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, after_input, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), "");
        }
        break;
      }
      case StateType::kFail:
        fail(StateError{state.error, state.cause});
        break;
      case StateType::kWait:
      case StateType::kChoice: {
        std::string next = state.next;
        const json::Value* assign = state.assign;
        if (state.type == StateType::kChoice) {
          ChoicePathResolver resolve =
              [&](absl::string_view text) -> absl::StatusOr<const json::Value*> {
            auto path = ReferencePath::Parse(text);
            if (!path.ok()) return path.status();
            const json::Value* found = Resolve(frame, *path, after_input);
            if (found == nullptr) return absl::NotFoundError(text);
            return found;
          };
          next.clear();
          for (size_t i = 0; i < state.choices.size(); ++i) {
            auto matched = state.choices[i]->Evaluate(resolve);
            if (!matched.ok()) {
              absl::string_view message = matched.status().message();
              absl::ConsumePrefix(&message, "States.Runtime: ");
              fail(RuntimeError(frame, message));
              return Finish(response, inspect);
            }
            if (*matched) {
              next = state.choices[i]->next();
              if (state.choice_assigns[i] != nullptr) assign = state.choice_assigns[i];
              break;
            }
          }
          if (next.empty()) next = state.default_next;
          if (next.empty()) {
            fail(StateError{"States.NoChoiceMatched", "No Matches!"});
            break;
          }
        }
        if (auto error = EvaluateAssign(frame, assign, after_input, &assigned)) {
          fail(*error);
          break;
        }
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, after_input, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), next);
        }
        break;
      }
      case StateType::kPass:
      case StateType::kTask:
      case StateType::kParallel:
      case StateType::kMap: {
        json::Value after_parameters;
        // A Map's Parameters (ItemSelector) apply per item, to iterations
        // that the mock stands for.
        if (state.parameters != nullptr && state.type != StateType::kMap) {
          task_token_ = "test-state-task-token";
          auto error = ApplyTemplate(frame, *state.parameters, after_input, &after_parameters, a);
          task_token_.clear();
          if (error) {
            fail(*error);
            break;
          }
        } else {
          after_parameters = json::Copy(after_input, a);
        }
        // What AWS reports: a Pass state with a Result shows neither its
        // InputPath nor its Parameters, which the Result stands in for; a
        // mocked Parallel shows neither, nor the raw result; a mocked Map
        // its InputPath and ItemsPath but not the raw result.
        const bool container = state.type == StateType::kParallel || state.type == StateType::kMap;
        if (!container && !(state.type == StateType::kPass && state.result != nullptr)) {
          data->set_after_parameters(json::Serialize(after_parameters));
        } else if (state.type != StateType::kMap) {
          data->clear_after_input_path();
        }
        // A Map's tolerated failures, and the error of a path to them that
        // finds no number (reported when iterations are said to have failed).
        std::optional<int64_t> tolerated_count;
        std::optional<double> tolerated_percentage;
        std::optional<StateError> tolerance_problem;
        if (state.type == StateType::kMap) {
          // A Map shows its items (unless an ItemReader reads them) and its
          // limits.
          if (state.item_reader == nullptr) {
            json::Value items;
            if (auto error = SelectItems(frame, state, after_input, &items, a)) {
              fail(*error);
              break;
            }
            data->set_after_items_path(json::Serialize(items));
          }
          tolerance_problem = TestToleranceLimits(frame, state, after_input, &tolerated_count,
                                                  &tolerated_percentage);
          InspectMapLimits(frame, state, after_input, tolerated_count, tolerated_percentage, data);
        }
        json::Value result;
        if (state.type == StateType::kPass) {
          result = state.result != nullptr ? json::Copy(*state.result, a)
                                           : json::Copy(after_parameters, a);
        } else if (!request.mock().result().empty()) {
          auto mocked = json::Parse(request.mock().result());
          result = json::Copy(*mocked, a);
          if (state.type == StateType::kMap &&
              request.state_configuration().map_iteration_failure_count() > 0) {
            if (tolerance_problem) {
              fail(*tolerance_problem);
              break;
            }
            if (ToleranceExceeded(request, tolerated_count, tolerated_percentage, result)) {
              TestError(request, state, ExceededThreshold(), &response);
              break;
            }
          }
        } else {
          StateError error{request.mock().error_output().error(),
                           request.mock().error_output().cause()};
          TestError(request, state, error, &response);
          break;
        }
        if (!container && (state.type != StateType::kPass || state.result != nullptr)) {
          data->set_result(json::Serialize(result));
        }
        json::Value selected;
        if (state.result_selector != nullptr) {
          if (auto error = ApplyTemplate(frame, *state.result_selector, result, &selected, a)) {
            fail(*error);
            break;
          }
        } else {
          selected = std::move(result);
        }
        data->set_after_result_selector(json::Serialize(selected));
        if (auto error = EvaluateAssign(frame, state.assign, selected, &assigned)) {
          fail(*error);
          break;
        }
        json::Value combined;
        if (auto error = ApplyResultPath(state, state.result_path, *raw, std::move(selected),
                                         &combined, a)) {
          fail(*error);
          break;
        }
        data->set_after_result_path(json::Serialize(combined));
        json::Value output;
        if (auto error = SelectPath(frame, state.output_path, combined, &output, a)) {
          fail(*error);
        } else {
          succeed(json::Serialize(output), state.end ? "" : state.next);
        }
        break;
      }
      default:
        break;
    }
    // The variables as they are after the state.
    json::Value variables(rapidjson::kObjectType);
    for (const auto& [name, value] : frame.variables()) {
      if (assigned.count(name)) continue;
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    for (const auto& [name, value] : assigned) {
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    // AWS leaves the field out when there are no variables.
    if (!variables.ObjectEmpty()) data->set_variables(json::Serialize(variables));
    return Finish(response, inspect);
  }

  // TestState of a JSONata state: Arguments, the (mocked) result, then
  // Assign and Output, or the mocked error through Retry and Catch.
  void TestJsonata(const v1::TestStateRequest& request, const Frame& frame, const State& state,
                   const json::Value& input, v1::TestStateResponse* response) {
    v1::InspectionData* data = response->mutable_inspection_data();
    json::Document doc(&arena_);
    auto& a = doc.GetAllocator();
    auto fail = [&](const StateError& error) {
      response->set_status("FAILED");
      response->set_error(error.error);
      response->set_cause(error.cause);
    };
    json::Value states;
    task_token_ = state.type == StateType::kTask ? "test-state-task-token" : "";
    BuildStates(frame, input, nullptr, nullptr, &states, a);
    task_token_.clear();
    std::map<std::string, std::string> assigned;
    std::string output;
    std::string next = state.end ? "" : state.next;
    std::optional<StateError> problem;
    // A Task, Parallel or Map stands for its mock: a mocked error goes
    // through Retry and Catch (false: the response is complete); a mocked
    // result goes through Output and Assign.
    auto apply_mock = [&]() {
      if (request.mock().result().empty()) {
        TestJsonataError(request, frame, state, input,
                         StateError{request.mock().error_output().error(),
                                    request.mock().error_output().cause()},
                         response);
        return false;
      }
      auto mocked = json::Parse(request.mock().result());
      json::Value result = json::Copy(*mocked, a);
      // AWS shows a Task's mocked result, not a Parallel's or a Map's.
      if (state.type == StateType::kTask) data->set_result(json::Serialize(result));
      states.AddMember("result", result, a);
      problem = JsonataOutput(frame, state.output, state.assign, states, states["result"],
                              &output, &assigned, a);
      return true;
    };
    switch (state.type) {
      case StateType::kFail: {
        auto error = JsonataString(frame, state, "Error", state.error, states, a, &problem);
        std::optional<std::string> cause;
        if (error) cause = JsonataString(frame, state, "Cause", state.cause, states, a, &problem);
        fail(problem ? *problem : StateError{*error, *cause});
        return;
      }
      case StateType::kChoice: {
        const ConditionRule* matched = nullptr;
        for (const ConditionRule& rule : state.conditions) {
          bool holds = rule.condition->IsBool() && rule.condition->GetBool();
          if (const jsonata::Expression* expression = definition_.Jsonata(rule.condition)) {
            json::Value value;
            if ((problem = EvaluateExpression(frame, *expression, states, "Condition", &value,
                                              a))) {
              break;
            }
            if (!value.IsBool()) {
              problem = UnexpectedType(frame, *expression, "Condition", "boolean", value);
              break;
            }
            holds = value.GetBool();
          }
          if (holds) {
            matched = &rule;
            break;
          }
        }
        if (problem) break;
        next = matched != nullptr ? matched->next : state.default_next;
        if (next.empty()) {
          problem = StateError{"States.NoChoiceMatched", "No Matches!"};
          break;
        }
        const json::Value* out = matched && matched->output ? matched->output : state.output;
        const json::Value* assign = matched && matched->assign ? matched->assign : state.assign;
        problem = JsonataOutput(frame, out, assign, states, input, &output, &assigned, a);
        break;
      }
      case StateType::kTask: {
        json::Value arguments;
        if (state.arguments != nullptr) {
          problem = ApplyJsonata(frame, *state.arguments, states, "Arguments", &arguments, a);
        } else {
          arguments = json::Copy(input, a);
        }
        if (problem) break;
        data->set_after_arguments(json::Serialize(arguments));
        if (!apply_mock()) return;
        break;
      }
      case StateType::kParallel:
      case StateType::kMap: {
        // The mock stands for what the branches or iterations return; the
        // state's own fields are evaluated first, their errors handled by
        // its Retry and Catch.
        if (state.type == StateType::kParallel) {
          json::Value arguments;
          if (state.arguments != nullptr) {
            problem = ApplyJsonata(frame, *state.arguments, states, "Arguments", &arguments, a);
          } else {
            arguments = json::Copy(input, a);
          }
          if (problem) break;
        } else {
          // With an ItemReader, its items are state_configuration's
          // map_item_reader_data.
          json::Value items(rapidjson::kArrayType);
          if (state.item_reader == nullptr &&
              (problem = JsonataItems(frame, state, input, states, &items, a))) {
            break;
          }
          auto max = JsonataInt(frame, state, "MaxConcurrency", state.max_concurrency, states, a,
                                &problem);
          if (problem) break;
          data->set_max_concurrency(static_cast<int32_t>(*max));
          ::stepflow::internal::v1::MapRun run;
          JsonataTolerance(frame, state, states, a, &run, &problem);
          if (problem) break;
          std::optional<int64_t> count;
          std::optional<double> percentage;
          if (run.has_tolerated_count()) {
            count = run.tolerated_count();
            data->set_tolerated_failure_count(static_cast<int32_t>(*count));
          }
          if (run.has_tolerated_percentage()) {
            percentage = run.tolerated_percentage();
            data->set_tolerated_failure_percentage(static_cast<float>(*percentage));
          }
          if (!request.mock().result().empty()) {
            auto mocked = json::Parse(request.mock().result());
            if (mocked.ok() && ToleranceExceeded(request, count, percentage, *mocked)) {
              problem = ExceededThreshold();
              break;
            }
          }
        }
        if (!apply_mock()) return;
        break;
      }
      default:
        problem = JsonataOutput(frame, state.output, state.assign, states, input, &output,
                                &assigned, a);
        if (state.type == StateType::kSucceed) next.clear();
        break;
    }
    if (problem) {
      if (state.type == StateType::kTask || state.type == StateType::kParallel ||
          state.type == StateType::kMap) {
        TestJsonataError(request, frame, state, input, *problem, response);
      } else {
        fail(*problem);
      }
      return;
    }
    response->set_status("SUCCEEDED");
    response->set_output(output);
    if (!next.empty()) response->set_next_state(next);
    json::Value variables(rapidjson::kObjectType);
    for (const auto& [name, value] : frame.variables()) {
      if (assigned.count(name)) continue;
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    for (const auto& [name, value] : assigned) {
      auto parsed = json::Parse(value);
      if (parsed.ok()) variables.AddMember(StringValue(name, a), json::Copy(*parsed, a), a);
    }
    if (!variables.ObjectEmpty()) data->set_variables(json::Serialize(variables));
  }

  // A JSONata Task's error in TestState: retriable, caught (Catch Output
  // and Assign over $states.errorOutput) or failed.
  void TestJsonataError(const v1::TestStateRequest& request, const Frame& frame,
                        const State& state, const json::Value& input, const StateError& failure,
                        v1::TestStateResponse* response) {
    for (size_t i = 0; i < state.catchers.size(); ++i) {
      const Catcher& catcher = state.catchers[i];
      if (!Matches(catcher.error_equals, failure) || WillRetryInTest(request, state, failure)) {
        continue;
      }
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      json::Value error_output(rapidjson::kObjectType);
      error_output.AddMember("Error", StringValue(failure.error, a), a);
      error_output.AddMember("Cause", StringValue(failure.cause, a), a);
      json::Value states;
      BuildStates(frame, input, "errorOutput", &error_output, &states, a);
      std::string output;
      std::map<std::string, std::string> assigned;
      if (auto problem = JsonataOutput(frame, catcher.output, catcher.assign, states,
                                       error_output, &output, &assigned, a)) {
        response->set_status("FAILED");
        response->set_error(problem->error);
        response->set_cause(problem->cause);
        return;
      }
      response->set_status("CAUGHT_ERROR");
      response->set_error(failure.error);
      response->set_cause(failure.cause);
      response->set_output(output);
      response->set_next_state(catcher.next);
      response->mutable_inspection_data()->mutable_error_details()->set_catch_index(
          static_cast<int32_t>(i));
      return;
    }
    TestError(request, state, failure, response);
  }

  // A JSONPath Map's limits as TestState reports them: MaxConcurrency
  // always (0: unlimited, or a path that finds no number), the tolerated
  // failures when given.
  void InspectMapLimits(const Frame& frame, const State& state, const json::Value& input,
                        std::optional<int64_t> tolerated_count,
                        std::optional<double> tolerated_percentage, v1::InspectionData* data) {
    int64_t max = state.max_concurrency.value.value_or(0);
    if (state.max_concurrency.path) {
      const json::Value* found = Resolve(frame, *state.max_concurrency.path, input);
      if (found != nullptr && found->IsNumber()) max = static_cast<int64_t>(found->GetDouble());
    }
    data->set_max_concurrency(static_cast<int32_t>(max));
    if (tolerated_count) data->set_tolerated_failure_count(static_cast<int32_t>(*tolerated_count));
    if (tolerated_percentage) {
      data->set_tolerated_failure_percentage(static_cast<float>(*tolerated_percentage));
    }
  }

  // TestState of a JSONPath Map: its ToleratedFailureCount and
  // ToleratedFailurePercentage, literal or through their Paths over
  // `input`; the error of a path that finds no number. As AWS's TestState
  // does, state_configuration.map_iteration_failure_count failed iterations
  // are checked against them (ToleranceExceeded); a Map with neither is not
  // checked.
  std::optional<StateError> TestToleranceLimits(const Frame& frame, const State& state,
                                                const json::Value& input,
                                                std::optional<int64_t>* count,
                                                std::optional<double>* percentage) {
    *count = state.tolerated_failure_count.value;
    *percentage = state.tolerated_failure_percentage;
    for (const auto& [path, name] :
         {std::pair{&state.tolerated_failure_count.path, "ToleratedFailureCountPath"},
          std::pair{&state.tolerated_failure_percentage_path, "ToleratedFailurePercentagePath"}}) {
      if (!path->has_value()) continue;
      const json::Value* found = Resolve(frame, **path, input);
      if (found == nullptr || !found->IsNumber()) {
        return RuntimeError(frame, absl::StrCat("The ", name, " field refers to no number: ",
                                                (*path)->text()));
      }
      if (path == &state.tolerated_failure_count.path) {
        *count = static_cast<int64_t>(found->GetDouble());
      } else {
        *percentage = found->GetDouble();
      }
    }
    return std::nullopt;
  }

  static StateError ExceededThreshold() {
    return StateError{"States.ExceedToleratedFailureThreshold",
                      "The specified tolerated failure threshold was exceeded"};
  }

  // Whether state_configuration.map_iteration_failure_count failed
  // iterations exceed a tolerated `count` or `percentage` (of the items of
  // map_item_reader_data when it holds a JSON array, else of `result`).
  static bool ToleranceExceeded(const v1::TestStateRequest& request,
                                std::optional<int64_t> count, std::optional<double> percentage,
                                const json::Value& result) {
    const int64_t failed = request.state_configuration().map_iteration_failure_count();
    if (failed <= 0) return false;
    size_t items = result.IsArray() ? result.Size() : 0;
    if (auto read = json::Parse(request.state_configuration().map_item_reader_data());
        read.ok() && read->IsArray()) {
      items = read->Size();
    }
    return (count && failed > *count) ||
           (percentage && items > 0 && 100.0 * static_cast<double>(failed) / items > *percentage);
  }

  static bool WillRetryInTest(const v1::TestStateRequest& request, const State& state,
                              const StateError& failure) {
    for (const Retrier& retrier : state.retry) {
      if (!Matches(retrier.error_equals, failure)) continue;
      return request.state_configuration().retrier_retry_count() < retrier.max_attempts;
    }
    return false;
  }

  // A mocked task error: retriable, caught or failed, as AWS reports it.
  void TestError(const v1::TestStateRequest& request, const State& state,
                 const StateError& failure, v1::TestStateResponse* response) {
    const int retried = request.state_configuration().retrier_retry_count();
    v1::InspectionData* data = response->mutable_inspection_data();
    // The retrier that matched but has no attempts left, which AWS names
    // when nothing catches the error.
    std::optional<int32_t> exhausted;
    for (size_t i = 0; i < state.retry.size(); ++i) {
      const Retrier& retrier = state.retry[i];
      if (!Matches(retrier.error_equals, failure)) continue;
      if (retried < retrier.max_attempts) {
        response->set_status("RETRIABLE");
        response->set_error(failure.error);
        response->set_cause(failure.cause);
        data->mutable_error_details()->set_retry_index(static_cast<int32_t>(i));
        double delay = retrier.interval_seconds * std::pow(retrier.backoff_rate, retried);
        if (retrier.max_delay_seconds > 0) {
          delay = std::min(delay, static_cast<double>(retrier.max_delay_seconds));
        }
        data->mutable_error_details()->set_retry_backoff_interval_seconds(
            static_cast<int32_t>(delay));
        return;
      }
      exhausted = static_cast<int32_t>(i);
      break;
    }
    for (size_t i = 0; i < state.catchers.size(); ++i) {
      const Catcher& catcher = state.catchers[i];
      if (!Matches(catcher.error_equals, failure)) continue;
      json::Document doc(&arena_);
      auto& a = doc.GetAllocator();
      json::Value error_output(rapidjson::kObjectType);
      error_output.AddMember("Error", StringValue(failure.error, a), a);
      error_output.AddMember("Cause", StringValue(failure.cause, a), a);
      auto raw = json::Parse(F(state_->frames().begin()->first)->input());
      json::Value combined;
      if (auto problem = ApplyResultPath(state, catcher.result_path, *raw,
                                         std::move(error_output), &combined, a)) {
        response->set_status("FAILED");
        response->set_error(problem->error);
        response->set_cause(problem->cause);
        return;
      }
      response->set_status("CAUGHT_ERROR");
      response->set_error(failure.error);
      response->set_cause(failure.cause);
      response->set_output(json::Serialize(combined));
      response->set_next_state(catcher.next);
      data->mutable_error_details()->set_catch_index(static_cast<int32_t>(i));
      return;
    }
    response->set_status("FAILED");
    response->set_error(failure.error);
    response->set_cause(failure.cause);
    if (exhausted) data->mutable_error_details()->set_retry_index(*exhausted);
  }

  static v1::TestStateResponse Finish(v1::TestStateResponse& response, bool inspect) {
    if (!inspect) response.clear_inspection_data();
    return response;
  }

  absl::Status Heartbeat(int64_t frame_id) {
    Frame* frame = F(frame_id);
    if (frame->heartbeat_seconds() > 0) {
      frame->set_heartbeat_timer(ArmTimer(absl::Seconds(frame->heartbeat_seconds())));
    }
    return absl::OkStatus();
  }

 private:
  struct Step {
    int64_t frame;
    std::string name;     // of the state to enter, when `state` is not given
    const State* state;   // the state to enter, when known
    std::string input;
    ParsedInputPtr parsed;
    bool canonical;
  };

  // The FIFO of steps: a vector read from `head_` on, emptied whenever it
  // has been read to its end (a std::deque allocates even when empty). A
  // chain of states has one step queued at a time, Parallel branches one
  // each: the first few live in the run itself.
  class StepQueue {
   public:
    bool empty() const { return head_ == steps_.size(); }
    Step& front() { return steps_[head_]; }
    void push_back(Step step) { steps_.push_back(std::move(step)); }
    void pop_front() {
      if (++head_ == steps_.size()) clear();
    }
    void clear() {
      steps_.clear();
      head_ = 0;
    }

   private:
    absl::InlinedVector<Step, 4> steps_;
    size_t head_ = 0;
  };

  // What EnterState received with the input of the frame it runs now.
  struct Carried {
    int64_t frame = 0;
    ParsedInputPtr parsed;
    bool canonical = false;
  };

  const Definition& definition_;
  const ExecutionContext& context_;
  ExecutionState* state_;
  absl::Time now_;
  // now_ as a protobuf Timestamp's fields, for the events' timestamps.
  int64_t now_seconds_ = 0;
  int32_t now_nanos_ = 0;
  std::optional<Outcome> owned_outcome_;  // unless the caller gave one
  Outcome& outcome_;
  StepQueue queue_;
  Carried carried_;
  int drain_depth_ = 0;
  // Backs the short-lived JSON documents of one step; see Drain. Clear()
  // frees every chunk but the one given to the allocator, which therefore
  // serves the steps of a run without an allocation each; it lives in the
  // run (on the caller's stack), so a run that needs no document allocates
  // nothing for it.
  static constexpr size_t kArenaFirstChunkBytes = 8 * 1024;
  rapidjson::CrtAllocator arena_base_;
  alignas(16) char arena_first_chunk_[kArenaFirstChunkBytes];
  rapidjson::MemoryPoolAllocator<> arena_{arena_first_chunk_, kArenaFirstChunkBytes, 64 * 1024,
                                          &arena_base_};
  std::set<int64_t> pumping_;
  std::string task_token_;
  // The last token TokenFor minted, and its event.
  std::string minted_token_;
  int64_t minted_token_event_ = 0;
  std::optional<std::pair<int64_t, std::string>> map_item_;
  // The top frame of the distributed map's child execution whose events
  // Emit records (see EventScope; 0: this execution's), and those events.
  int64_t child_root_ = 0;
  // What F found last (see there).
  int64_t last_frame_id_ = 0;
  Frame* last_frame_ = nullptr;
  // A frame whose state (a JSONPath Pass or Choice) set nothing on it but
  // what EnterState sets, which its next EnterState therefore need not
  // clear; 0: none. Set as such a state exits, consumed by the next
  // EnterState whichever frame it is for.
  int64_t pristine_frame_ = 0;
  // A child execution past the history limit, for Drain to end.
  int64_t runaway_child_ = 0;
  // Lists rather than deques: a deque allocates when constructed, and most
  // runs use neither.
  std::list<v1::HistoryEvent> child_events_;
  std::list<json::Document> context_docs_;
  std::map<std::pair<int64_t, std::string>, std::unique_ptr<json::Document>> variable_cache_;
  // The frames as they were when a branch or iteration failed, kept until
  // the failure is retried or caught; see CloseExecution.
  std::optional<google::protobuf::Map<int64_t, Frame>> redrive_snapshot_;

  friend class Interpreter;
};

Outcome Interpreter::Start(ExecutionState* state, absl::string_view input, absl::Time now) {
  Outcome outcome;
  Run run(*this, state, now, &outcome);
  run.Start(input);
  run.FinishInPlace();
  return outcome;
}

bool Interpreter::AwaitsTask(const ExecutionState& state, int64_t scheduled_event_id) {
  if (scheduled_event_id == 0) return false;
  for (const auto& [id, frame] : state.frames()) {
    if (frame.scheduled_event_id() == scheduled_event_id) return true;
  }
  return false;
}

namespace {

absl::Status NotAwaited(int64_t scheduled_event_id) {
  return absl::FailedPreconditionError(
      absl::StrCat("no activity with scheduled event id ", scheduled_event_id, " is awaited"));
}

}  // namespace

absl::StatusOr<Outcome> Interpreter::ActivityStarted(ExecutionState* state,
                                                     int64_t scheduled_event_id,
                                                     absl::string_view worker_name,
                                                     absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  if (run.F(frame)->task_started()) {
    return absl::FailedPreconditionError("the activity has already started");
  }
  run.TaskStarted(frame, worker_name);
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivitySucceeded(ExecutionState* state,
                                                       int64_t scheduled_event_id,
                                                       absl::string_view output, absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.TaskStarted(frame, "");
  run.TaskSucceeded(frame, output);
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityFailed(ExecutionState* state,
                                                    int64_t scheduled_event_id,
                                                    absl::string_view error,
                                                    absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.TaskStarted(frame, "");
  run.TaskFailed(frame, "ActivityFailed", error, cause);
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ServiceTaskSubmitted(ExecutionState* state,
                                                          int64_t scheduled_event_id,
                                                          absl::string_view output,
                                                          absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  if (absl::Status status = run.TaskSubmitted(frame, output); !status.ok()) return status;
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityHeartbeat(ExecutionState* state,
                                                       int64_t scheduled_event_id,
                                                       absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  if (absl::Status status = run.Heartbeat(frame); !status.ok()) return status;
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::ActivityDoesNotExist(ExecutionState* state,
                                                          int64_t scheduled_event_id,
                                                          absl::string_view activity_arn,
                                                          absl::Time now) {
  Run run(*this, state, now);
  const int64_t frame = run.FindTaskFrame(scheduled_event_id);
  if (frame == 0) return NotAwaited(scheduled_event_id);
  run.ClearTask(run.F(frame));
  run.FrameFailed(frame, run.RuntimeError(*run.F(frame),
                                          absl::StrCat("The activity ", activity_arn,
                                                       " does not exist.")));
  run.Drain();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::TimerFired(ExecutionState* state, int64_t timer_id,
                                                absl::Time now) {
  Run run(*this, state, now);
  if (absl::Status status = run.Fire(timer_id); !status.ok()) return status;
  return run.Finish();
}

namespace {

// The names a state transitions to.
std::vector<std::string> Targets(const json::Value& state) {
  std::vector<std::string> targets;
  auto add = [&](const json::Value& obj, const char* field) {
    if (obj.IsObject() && obj.HasMember(field) && obj[field].IsString()) {
      targets.emplace_back(obj[field].GetString());
    }
  };
  add(state, "Next");
  add(state, "Default");
  for (const char* list : {"Choices", "Catch"}) {
    if (state.HasMember(list) && state[list].IsArray()) {
      for (const auto& item : state[list].GetArray()) add(item, "Next");
    }
  }
  return targets;
}

// The state named `name` in `states` or in the branches and item
// processors of its states, at any depth; nullptr when there is none.
const json::Value* FindNestedState(const json::Value& states, absl::string_view name) {
  if (!states.IsObject()) return nullptr;
  const std::string key(name);
  if (states.HasMember(key.c_str())) return &states[key.c_str()];
  auto in_machine = [&](const json::Value& machine) -> const json::Value* {
    if (!machine.IsObject() || !machine.HasMember("States")) return nullptr;
    return FindNestedState(machine["States"], name);
  };
  for (const auto& member : states.GetObject()) {
    const json::Value& state = member.value;
    if (!state.IsObject()) continue;
    if (state.HasMember("Branches") && state["Branches"].IsArray()) {
      for (const auto& branch : state["Branches"].GetArray()) {
        if (const json::Value* found = in_machine(branch)) return found;
      }
    }
    for (const char* processor : {"ItemProcessor", "Iterator"}) {
      if (!state.HasMember(processor)) continue;
      if (const json::Value* found = in_machine(state[processor])) return found;
    }
  }
  return nullptr;
}

absl::Status TestStateInvalid(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("ValidationException: ", message));
}

// TestState's `context`, checked as AWS checks it: the Context object's
// own fields only, each of its type; no Map (a Map's item is not mocked);
// a Task only for a state that has a task token.
absl::Status CheckGivenContextObject(const json::Value& context, const State& tested) {
  auto invalid = [](absl::string_view message) {
    return TestStateInvalid(absl::StrCat("Invalid Context object provided: ", message));
  };
  if (!context.IsObject()) return invalid("the Context object must be a JSON object");
  enum Kind { kString, kInteger, kAny };
  using Fields = std::vector<std::pair<const char*, Kind>>;
  static const auto* const kSections = new std::map<std::string, Fields, std::less<>>{
      {"Execution",
       {{"Id", kString}, {"Input", kAny}, {"Name", kString}, {"RoleArn", kString},
        {"StartTime", kString}, {"RedriveCount", kInteger}, {"RedriveTime", kString}}},
      {"State", {{"EnteredTime", kString}, {"Name", kString}, {"RetryCount", kInteger}}},
      {"StateMachine", {{"Id", kString}, {"Name", kString}}},
      {"Task", {{"Token", kString}}}};
  for (const auto& member : context.GetObject()) {
    const absl::string_view section(member.name.GetString(), member.name.GetStringLength());
    if (section == "Map") {
      return invalid("'Map' field is not supported when mocking a Context object");
    }
    auto found = kSections->find(section);
    if (found == kSections->end()) {
      return invalid(absl::StrCat("Field '", section, "' is not allowed"));
    }
    if (!member.value.IsObject()) return invalid(absl::StrCat(section, " must be an object"));
    for (const auto& field : member.value.GetObject()) {
      const absl::string_view name(field.name.GetString(), field.name.GetStringLength());
      auto spec = std::find_if(found->second.begin(), found->second.end(),
                               [&](const auto& entry) { return name == entry.first; });
      if (spec == found->second.end()) {
        return invalid(absl::StrCat("Field '", name, "' is not allowed"));
      }
      if (spec->second == kString && !field.value.IsString()) {
        return invalid(absl::StrCat(section, ".", name, " must be a string"));
      }
      if (spec->second == kInteger && !field.value.IsInt64()) {
        return invalid(absl::StrCat(section, ".", name, " must be an integer"));
      }
    }
    if (section == "Task" &&
        !(tested.type == StateType::kTask &&
          (tested.integration.pattern == IntegrationPattern::kSync ||
           tested.integration.pattern == IntegrationPattern::kSync2 ||
           tested.integration.pattern == IntegrationPattern::kWaitForTaskToken))) {
      return invalid(
          "Context object contains 'Task' when state is not a Task state with a '.sync' or "
          "'.waitForTaskToken' service integration pattern");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::TestStateResponse> TestState(const v1::TestStateRequest& request,
                                                const ExecutionContext& context) {
  auto parsed = json::Parse(request.definition());
  if (!parsed.ok() || !parsed->IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "InvalidDefinition: Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: ",
        parsed.ok() ? "the definition must be a JSON object" : parsed.status().message(), "'"));
  }
  json::Document& given = *parsed;
  // AWS runs the tested state under the name "StateName", whether it was
  // given alone or picked out of a machine by state_name: $$.State.Name
  // and the definition's error locations say so.
  const std::string name = "StateName";
  json::Document machine;
  auto& a = machine.GetAllocator();
  machine.SetObject();
  // A state of a machine keeps the machine's query language.
  if (given.HasMember("States") && given.HasMember("QueryLanguage")) {
    machine.AddMember("QueryLanguage", json::Copy(given["QueryLanguage"], a), a);
  }
  json::Value states(rapidjson::kObjectType);
  const json::Value* state = nullptr;
  if (given.HasMember("States")) {
    // The state may be nested in a Parallel's branch or a Map's processor.
    if (!request.state_name().empty()) {
      state = FindNestedState(given["States"], request.state_name());
    }
    if (state == nullptr) {
      return TestStateInvalid("state_name must name a state of the given state machine");
    }
  } else {
    state = &given;
  }
  if (!state->IsObject()) return TestStateInvalid("the state must be a JSON object");
  // The state alone, its transition targets stubbed, so it validates.
  states.AddMember(StringValue(name, a), json::Copy(*state, a), a);
  for (const std::string& target : Targets(*state)) {
    if (target == name || states.HasMember(target.c_str())) continue;
    json::Value stub(rapidjson::kObjectType);
    stub.AddMember("Type", "Succeed", a);
    states.AddMember(StringValue(target, a), stub, a);
  }
  machine.AddMember("StartAt", StringValue(name, a), a);
  machine.AddMember("States", states, a);
  const bool mocked =
      !request.mock().result().empty() || !request.mock().error_output().error().empty();
  // With a mock nothing is called: a Task may name any service.
  auto parsed_definition = Definition::Parse(json::Serialize(machine), /*any_resource=*/mocked);
  if (!parsed_definition.ok()) return parsed_definition.status();
  std::shared_ptr<const Definition> definition = *parsed_definition;
  const State* tested = definition->FindState(name);
  if (!request.mock().result().empty() && !request.mock().error_output().error().empty()) {
    return TestStateInvalid(
        "A test mock should have only one of the following fields: [result, errorOutput].");
  }
  if (mocked && request.reveal_secrets()) {
    return TestStateInvalid("TestState does not support RevealSecrets when a mock is specified.");
  }
  if (mocked && tested->type != StateType::kTask && tested->type != StateType::kParallel &&
      tested->type != StateType::kMap) {
    return TestStateInvalid(absl::StrCat("State type '", StateTypeName(tested->type),
                                         "' is not supported when a mock is specified"));
  }
  if (tested->type == StateType::kParallel || tested->type == StateType::kMap) {
    // As on AWS, a Parallel or Map state is tested with a mock standing for
    // what its branches or iterations return: its branches do not run.
    if (request.mock().result().empty() && request.mock().error_output().error().empty()) {
      return TestStateInvalid(
          "a Parallel or Map state is tested with a mock: give mock.result (the array its "
          "branches or iterations return) or mock.error_output");
    }
    if (!request.mock().result().empty() && request.mock().field_validation_mode() != "NONE") {
      auto mocked = json::Parse(request.mock().result());
      if (!mocked.ok()) {
        // Reported below.
      } else if (tested->type == StateType::kParallel) {
        if (!mocked->IsArray() || mocked->Size() != tested->branches.size()) {
          return TestStateInvalid(
              "Mocked result must contain the same number of items as number of Parallel "
              "branches.");
        }
      } else if (tested->result_writer != nullptr) {
        // What a Map with a ResultWriter returns is the writer's summary.
        if (!mocked->IsObject()) return TestStateInvalid("Mocked result must be a JSON object.");
      } else if (!mocked->IsArray()) {
        return TestStateInvalid(
            "mock.result of a Map state must be a JSON array (one result per iteration)");
      }
    }
    if (tested->type == StateType::kMap) {
      // As many iterations as the reader's items, else as the mock's results.
      std::optional<size_t> iterations;
      if (auto read = json::Parse(request.state_configuration().map_item_reader_data());
          read.ok() && read->IsArray()) {
        iterations = read->Size();
      } else if (auto mocked = json::Parse(request.mock().result());
                 mocked.ok() && mocked->IsArray()) {
        iterations = mocked->Size();
      }
      const int64_t failed = request.state_configuration().map_iteration_failure_count();
      if (iterations && failed > static_cast<int64_t>(*iterations)) {
        return TestStateInvalid(
            "Map iteration failure count must be less than or equal to the number of Map "
            "iterations");
      }
    }
  }
  if (tested->type == StateType::kTask && request.mock().result().empty() &&
      request.mock().error_output().error().empty()) {
    return TestStateInvalid(
        "a Task state that runs an activity needs a mock: give mock.result or "
        "mock.error_output");
  }
  if (!request.mock().result().empty() && !json::Parse(request.mock().result()).ok()) {
    return TestStateInvalid("mock.result must be valid JSON");
  }
  const std::string input = request.input().empty() ? "{}" : request.input();
  if (!json::Parse(input).ok()) {
    return absl::InvalidArgumentError("InvalidExecutionInput: the input must be valid JSON");
  }
  ExecutionContext run_context = context;
  if (!request.context().empty()) {
    auto given = json::Parse(request.context());
    if (!given.ok()) {
      return TestStateInvalid(
          absl::StrCat("Invalid Context object provided: ", given.status().message()));
    }
    if (absl::Status checked = CheckGivenContextObject(*given, *tested); !checked.ok()) {
      return checked;
    }
    run_context.given_context_object = request.context();
  }
  Interpreter interpreter(*definition, run_context);
  ::stepflow::internal::v1::ExecutionState state_proto;
  Interpreter::Run run(interpreter, &state_proto, context.start_time);
  Frame* frame = run.NewFrame(0, 0);
  frame->set_state(name);
  frame->set_input(input);
  frame->set_entered_event_id(1);
  run.SetNow(frame->mutable_entered_time());  // $$.State.EnteredTime
  if (!request.variables().empty()) {
    auto variables = json::Parse(request.variables());
    if (!variables.ok() || !variables->IsObject()) {
      return TestStateInvalid("variables must be a JSON object");
    }
    for (const auto& member : variables->GetObject()) {
      (*frame->mutable_variables())[member.name.GetString()] = json::Serialize(member.value);
    }
  }
  return run.Test(request);
}

absl::StatusOr<Outcome> Interpreter::Redrive(ExecutionState* state, absl::Time now) {
  if (state->redrive_frames().empty()) {
    return absl::FailedPreconditionError("the execution has no failed states to run again");
  }
  Run run(*this, state, now);
  run.Redrive();
  return run.Finish();
}

absl::StatusOr<Outcome> Interpreter::UpdateMapRun(ExecutionState* state,
                                                  const MapRunUpdate& update, absl::Time now) {
  Run run(*this, state, now);
  if (absl::Status status = run.UpdateMapRun(update); !status.ok()) return status;
  return run.Finish();
}

std::string DefaultMapRunId(absl::string_view seed, int64_t event_id, int64_t part) {
  return DerivedUuid(seed, event_id, part);
}

Outcome Interpreter::Abort(ExecutionState* state, absl::string_view error,
                           absl::string_view cause, absl::Time now) {
  Run run(*this, state, now);
  run.AbortExecution(error, cause);
  return run.Finish();
}

}  // namespace stepflow::asl
