#include "model_guide.h"

#include <QCoreApplication>
#include <QDir>
#include <QStandardPaths>
#include <QUrl>

#include "fkv/models.h"

double ModelFit::kvBytesPerToken() const {
  return double(nLayers) * nKvHeads * headDim * ModelGuide::kKvBytesPerElement;
}

double ModelFit::memoryGB(int nTokens) const {
  return fileGB + kvBytesPerToken() * nTokens / 1e9 + ModelGuide::kBuffersGB;
}

namespace ModelGuide {

namespace {

QString tr(const char* text) { return QCoreApplication::translate("ModelGuide", text); }

QString gb(double v) { return QString::number(v, 'f', v < 1 ? 2 : v < 10 ? 1 : 0) + QStringLiteral(" GB"); }

QString tableHtml() {
  QString rows;
  for (const ModelFit& m : models()) {
    // Figures never wrap: a narrow pane would otherwise break "0.25 GB" at its point.
    rows += QStringLiteral(
                "<tr><td><nobr>%1</nobr> %2</td><td align=right style=\"white-space:nowrap\">%3</td>"
                "<td align=right style=\"white-space:nowrap\">%4 MB</td>"
                "<td align=right style=\"white-space:nowrap\">%5</td></tr>")
                .arg(m.name.toHtmlEscaped(), m.quant, gb(m.fileGB),
                     QString::number(m.kvBytesPerToken() * 1000 / 1e6, 'f', 0), gb(m.memoryGB(kDocumentTokens)));
  }
  return QStringLiteral(
             "<table cellspacing=0 cellpadding=2><tr><th align=left>%1</th><th>%2</th><th>%3</th><th>%4</th>"
             "</tr>%5</table>")
      .arg(tr("Model"), tr("File"), tr("+1k tokens"), tr("8k-token document"), rows);
}

}  // namespace

const QList<ModelFit>& models() {
  // In order of the memory an 8k-token document needs. File sizes of the GGUF files as published (parameters x bits per weight / 8: Q4_K_M is ~4.9 bits on large
  // models, more on small ones, whose embedding tables stay at 6-8 bits; Q8_0 is 8.5 bits; BF16 16). Layer, KV-head
  // and head-dim counts are the models' own (freekv info prints them).
  static const QList<ModelFit> list = {
      {QStringLiteral("Gemma 3 270M"), QStringLiteral("Q4_K_M"), 0.25, 18, 1, 256},
      {QStringLiteral("Qwen2.5-Coder 0.5B Instruct"), QStringLiteral("Q4_K_M"), 0.49, 24, 2, 64},
      {QStringLiteral("Gemma 3 1B"), QStringLiteral("Q4_K_M"), 0.81, 26, 1, 256},
      {QStringLiteral("TinyLlama 1.1B"), QStringLiteral("Q8_0"), 1.17, 22, 4, 64},
      {QStringLiteral("Qwen2.5-Coder 1.5B Instruct"), QStringLiteral("Q4_K_M"), 1.12, 28, 2, 128},
      {QStringLiteral("Gemma 3 4B"), QStringLiteral("Q4_K_M"), 2.49, 34, 4, 256},
      {QStringLiteral("Qwen2.5 7B, DeepSeek-R1-Distill-Qwen 7B"), QStringLiteral("Q4_K_M"), 4.68, 28, 4, 128},
      {QStringLiteral("Mistral 7B"), QStringLiteral("Q4_K_M"), 4.37, 32, 8, 128},
      {QStringLiteral("Llama 3.1 8B"), QStringLiteral("Q4_K_M"), 4.92, 32, 8, 128},
      {QStringLiteral("Llama 3.1 8B"), QStringLiteral("BF16"), 16.06, 32, 8, 128},
  };
  return list;
}

QString modelsFolder() {
  return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/models");
}

QString installedDefault() {
  const std::vector<fkv::InstalledModel> installed = fkv::list_installed_models(modelsFolder().toStdString());
  const std::optional<fkv::InstalledModel> chosen = fkv::choose_model(installed, fkv::available_memory_bytes());
  return chosen ? QString::fromStdString(chosen->path) : QString();
}

QString noModelHtml() {
  const QString folder = modelsFolder();
  const QString link = QStringLiteral("<a href=\"%1\">%2</a>")
                           .arg(QUrl::fromLocalFile(folder).toString(QUrl::FullyEncoded),
                                QDir::toNativeSeparators(folder).toHtmlEscaped());
  return tr("<b>No model is installed.</b> FreeKV Desk runs a language model in GGUF format on this computer and "
            "never downloads one. Copy a .gguf file into %1: at its next start FreeKV Desk loads the largest model "
            "there that fits this computer's memory. Or press <b>Open Settings…</b> (Ctrl+,), <b>Browse…</b> and "
            "choose a file anywhere; it is remembered. Without a network, copy the file from another computer; "
            "a source checkout installs Qwen2.5-Coder 0.5B and 1.5B Instruct with "
            "<tt>scripts/install_models.py</tt>.")
             .arg(link) +
         QStringLiteral("<p>") + tr("Which models fit in memory:") + tableHtml() +
         tr("<small>Memory = the file + the KV cache (layers × KV heads × head size × 4.125 bytes per token: 16-bit "
            "keys and values, and page summaries) + about 0.1 GB. A longer document adds the +1k figure for every "
            "1,000 tokens. Qwen2.5-Coder 0.5B Instruct runs on any computer and answers questions about "
            "documents; the 1.5B answers better where 2 GB are free.</small>");
}

}  // namespace ModelGuide
