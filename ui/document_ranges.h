// Where a retrieved KV page lies in a document's text: context positions -> span map -> bytes of the UTF-8 text ->
// QString positions. Plain functions, so the document view's highlights can be tested without a view.
#pragma once

#include <QVector>
#include <QtGlobal>
#include <string>
#include <vector>

#include "fkv/types.h"

// A range of the document, [begin, end): bytes of the UTF-8 text from pageByteRanges, QString positions in the view.
// weight: the share of (layer, head) pairs that retrieved it, in [0, 1].
struct DocumentRange {
  qint64 begin = 0;
  qint64 end = 0;
  float weight = 0;
};

// The byte ranges of `content.text` held by the KV pages `pages` (weights parallel; missing weights count 1), sorted
// and merged where they touch (the larger weight wins). Positions outside the document (the prompt's template and
// the question) map to nothing. A span holds many tokens, so a page's bytes are interpolated within its spans.
QVector<DocumentRange> pageByteRanges(const fkv::DocumentContent& content, const QVector<int>& pages,
                                      const QVector<float>& weights);

// Byte offsets of UTF-8 text to QString (UTF-16) positions, with a checkpoint every 64 bytes (a 1 MB document costs
// 64 KB). An offset inside a character maps past that character.
class Utf8PositionMap {
 public:
  Utf8PositionMap() = default;
  explicit Utf8PositionMap(const std::string& text);
  int toUtf16(qint64 byteOffset) const;

 private:
  const std::string* m_text = nullptr;  // not owned: the document content outlives the map
  std::vector<int> m_checkpoints;       // (text.size() / 64 + 1) UTF-16 position at byte 64 * i
};
