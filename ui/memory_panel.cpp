#include "memory_panel.h"

#include <QLocale>
#include <QPainter>
#include <algorithm>

namespace {

constexpr int kMargin = 6;
constexpr MemoryPanel::Tier kTiers[] = {MemoryPanel::Tier::Context, MemoryPanel::Tier::Device, MemoryPanel::Tier::Host,
                                        MemoryPanel::Tier::Disk};

QString bytesText(quint64 bytes) { return QLocale().formattedDataSize(qint64(bytes), 1); }

QColor tierColor(MemoryPanel::Tier tier) {
  switch (tier) {
    case MemoryPanel::Tier::Context:
      return QColor(0x4c, 0x6e, 0xf5);
    case MemoryPanel::Tier::Device:
      return QColor(0x2f, 0x9e, 0x44);
    case MemoryPanel::Tier::Host:
      return QColor(0x1c, 0x7e, 0xd6);
    case MemoryPanel::Tier::Disk:
      return QColor(0x86, 0x8e, 0x96);
  }
  return {};
}

}  // namespace

MemoryPanel::MemoryPanel(QWidget* parent) : QWidget(parent) {
  setAccessibleName(tr("Memory per tier"));
  setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Minimum);
  setWhatsThis(
      tr("Device: the working set in GPU memory (none on the CPU backend, where the host tier is the "
         "working memory). Host: the KV of every token in the context. Disk: the saved KV caches."));
}

void MemoryPanel::setMemoryUse(const MemoryUse& memory) {
  m_memory = memory;
  setToolTip(QStringList{rowText(Tier::Context), rowText(Tier::Device), rowText(Tier::Host), rowText(Tier::Disk)}.join(
      QLatin1Char('\n')));
  update();
}

void MemoryPanel::setModel(const ModelSummary& model) {
  m_model = model;
  update();
}

void MemoryPanel::setStorageCap(quint64 bytes) {
  m_storageCap = bytes;
  update();
}

bool MemoryPanel::hasDeviceTier() const {
  return m_model.backend.startsWith(QLatin1String("CUDA")) || m_memory.deviceBytes > 0;
}

quint64 MemoryPanel::used(Tier tier) const {
  switch (tier) {
    case Tier::Context:
      return quint64(std::max(0, m_memory.nTokens));
    case Tier::Device:
      return m_memory.deviceBytes;
    case Tier::Host:
      return m_memory.hostBytes;
    case Tier::Disk:
      return m_memory.diskBytes;
  }
  return 0;
}

quint64 MemoryPanel::budget(Tier tier) const {
  switch (tier) {
    case Tier::Context:
      return quint64(std::max(0, m_memory.nCtx));
    // The device tier holds the working set: sink + recent + retrieved tokens' KV.
    case Tier::Device:
      return hasDeviceTier() ? m_memory.budgetTokens * m_model.kvBytesPerToken : 0;
    // The host tier can grow to the whole context's KV.
    case Tier::Host:
      return quint64(std::max(0, m_memory.nCtx)) * m_model.kvBytesPerToken;
    case Tier::Disk:
      return m_storageCap;
  }
  return 0;
}

QString MemoryPanel::tierName(Tier tier) const {
  switch (tier) {
    case Tier::Context:
      return tr("Context");
    case Tier::Device:
      return tr("Device");
    case Tier::Host:
      return tr("Host");
    case Tier::Disk:
      return tr("Disk");
  }
  return {};
}

QString MemoryPanel::rowText(Tier tier) const {
  const QLocale locale;
  switch (tier) {
    case Tier::Context:
      if (m_memory.nCtx <= 0) return tr("Context: no model loaded");
      if (m_memory.contextMemory) {
        return tr("Context: %1 of %2 tokens, as context memory past the model's %3")
            .arg(locale.toString(m_memory.nTokens), locale.toString(m_memory.nCtx), locale.toString(m_memory.nCtxTrain));
      }
      return tr("Context: %1 of %2 tokens").arg(locale.toString(m_memory.nTokens), locale.toString(m_memory.nCtx));
    case Tier::Device:
      if (!hasDeviceTier()) return tr("Device: none (CPU backend)");
      return tr("Device: %1 of %2 budget (%3 tokens)")
          .arg(bytesText(used(tier)), bytesText(budget(tier)), locale.toString(m_memory.budgetTokens));
    case Tier::Host:
      if (m_memory.fileBytes > 0) {
        // A saved KV read in place: pages come in from the page file as steps touch them.
        return tr("Host: %1; %2 of the saved KV read in place, %3 resident, %4 read so far (%5 s waited)")
            .arg(bytesText(used(tier)), bytesText(m_memory.fileBytes), bytesText(m_memory.fileResidentBytes),
                 bytesText(m_memory.fileReadBytes), QString::number(m_memory.fileWaitS, 'f', 2));
      }
      if (budget(tier) == 0) return tr("Host: %1").arg(bytesText(used(tier)));
      return tr("Host: %1 of %2 for the full context").arg(bytesText(used(tier)), bytesText(budget(tier)));
    case Tier::Disk:
      if (m_storageCap == 0) return tr("Disk: %1 of KV snapshots in the library").arg(bytesText(used(tier)));
      return tr("Disk: %1 of %2 cap for KV snapshots").arg(bytesText(used(tier)), bytesText(m_storageCap));
  }
  return {};
}

QSize MemoryPanel::sizeHint() const {
  const int row = 2 * fontMetrics().height() + 10;
  return QSize(320, kMargin * 2 + 4 * row);
}

QSize MemoryPanel::minimumSizeHint() const { return QSize(180, sizeHint().height()); }

void MemoryPanel::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.fillRect(rect(), palette().base());
  const int rowHeight = (height() - 2 * kMargin) / 4;
  int y = kMargin;
  for (Tier tier : kTiers) {
    paintRow(p, QRect(kMargin, y, width() - 2 * kMargin, rowHeight), tier);
    y += rowHeight;
  }
}

void MemoryPanel::paintRow(QPainter& p, const QRect& r, Tier tier) const {
  const QFontMetrics fm = fontMetrics();
  p.setPen(palette().color(QPalette::Text));
  const QRect text(r.left(), r.top(), r.width(), fm.height());
  p.drawText(text, Qt::AlignLeft | Qt::AlignVCenter, fm.elidedText(rowText(tier), Qt::ElideRight, r.width()));
  const QRect track(r.left(), text.bottom() + 3, r.width(),
                    std::max(4, std::min(fm.height() - 2, r.height() - fm.height() - 8)));
  p.fillRect(track, palette().color(QPalette::AlternateBase));
  p.setPen(palette().color(QPalette::Mid));
  p.drawRect(track.adjusted(0, 0, -1, -1));
  const quint64 cap = budget(tier);
  if (cap == 0 && used(tier) == 0) return;
  // Without a budget the bar only says "something is there"; an overfull tier fills the whole track.
  const double share = cap == 0 ? 1.0 : std::min(1.0, double(used(tier)) / double(cap));
  const int w = int((track.width() - 2) * share);
  const QColor color = (cap != 0 && used(tier) > cap) ? QColor(0xc9, 0x2a, 0x2a) : tierColor(tier);
  p.fillRect(QRect(track.left() + 1, track.top() + 1, w, track.height() - 2), color);
}
