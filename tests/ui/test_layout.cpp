// The window at the sizes people use, offscreen and without a model: on a 1024x700 screen the document column keeps a
// readable width, the search fields show their whole placeholder, and the live panels share one tabbed dock; at
// 1600x1000 the panels stand side by side again. And the panels' figures: every number says what it counts.
#include <QDockWidget>
#include <QLineEdit>
#include <QRegularExpression>
#include <QSettings>
#include <QSplitter>
#include <QStandardPaths>
#include <QStyle>
#include <QStyleOptionFrame>
#include <QTest>
#include <limits>

#include "document_view.h"
#include "library_pane.h"
#include "main_window.h"
#include "memory_panel.h"
#include "recall_timeline.h"
#include "retrieval_heatmap.h"
#include "support/test_paths.h"
#include "timeline_model.h"

namespace {

constexpr int kReadableDocument = 380;  // px: about 50 characters of the document's text beside its outline

// Words that may follow a number: its unit.
const QStringList kUnits = {
    QStringLiteral("tokens"), QStringLiteral("tokens/s"), QStringLiteral("pages"), QStringLiteral("KV"),
    QStringLiteral("ms"),     QStringLiteral("s"),        QStringLiteral("%"),     QStringLiteral("bytes"),
    QStringLiteral("KiB"),    QStringLiteral("MiB"),      QStringLiteral("GiB"),   QStringLiteral("TiB"),
    QStringLiteral("steps"),  QStringLiteral("layers"),   QStringLiteral("heads"),
};
// Words that may come before a number that needs no unit: an index ("step 12", "Layer 3, KV head 1") or a cosine.
const QStringList kIndexWords = {QStringLiteral("step"), QStringLiteral("layer"), QStringLiteral("head"),
                                 QStringLiteral("cosine")};

// The numbers in `text` that carry no unit. "3 of 24 KV heads" and "5 / 10 tokens" share the second number's unit.
QStringList unitlessNumbers(const QString& text) {
  static const QRegularExpression number(QStringLiteral("\\d+(?:[.,]\\d+)*"));
  static const QRegularExpression nextWord(QStringLiteral("^\\s*([^\\s,;:()\u00b7]+)"));
  static const QRegularExpression previousWord(QStringLiteral("(\\w+)\\W*$"));
  QStringList found;
  QString waiting;  // a number before "of" or "/": its unit is the next number's
  for (auto it = number.globalMatch(text); it.hasNext();) {
    const QRegularExpressionMatch m = it.next();
    QString after = nextWord.match(text.mid(m.capturedEnd())).captured(1);
    if (after.endsWith(QLatin1Char('.'))) after.chop(1);
    const QString before = previousWord.match(text.left(m.capturedStart())).captured(1).toLower();
    const bool hasUnit = kUnits.contains(after) || kIndexWords.contains(before);
    if (!waiting.isEmpty() && !hasUnit) found << waiting;
    waiting.clear();
    if (after == QLatin1String("of") || after == QLatin1String("/"))
      waiting = m.captured();
    else if (!hasUnit)
      found << m.captured();
  }
  if (!waiting.isEmpty()) found << waiting;
  return found;
}

}  // namespace

class TestLayout : public QObject {
  Q_OBJECT

 private:
  QString m_library;

  static QSplitter* centre(MainWindow& window) {
    return window.findChild<QSplitter*>(QStringLiteral("centreSplitter"));
  }

  static QString sizesText(const QList<int>& sizes) {
    QStringList parts;
    for (int size : sizes) parts << QString::number(size);
    return parts.join(QStringLiteral(", "));
  }

  static bool sideBySide(MainWindow& window) {
    const QList<QDockWidget*> docks = {window.heatmapDock(), window.timelineDock(), window.memoryDock()};
    for (QDockWidget* d : docks) {
      if (!d->isVisible() || !window.tabifiedDockWidgets(d).isEmpty()) return false;
    }
    const int y = docks[0]->y();
    return docks[0]->x() < docks[1]->x() && docks[1]->x() < docks[2]->x() && docks[1]->y() == y && docks[2]->y() == y;
  }

  static bool folded(MainWindow& window) {
    const QList<QDockWidget*> tabs = window.tabifiedDockWidgets(window.heatmapDock());
    return tabs.contains(window.timelineDock()) && tabs.contains(window.memoryDock());
  }

  // The line edit draws its whole placeholder: the room QLineEdit::paintEvent gives the text (the style's contents
  // rect, less the text margins and 2 px a side) holds it. An empty edit hides its clear button.
  static void verifyPlaceholderFits(const QLineEdit* edit) {
    QStyleOptionFrame frame;
    frame.initFrom(edit);
    frame.rect = edit->rect();
    frame.lineWidth = edit->hasFrame() ? edit->style()->pixelMetric(QStyle::PM_DefaultFrameWidth, &frame, edit) : 0;
    const QRect contents = edit->style()->subElementRect(QStyle::SE_LineEditContents, &frame, edit);
    const int room = contents.width() - edit->textMargins().left() - edit->textMargins().right() - 2 * 2;
    const int needed = edit->fontMetrics().horizontalAdvance(edit->placeholderText());
    QVERIFY2(
        edit->text().isEmpty() && room >= needed,
        qPrintable(QStringLiteral("\"%1\" has %2 px, needs %3 px").arg(edit->placeholderText()).arg(room).arg(needed)));
  }

