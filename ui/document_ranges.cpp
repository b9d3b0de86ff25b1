#include "document_ranges.h"

#include <algorithm>

namespace {

constexpr int kCheckpointBytes = 64;

bool isLeadByte(unsigned char c) { return (c & 0xC0) != 0x80; }
int utf16Units(unsigned char lead) { return lead >= 0xF0 ? 2 : 1; }  // 4-byte sequences become surrogate pairs

}  // namespace

QVector<DocumentRange> pageByteRanges(const fkv::DocumentContent& content, const QVector<int>& pages,
                                      const QVector<float>& weights) {
  QVector<DocumentRange> out;
  const auto& spans = content.spans;
  const qint64 pageSize = std::max(1, content.page_size);
  for (qsizetype i = 0; i < pages.size(); ++i) {
    const qint64 a = pages[i] * pageSize, b = a + pageSize;  // context positions [a, b)
    const float weight = i < weights.size() ? weights[i] : 1.0f;
    auto it = std::upper_bound(spans.begin(), spans.end(), a,
                               [](qint64 pos, const fkv::DocumentSpan& s) { return pos < s.token_end; });
    for (; it != spans.end() && it->token_begin < b; ++it) {
      const qint64 n = it->token_end - it->token_begin;
      if (n <= 0) continue;
      const qint64 t0 = std::max<qint64>(a, it->token_begin) - it->token_begin;
      const qint64 t1 = std::min<qint64>(b, it->token_end) - it->token_begin;
      const qint64 bytes = it->char_end - it->char_begin;
      out.append({it->char_begin + bytes * t0 / n, it->char_begin + bytes * t1 / n, weight});
    }
  }
  std::sort(out.begin(), out.end(), [](const DocumentRange& x, const DocumentRange& y) { return x.begin < y.begin; });
  QVector<DocumentRange> merged;
  for (const DocumentRange& r : out) {
    if (r.end <= r.begin) continue;
    if (!merged.isEmpty() && r.begin <= merged.last().end) {
      merged.last().end = std::max(merged.last().end, r.end);
      merged.last().weight = std::max(merged.last().weight, r.weight);
    } else {
      merged.append(r);
    }
  }
  return merged;
}

Utf8PositionMap::Utf8PositionMap(const std::string& text) : m_text(&text) {
  m_checkpoints.reserve(text.size() / kCheckpointBytes + 1);
  int units = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i % kCheckpointBytes == 0) m_checkpoints.push_back(units);
    const auto c = static_cast<unsigned char>(text[i]);
    if (isLeadByte(c)) units += utf16Units(c);
  }
  if (text.size() % kCheckpointBytes == 0) m_checkpoints.push_back(units);
}

int Utf8PositionMap::toUtf16(qint64 byteOffset) const {
  if (m_text == nullptr || m_checkpoints.empty()) return 0;
  const qint64 end = std::clamp<qint64>(byteOffset, 0, qint64(m_text->size()));
  const qint64 base = (end / kCheckpointBytes) * kCheckpointBytes;
  int units = m_checkpoints[size_t(base / kCheckpointBytes)];
  for (qint64 i = base; i < end; ++i) {
    const auto c = static_cast<unsigned char>((*m_text)[size_t(i)]);
    if (isLeadByte(c)) units += utf16Units(c);
  }
  return units;
}
