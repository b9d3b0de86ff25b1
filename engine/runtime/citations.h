// Citations under an answer about a document: while Engine::ask decodes, a CitationTally counts how often the
// retrieval of each layer and KV head chose each KV page, then maps the most chosen pages to passages of the text.
#pragma once

#include <cstdint>
#include <vector>

#include "fkv/events.h"
#include "fkv/types.h"
#include "kv/budget.h"

namespace fkv {

class CitationTally : public TelemetryObserver {
 public:
  // forward: the engine's own observer (may be null); it receives every event, as it would without the tally.
  CitationTally(TelemetryObserver* forward, Policy policy, const Budget& budget);

  void on_layer_step(const LayerStepEvent& e) override;

  // At most max_citations passages (adjacent chosen pages join, up to kMaxPassagePages), most chosen first. None when
  // retrieval chose nothing: a policy without retrieval, or every page between the sink and the recent window
  // chosen every time (they all fit the budget).
  std::vector<Citation> citations(const DocumentContent& doc, int max_citations) const;

  static constexpr int kMaxPassagePages = 3;
  static constexpr size_t kSnippetBytes = 240;

 private:
  TelemetryObserver* forward_;
  bool retrieves_;
  int sink_pages_;
  int recent_pages_;
  std::vector<int64_t> counts_;  // (pages seen) selections of each page between the sink and the recent window
  int64_t choices_ = 0;          // (layer, KV head) selections seen: each page can be chosen once in each
};

}  // namespace fkv