  static void showAt(MainWindow& window, int w, int h) {
    window.resize(w, h);
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));
  }

  static void resizeAndSettle(MainWindow& window, int w, int h) {
    window.resize(w, h);
    QTRY_COMPARE(window.size(), QSize(w, h));
    QTest::qWait(50);  // the layout requests the resize posted
  }

 private slots:
  void initTestCase() {
    QStandardPaths::setTestModeEnabled(true);  // no installed model is found and loaded
    const QString dir = fkvtest::tempDir();
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, dir + QStringLiteral("/config"));
    QCoreApplication::setOrganizationDomain(QStringLiteral("freekv.org"));
    QCoreApplication::setApplicationName(QStringLiteral("freekv-desk-layout-test"));
    m_library = dir + QStringLiteral("/library.db");
  }

  void narrowWindowKeepsTheDocumentReadable() {
    MainWindow window(m_library);
    showAt(window, 1024, 700);
    resizeAndSettle(window, 1024, 700);
    QVERIFY2(window.documentView()->width() >= kReadableDocument,
             qPrintable(QStringLiteral("document column %1 px; library, document, chat: %2 px")
                            .arg(window.documentView()->width())
                            .arg(sizesText(centre(window)->sizes()))));
    verifyPlaceholderFits(window.libraryPane()->filterEdit());
    verifyPlaceholderFits(window.documentView()->searchEdit());
    QVERIFY(folded(window));
    QVERIFY(!sideBySide(window));
    // The tab shown is the first panel's, not whichever was folded in last.
    QTRY_VERIFY(window.heatmapDock()->geometry().intersects(window.rect()));
    QVERIFY(!window.memoryDock()->geometry().intersects(window.rect()));
  }

  // Squeezed further, the window stops at its minimum width, where the search fields still show their placeholder.
  void narrowestWindowKeepsThePlaceholders() {
    MainWindow window(m_library);
    showAt(window, 1024, 700);
    window.resize(600, 700);
    QTest::qWait(50);
    QVERIFY2(window.width() <= 1024, qPrintable(QString::number(window.width())));
    verifyPlaceholderFits(window.libraryPane()->filterEdit());
    verifyPlaceholderFits(window.documentView()->searchEdit());
  }

  void wideAgainUnfoldsThePanels() {
    MainWindow window(m_library);
    showAt(window, 1024, 700);
    resizeAndSettle(window, 1024, 700);
    QVERIFY(folded(window));
    resizeAndSettle(window, 1600, 1000);
    QTRY_VERIFY(sideBySide(window));
    QVERIFY(window.documentView()->width() >= kReadableDocument);
    // The sides get their usual widths back, not the narrow window's.
    QVERIFY2(window.libraryPane()->width() >= 300, qPrintable(QString::number(window.libraryPane()->width())));
    resizeAndSettle(window, 1024, 700);
    QVERIFY(folded(window));
  }

  // A panel closed from the View menu stays closed through the folding and the unfolding.
  void closedPanelStaysClosed() {
    MainWindow window(m_library);
    showAt(window, 1600, 1000);
    window.timelineDock()->toggleViewAction()->trigger();
    QVERIFY(window.timelineDock()->isHidden());
    resizeAndSettle(window, 1024, 700);
    QVERIFY(window.timelineDock()->isHidden());
    resizeAndSettle(window, 1600, 1000);
    QVERIFY(window.timelineDock()->isHidden());
    QVERIFY(window.heatmapDock()->isVisible() && window.memoryDock()->isVisible());
    QVERIFY(window.tabifiedDockWidgets(window.heatmapDock()).isEmpty());
    // The first panel closed: the others still fold onto it and come apart again.
    window.heatmapDock()->toggleViewAction()->trigger();
    window.timelineDock()->toggleViewAction()->trigger();
    resizeAndSettle(window, 1024, 700);
    QVERIFY(window.heatmapDock()->isHidden());
    QVERIFY(window.timelineDock()->isVisible() && window.memoryDock()->isVisible());
    resizeAndSettle(window, 1600, 1000);
    QVERIFY(window.heatmapDock()->isHidden());
    QVERIFY(window.timelineDock()->isVisible() && window.memoryDock()->isVisible());
    QVERIFY(window.timelineDock()->x() < window.memoryDock()->x());
    QCOMPARE(window.timelineDock()->y(), window.memoryDock()->y());
  }

  void unitCheckFindsBareNumbers() {
    QCOMPARE(unitlessNumbers(QStringLiteral("3072 pages")), QStringList());
    QCOMPARE(unitlessNumbers(QStringLiteral("step 12: 3 recalled, 0.50 ms")), QStringList{QStringLiteral("3")});
    QCOMPARE(unitlessNumbers(QStringLiteral("context 5 / 4,096")),
             (QStringList{QStringLiteral("5"), QStringLiteral("4,096")}));
    QCOMPARE(unitlessNumbers(QStringLiteral("Heads corrected: 3 of 24 checked")),
             (QStringList{QStringLiteral("3"), QStringLiteral("24")}));
    QCOMPARE(unitlessNumbers(QStringLiteral("3 of 24 KV heads; 12.5% of steps")), QStringList());
  }

  void panelFiguresCarryUnits() {
    TimelineModel steps;
    TelemetryFrame frame;
    frame.policy = QStringLiteral("freekv");
    frame.nLayers = 2;
    frame.nKvHeads = 2;
    frame.lastStep = 41;
    frame.correctedNow = {1, 0, 0, 0};
    frame.cosineNow = {0.5f, 0.97f, std::numeric_limits<float>::quiet_NaN(), 0.99f};
    frame.correctionRate = {0.25f, 0.0f, 0.0f, 0.125f};
    for (int i = 0; i < 40; ++i) {
      StepRecord s;
      s.step = i + 2;
      s.pages_selected = 3072;
      s.pages_recalled = 12 + i % 5;
      s.pages_reused = 100;
      s.bytes_recalled = 12u << 20;
      s.heads_checked = 24;
      s.heads_corrected = 3;
      s.wait_s = 0.0005;
      frame.newSteps.append(s);
    }
    steps.addFrame(frame);
    RecallTimeline timeline;
    timeline.setModel(&steps);
    timeline.resize(600, 180);
    timeline.show();
    QVERIFY(QTest::qWaitForWindowExposed(&timeline));
    QVERIFY2(timeline.pagesScaleText().contains(QStringLiteral("pages")), qPrintable(timeline.pagesScaleText()));
    QVERIFY2(timeline.pagesScaleText().contains(QStringLiteral("KV")), qPrintable(timeline.pagesScaleText()));
    QVERIFY2(timeline.stallScaleText().contains(QStringLiteral("ms")), qPrintable(timeline.stallScaleText()));
    const QStringList timelineTexts = {timeline.pagesScaleText(), timeline.stallScaleText(), timeline.lastStepText(),
                                       timeline.stepToolTip(timeline.stepCount() - 1)};
    for (const QString& text : timelineTexts) QVERIFY2(unitlessNumbers(text).isEmpty(), qPrintable(text));

    RetrievalHeatmap heatmap;
    heatmap.setFrame(frame);
    const QStringList heatmapTexts = {heatmap.cellToolTip(0, 0), heatmap.cellToolTip(1, 0), heatmap.axisText(),
                                      heatmap.rampText()};
    for (const QString& text : heatmapTexts) QVERIFY2(unitlessNumbers(text).isEmpty(), qPrintable(text));
    QVERIFY2(heatmap.axisText().contains(QStringLiteral("layer")), qPrintable(heatmap.axisText()));
    QVERIFY2(heatmap.axisText().contains(QStringLiteral("KV head")), qPrintable(heatmap.axisText()));

    MemoryPanel memory;
    ModelSummary model;
    model.backend = QStringLiteral("CUDA (NVIDIA H100)");
    model.kvBytesPerToken = 24576;
    memory.setModel(model);
    // A GPU's context: 4,100 of 32,768 tokens, 50 MiB on the device, 100 MiB in host memory, 3 MiB on disk.
    memory.setMemoryUse(MemoryUse{32768, 4100, 32768, false, 50u << 20, 100u << 20, 3u << 20, 2048});
    memory.setStorageCap(quint64(2) << 30);
    for (MemoryPanel::Tier tier :
         {MemoryPanel::Tier::Context, MemoryPanel::Tier::Device, MemoryPanel::Tier::Host, MemoryPanel::Tier::Disk}) {
      const QString text = memory.rowText(tier);
      QVERIFY2(unitlessNumbers(text).isEmpty(), qPrintable(text));
    }
    QVERIFY(memory.rowText(MemoryPanel::Tier::Context).contains(QStringLiteral("tokens")));
    QVERIFY(memory.rowText(MemoryPanel::Tier::Device).contains(QStringLiteral("MiB")));
  }

  void statusBarFiguresCarryUnits() {
    MainWindow window(m_library);
    for (const QString& text : {window.speedText(), window.contextText(), window.memoryText()})
      QVERIFY2(unitlessNumbers(text).isEmpty(), qPrintable(text));
    QVERIFY2(window.contextText().contains(QStringLiteral("tokens")), qPrintable(window.contextText()));
  }
};

QTEST_MAIN(TestLayout)
#include "test_layout.moc"
