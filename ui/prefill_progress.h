// Opening a document, as a bar: which stage runs (reading, tokenizing, prefill, loading or saving the KV snapshot),
// how far it is (a PDF's pages, tokens for the prefill, bytes for the snapshot), the prefill's speed and the time
// left, and a Cancel button. It shows itself when a stage starts and hides when the open ends. An import of a long
// PDF shows here too, with its pages.
#pragma once

#include <QString>
#include <QWidget>

#include "client_types.h"

class QLabel;
class QProgressBar;
class QPushButton;

class PrefillProgress : public QWidget {
  Q_OBJECT

 public:
  explicit PrefillProgress(QWidget* parent = nullptr);

  // Starts showing the open of `title` (indeterminate until the first report).
  void start(const QString& title);
  // Starts showing the import of `fileName` (reading its pages); finish() ends it as it ends an open.
  void startImport(const QString& fileName);
  void setProgress(const OpenProgress& progress);
  // The open ended (done, failed or cancelled): hides the bar.
  void finish();
  // A cancel was asked for: says so at once (the engine stops after its current chunk, which can take seconds) and
  // keeps saying so until finish().
  void cancelling();
  bool isCancelling() const { return m_cancelling; }

  bool isActive() const { return m_active; }
  QString statusText() const;
  QProgressBar* bar() const { return m_bar; }
  QPushButton* cancelButton() const { return m_cancel; }

  // "1:05", "42 s": seconds left as the bar shows them.
  static QString durationText(double seconds);

 signals:
  void cancelRequested();

 private:
  QString stageText(const OpenProgress& progress) const;
  void setStatus(const QString& text);

  QLabel* m_title = nullptr;
  QProgressBar* m_bar = nullptr;
  QPushButton* m_cancel = nullptr;
  QString m_documentTitle;
  bool m_active = false;
  bool m_cancelling = false;
  qint64 m_resumedAt = -1;  // where this open's prefill started; -1 before its first report
};
