// The memory panel: where the KV cache lives, tier by tier. Device: the working set FreeKV keeps in GPU memory
// (its budget is the retrieval budget in tokens times the KV bytes per token); host: every page of the context in
// CPU memory (at most the whole context); disk: the page files of the documents in the library. One row per tier,
// each a bar of use against its budget, plus the context's fill.
#pragma once

#include <QString>
#include <QWidget>

#include "client_types.h"

class MemoryPanel : public QWidget {
  Q_OBJECT

 public:
  enum class Tier { Context, Device, Host, Disk };

  explicit MemoryPanel(QWidget* parent = nullptr);

  void setMemoryUse(const MemoryUse& memory);
  // The loaded model (KV bytes per token, backend); a default summary means none.
  void setModel(const ModelSummary& model);
  // A cap on the library's page files (0: none), shown as the disk tier's budget.
  void setStorageCap(quint64 bytes);

  // What a row shows: used and budget (0: no budget) in bytes (tokens for the context row), and its text.
  quint64 used(Tier tier) const;
  quint64 budget(Tier tier) const;
  QString rowText(Tier tier) const;
  // False when the backend has no device tier (CPU: the host tier is the working memory).
  bool hasDeviceTier() const;

  QSize sizeHint() const override;
  QSize minimumSizeHint() const override;

 protected:
  void paintEvent(QPaintEvent* event) override;

 private:
  QString tierName(Tier tier) const;
  void paintRow(class QPainter& p, const QRect& r, Tier tier) const;

  MemoryUse m_memory;
  ModelSummary m_model;
  quint64 m_storageCap = 0;
};
