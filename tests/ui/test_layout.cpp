// The window at the sizes people use, offscreen and without a model: on a 1024x700 screen the document column keeps a
// readable width, the search fields show their whole placeholder, and the live panels share one tabbed dock; at
// 1600x1000 the panels stand side by side again.
#include <QDockWidget>
#include <QLineEdit>
#include <QSettings>
#include <QSplitter>
#include <QStandardPaths>
#include <QStyle>
#include <QStyleOptionFrame>
#include <QTest>

#include "document_view.h"
#include "library_pane.h"
#include "main_window.h"
#include "support/test_paths.h"

namespace {

constexpr int kReadableDocument = 380;  // px: about 50 characters of the document's text beside its outline

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
};

QTEST_MAIN(TestLayout)
#include "test_layout.moc"
