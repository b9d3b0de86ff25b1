// What the first run tells a person who has no model yet: where to put a GGUF file, and which models fit which
// memory. The figures are arithmetic, stated in the banner, not measurements:
//   weights  = the GGUF file, about parameters x bits per weight / 8 (the file is memory-mapped and read whole);
//   KV cache = layers x KV heads x head dim x 4.125 bytes per token: F16 keys and values (2 x 2 bytes) plus the
//              page summaries (F16 minimum and maximum of each key channel per 32-token page: 4 / 32 bytes);
//   working buffers about 0.1 GB.
// One model's row checks against a measurement: Gemma 3 270M at 8,192 tokens computes to 0.51 GB; the benchmark
// (docs/benchmarks.md) measured a peak of 485 MiB (0.51 GB).
#pragma once

#include <QList>
#include <QString>

struct ModelFit {
  QString name;       // "Gemma 3 270M"
  QString quant;      // "Q4_K_M"
  double fileGB = 0;  // GGUF file size, 10^9 bytes
  int nLayers = 0;
  int nKvHeads = 0;
  int headDim = 0;

  double kvBytesPerToken() const;
  // Weights + KV cache for nTokens + working buffers, in 10^9 bytes.
  double memoryGB(int nTokens) const;
};

namespace ModelGuide {

inline constexpr double kKvBytesPerElement = 2 * 2 + 4.0 / 32;  // F16 K and V, the key summaries of 32-token pages
inline constexpr double kBuffersGB = 0.1;
inline constexpr int kDocumentTokens = 8192;  // the "document" column: an 8k-token document and its chat

// Models that fit from 0.5 GB to 17 GB of memory, smallest first: every architecture here loads in FreeKV Desk.
const QList<ModelFit>& models();
// Where the banner suggests keeping model files: <data home>/freekv-desk/models (created by freekv-desk).
QString modelsFolder();
// The largest model in modelsFolder() that fits the free memory (fkv::choose_model), for a start with no model
// set; empty when none is installed or none fits.
QString installedDefault();
// The first-run banner (rich text): the folder (a link that opens it), how to choose the file, and the table.
QString noModelHtml();

}  // namespace ModelGuide
