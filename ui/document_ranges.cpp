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
  for (qsizetype i = 0; i < pages.size(); ++i) {
    const float weight = i < weights.size() ? weights[i] : 1.0f;
    for (const fkv::TextRange& r : fkv::page_text_ranges(content, pages[i])) out.append({r.begin, r.end, weight});
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
