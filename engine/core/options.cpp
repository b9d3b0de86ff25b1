#include "fkv/options.h"

#include "core/option_ranges.h"

#include <array>
#include <string>
#include <utility>

namespace fkv {

namespace {

template <class E, size_t N>
using Names = std::array<std::pair<E, const char*>, N>;

constexpr Names<Policy, 5> kPolicies{{{Policy::full, "full"},
                                      {Policy::streaming, "streaming"},
                                      {Policy::quest, "quest"},
                                      {Policy::arkvale, "arkvale"},
                                      {Policy::freekv, "freekv"}}};
constexpr Names<Backend, 3> kBackends{{{Backend::automatic, "auto"}, {Backend::cpu, "cpu"}, {Backend::cuda, "cuda"}}};
constexpr Names<Speculation, 3> kSpeculations{
    {{Speculation::background, "background"}, {Speculation::inline_, "inline"}, {Speculation::automatic, "auto"}}};
constexpr Names<Prefill, 3> kPrefills{
    {{Prefill::dense, "dense"}, {Prefill::retrieval, "retrieval"}, {Prefill::automatic, "auto"}}};
constexpr Names<RopeScalingMode, 4> kRopeScalings{{{RopeScalingMode::file, "file"},
                                                   {RopeScalingMode::none, "none"},
                                                   {RopeScalingMode::linear, "linear"},
                                                   {RopeScalingMode::yarn, "yarn"}}};
constexpr Names<KvType, 3> kKvTypes{{{KvType::f16, "f16"}, {KvType::bf16, "bf16"}, {KvType::f32, "f32"}}};
constexpr Names<StopReason, 5> kStopReasons{{{StopReason::eos, "eos"},
                                             {StopReason::max_tokens, "max_tokens"},
                                             {StopReason::cancelled, "cancelled"},
                                             {StopReason::stop_string, "stop_string"},
                                             {StopReason::context_full, "context_full"}}};
constexpr Names<KvSource, 2> kKvSources{{{KvSource::prefill, "prefill"}, {KvSource::snapshot, "snapshot"}}};
constexpr Names<Stage, 6> kStages{{{Stage::ingest, "ingest"},
                                   {Stage::tokenize, "tokenize"},
                                   {Stage::load, "load"},
                                   {Stage::prefill, "prefill"},
                                   {Stage::save, "save"},
                                   {Stage::prompt, "prompt"}}};

template <class E, size_t N>
const char* name_of(const Names<E, N>& names, E value) {
  for (const auto& [v, name] : names)
    if (v == value) return name;
  return "?";
}

template <class E, size_t N>
Result<E> parse(const Names<E, N>& names, std::string_view what, std::string_view given) {
  std::string list;
  for (size_t i = 0; i < N; ++i) {
    if (given == names[i].second) return names[i].first;
    list += i == 0 ? "" : i + 1 == N ? " or " : ", ";
    list += names[i].second;
  }
  return err("unknown ", what, " '", given, "' (expected ", list, ")");
}

}  // namespace

const char* policy_name(Policy p) { return name_of(kPolicies, p); }
const char* backend_name(Backend b) { return name_of(kBackends, b); }
const char* speculation_name(Speculation s) { return name_of(kSpeculations, s); }
const char* prefill_name(Prefill p) { return name_of(kPrefills, p); }
const char* rope_scaling_name(RopeScalingMode m) { return name_of(kRopeScalings, m); }
const char* kv_type_name(KvType t) { return name_of(kKvTypes, t); }
const char* stop_reason_name(StopReason r) { return name_of(kStopReasons, r); }
const char* kv_source_name(KvSource s) { return name_of(kKvSources, s); }
const char* stage_name(Stage s) { return name_of(kStages, s); }

Result<Policy> parse_policy(std::string_view name) { return parse(kPolicies, "attention policy", name); }
Result<Backend> parse_backend(std::string_view name) { return parse(kBackends, "backend", name); }
Result<Speculation> parse_speculation(std::string_view name) { return parse(kSpeculations, "speculation", name); }
Result<Prefill> parse_prefill(std::string_view name) { return parse(kPrefills, "prefill", name); }
Result<RopeScalingMode> parse_rope_scaling(std::string_view name) {
  return parse(kRopeScalings, "rope scaling", name);
}
Result<KvType> parse_kv_type(std::string_view name) { return parse(kKvTypes, "KV type", name); }
Result<StopReason> parse_stop_reason(std::string_view name) { return parse(kStopReasons, "stop reason", name); }
Result<KvSource> parse_kv_source(std::string_view name) { return parse(kKvSources, "KV source", name); }
Result<Stage> parse_stage(std::string_view name) { return parse(kStages, "stage", name); }

Status check_page_size(int page_size) {
  if (page_size < 1 || page_size > 4096) return err("page size must be 1..4096 tokens, found ", page_size);
  return {};
}

Status check_threads(int n_threads) {
  if (n_threads < 0 || n_threads > 1024) return err("thread count must be 0 (automatic) or 1..1024, found ", n_threads);
  return {};
}

Status check_device(int device) {
  if (device < 0) return err("CUDA device index must be >= 0, found ", device);
  return {};
}

}  // namespace fkv
