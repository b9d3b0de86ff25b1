// FreeKV Desk end to end, offscreen: the test writes a small synthetic model and a generated markdown document,
// opens the window without a model first (the first-run text), configures the model in the settings, imports the
// document (the command line's path), waits for the prefill, asks a question, stops a long answer, hides and shows the
// live panels, then closes the window and opens the document in a new one: its KV comes from the snapshot (no
// prefill) and the chat is restored. A watchdog timer on the GUI thread proves the event loop never stops for more
// than 50 ms while the engine prefills and generates.
//
// With FKV_SCREENSHOT_DIR set, it also saves screenshots of the window and its panels there, and runs on the default
// model, Qwen2.5-Coder-0.5B-Instruct (fkvtest::qwenModelPath()), when setup installed it:
// `FKV_SCREENSHOT_DIR=docs/images test_main_window` makes the user guide's pictures.
#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QInputDialog>
#include <QLineEdit>
#include <QListView>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QTest>
#include <QStatusBar>
#include <QTextBrowser>
#include <QTimer>
#include <QTreeWidget>
#include <algorithm>
#include <fstream>
#include <memory>

#include "chat_model.h"
#include "chat_view.h"
#include "document_view.h"
#include "engine_client.h"
#include "help.h"
#include "library_pane.h"
#include "library_model.h"
#include "main_window.h"
#include "memory_panel.h"
#include "model/synthetic.h"
#include "model_guide.h"
#include "prefill_progress.h"
#include "recall_timeline.h"
#include "retrieval_heatmap.h"
#include "settings_dialog.h"
#include "support/test_paths.h"
#include "support/watchdog.h"

namespace {

constexpr int kTimeoutMs = 120000;
constexpr qint64 kMaxGapMs = 50;


// A markdown document of numbered records under headings, ~17 tokens a record.
void writeDocument(const QString& path, int nRecords) {
  const char* things[] = {"lantern", "harbour", "orchard", "ledger", "bridge", "meadow", "tower", "river"};
  const char* verbs[] = {"keeps", "counts", "guards", "remembers", "lists", "describes"};
  std::ofstream out(path.toStdString());
  out << "# The Harbour Ledger\n\n";
  for (int i = 0; i < nRecords; ++i) {
    if (i % 20 == 0) out << "## Records " << i << " to " << i + 19 << "\n\n";
    out << "Record " << i << " says the " << things[i % 8] << " " << verbs[i % 6] << " " << (i * 37) % 101 << " old "
        << things[(i * 3 + 1) % 8] << "s.";
    out << ((i % 5 == 4) ? "\n\n" : " ");
  }
}

QString screenshotDir() { return qEnvironmentVariable("FKV_SCREENSHOT_DIR"); }

bool useRealModel() { return !screenshotDir().isEmpty() && !fkvtest::qwenModelPath().isEmpty(); }

}  // namespace

class TestMainWindow : public QObject {
  Q_OBJECT

 private:
  QString m_dir, m_model, m_doc, m_library;
  std::unique_ptr<MainWindow> m_window;
  fkvtest::Watchdog m_watchdog{5};  // ms between ticks
  qint64 m_docId = 0;

  void shoot(QWidget* widget, const QString& name) {
    if (screenshotDir().isEmpty()) return;
    const bool watching = m_watchdog.isRunning();
    m_watchdog.stop();  // grabbing a whole window is the test's work, not the app's
    QDir().mkpath(screenshotDir());
    QVERIFY(widget->grab().save(screenshotDir() + QLatin1Char('/') + name));
    if (watching) m_watchdog.start();
  }

  DeskSettings settingsFor() const {
    DeskSettings s;
    s.modelPath = m_model;
    s.policy = QStringLiteral("freekv");
    s.temperature = 0.0;
    if (useRealModel()) {
      s.nCtx = 8192;
      s.sinkTokens = 256;
      s.recentTokens = 256;
      s.retrievedTokens = 512;
      s.maxAnswerTokens = 96;
      return s;
    }
    s.nCtx = 4096;
    s.nThreads = 1;  // the other core stays with the GUI thread the watchdog measures
    s.chatTemplate = QStringLiteral("llama2");
    s.pageSize = 16;
    s.sinkTokens = 64;
    s.recentTokens = 64;
    s.retrievedTokens = 128;
    s.maxAnswerTokens = 24;
    return s;
  }

  void newWindow() {
    m_window = std::make_unique<MainWindow>(m_library);
    m_window->resize(1400, 900);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
    QTRY_VERIFY_WITH_TIMEOUT(m_window->hasModel(), kTimeoutMs);
  }

  void verifyEventLoopKeptUp() {
    m_watchdog.stop();
    QVERIFY(m_watchdog.ticks() > 0);  // it ran; maxGap spans the whole time to stop()
    QVERIFY2(m_watchdog.maxGap() <= kMaxGapMs,
             qPrintable(QStringLiteral("the event loop stopped for %1 ms (%2 ms on the wall clock)")
                            .arg(m_watchdog.maxGap())
                            .arg(m_watchdog.maxWallGap())));
  }

  // Asks through the chat pane, as a person would: type, Enter. The watchdog pauses while the test types: QTest
  // delivers a whole question's keys at once, where a person takes seconds.
  void typeQuestion(const QString& question) {
    QPlainTextEdit* input = m_window->chatView()->input();
    input->setFocus();
    const bool watching = m_watchdog.isRunning();
    m_watchdog.stop();
    QTest::keyClicks(input, question);
    if (watching) m_watchdog.start();
    QTest::keyClick(input, Qt::Key_Return);
  }

 private slots:
  void initTestCase() {
    m_dir = fkvtest::tempDir();
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_dir + QStringLiteral("/config"));
    QCoreApplication::setOrganizationDomain(QStringLiteral("freekv.org"));
    QCoreApplication::setApplicationName(QStringLiteral("freekv-desk-test"));
    m_library = m_dir + QStringLiteral("/data/library.db");
    QDir().mkpath(m_dir + QStringLiteral("/data"));
    m_doc = m_dir + QStringLiteral("/harbour-ledger.md");
    writeDocument(m_doc, useRealModel() ? 300 : 60);
    if (useRealModel()) {
      m_model = fkvtest::qwenModelPath();
    } else {
      m_model = m_dir + QStringLiteral("/desk-synthetic.gguf");
      fkv::SyntheticModelSpec spec;
      spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
      spec.seed = 11;
      spec.n_layers = 6;
      spec.n_embd = 128;
      spec.n_heads = 8;
      spec.n_kv_heads = 4;
      spec.n_ff = 256;
      spec.tied_embeddings = true;
      spec.name = "desk-synthetic";
      const fkv::Status s = fkv::write_synthetic_model(spec, m_model.toStdString());
      QVERIFY2(s.ok(), s.message().c_str());
    }
    QSettings store;
    settingsFor().save(store);
  }

  // The first run: no model in the settings. The chat pane explains where a GGUF file goes and which models fit.
  void firstRunExplainsWhereTheModelGoes() {
    QSettings store;
    DeskSettings none = settingsFor();
    none.modelPath.clear();
    none.save(store);
    m_window = std::make_unique<MainWindow>(m_library);
    m_window->resize(1400, 900);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
    QCOMPARE(m_window->chatView()->state(), ChatView::State::NoModel);
    QVERIFY(m_window->chatView()->isBannerVisible());
    QVERIFY(m_window->chatView()->bannerText().contains(ModelGuide::modelsFolder().toHtmlEscaped()));
    QVERIFY(m_window->chatView()->bannerText().contains(QStringLiteral("Gemma 3 270M")));
    QVERIFY(m_window->chatView()->settingsButton()->isVisible());
    QVERIFY(!m_window->hasModel());
    shoot(m_window.get(), QStringLiteral("first-run.png"));
    m_window.reset();
    settingsFor().save(store);
  }

  void loadsTheConfiguredModel() {
    newWindow();
    QVERIFY(m_window->model().nLayers > 0);
    QCOMPARE(m_window->chatView()->state(), ChatView::State::NoDocument);
    QVERIFY(m_window->chatView()->bannerText().contains(QStringLiteral("library")));
  }

  void importsAndPrefills() {
    QSignalSpy progress(m_window->client(), &EngineClient::openProgress);
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    bool shotPrefill = false;
    bool textDuringPrefill = false;
    qint64 contextDuringPrefill = 0;
    QMetaObject::Connection watch =
        connect(m_window->client(), &EngineClient::openProgress, this, [&](quint64, const OpenProgress& p) {
          if (p.stage != fkv::Stage::prefill || p.done >= p.total) return;
          // The text can be read while the prefill runs, and the memory panel follows the context filling up.
          textDuringPrefill = textDuringPrefill || (m_window->documentView()->hasContent() &&
                                                    m_window->documentView()->textEdit()->toPlainText().contains(
                                                        QStringLiteral("The Harbour Ledger")));
          contextDuringPrefill = std::max<qint64>(contextDuringPrefill, qint64(m_window->memoryPanel()->used(MemoryPanel::Tier::Context)));
          if (shotPrefill || p.done * 3 < p.total) return;
          shotPrefill = true;
          shoot(m_window.get(), QStringLiteral("prefill.png"));
        });
    m_watchdog.start();
    m_window->importAndOpen({m_doc});
    QTRY_VERIFY_WITH_TIMEOUT(ready.count() == 1, kTimeoutMs);
    QCOMPARE(m_window->openedDocument().doc.kv_source, fkv::KvSource::prefill);
    disconnect(watch);
    QVERIFY(textDuringPrefill);
    QVERIFY2(contextDuringPrefill > 0 && contextDuringPrefill < m_window->openedDocument().doc.n_tokens,
             qPrintable(QString::number(contextDuringPrefill)));
    QVERIFY(m_window->statusBar()->currentMessage().contains(
        QStringLiteral("prefilled %1 tokens in").arg(QLocale().toString(m_window->openedDocument().doc.n_tokens))));
    m_docId = m_window->openDocumentId();
    QVERIFY(m_docId > 0);
    const bool prefilled = std::any_of(progress.begin(), progress.end(), [](const QList<QVariant>& call) {
      return call.at(1).value<OpenProgress>().stage == fkv::Stage::prefill;
    });
    QVERIFY(prefilled);
    QVERIFY(!m_window->prefillProgress()->isActive());
    QVERIFY(m_window->documentView()->hasContent());
    QVERIFY(m_window->documentView()->outline()->topLevelItemCount() > 0);  // the headings
    QCOMPARE(m_window->chatView()->state(), ChatView::State::Ready);
  }

  void asksAndShowsThePanels() {
    QSignalSpy done(m_window.get(), &MainWindow::answerDone);
    typeQuestion(QStringLiteral("What does record 12 say about the harbour?"));
    QVERIFY(m_window->isAnswering());
    QTRY_VERIFY_WITH_TIMEOUT(done.count() == 1, kTimeoutMs);
    const AnswerStats stats = done.at(0).at(0).value<AnswerStats>();
    QVERIFY2(stats.stopReason == QLatin1String("eos") || stats.stopReason == QLatin1String("max_tokens") ||
                 stats.stopReason == QLatin1String("stop_string"),
             qPrintable(stats.stopReason));
    ChatModel* chat = m_window->chatModel();
    QCOMPARE(chat->rowCount(), 2);
    QCOMPARE(chat->index(1, 0).data(ChatModel::TextRole).toString(), stats.text);
    // The live panels saw the decode steps; the document view shows where the model looked.
    QTRY_VERIFY(m_window->timeline()->stepCount() > 0);
    QCOMPARE(m_window->heatmap()->layerCount(), m_window->model().nLayers);
    QCOMPARE(m_window->heatmap()->headCount(), m_window->model().nKvHeads);
    QVERIFY(!m_window->documentView()->passages().isEmpty());
    QVERIFY(m_window->speedText().contains(QStringLiteral("tokens/s")));
    QVERIFY2(m_window->contextText().contains(QStringLiteral("context")), qPrintable(m_window->contextText()));
    QVERIFY(m_window->memoryText().contains(QStringLiteral("host")));
    // Under the answer, the passages retrieval chose most; clicking one selects it in the document.
    const auto cites = chat->index(1, 0).data(ChatModel::CitationsRole).value<QVector<fkv::Citation>>();
    QCOMPARE(cites.size(), stats.citations.size());
    QVERIFY(!cites.isEmpty());
    const std::string& text = m_window->openedDocument().content->text;
    QVERIFY(cites[0].char_begin >= 0 && cites[0].char_end <= qint64(text.size()));
    const QRect first = m_window->chatView()->citationRect(1, 0);
    QVERIFY(!first.isEmpty());
    QVERIFY(m_window->chatView()->list()->viewport()->rect().contains(first.center()));
    QTest::mouseClick(m_window->chatView()->list()->viewport(), Qt::LeftButton, {}, first.center());
    const QString cited = QString::fromStdString(
        text.substr(size_t(cites[0].char_begin), size_t(cites[0].char_end - cites[0].char_begin)));
    const QString selected = m_window->documentView()->textEdit()->textCursor().selectedText();
    QCOMPARE(selected.simplified(), cited.simplified());  // simplified() takes U+2029 for the newline it was
    m_window->documentView()->goToPassage(0);
    shoot(m_window.get(), QStringLiteral("main-window.png"));
    shoot(m_window->heatmapDock(), QStringLiteral("heatmap.png"));
    shoot(m_window->timelineDock(), QStringLiteral("timeline.png"));
    shoot(m_window->memoryDock(), QStringLiteral("memory.png"));
  }

  void stopsAnAnswer() {
    DeskSettings s = m_window->settings();
    s.maxAnswerTokens = 1500;
    m_window->applySettings(s);  // same model load: only the generation options change
    QSignalSpy done(m_window.get(), &MainWindow::answerDone);
    QSignalSpy pieces(m_window->client(), &EngineClient::answerPiece);
    typeQuestion(QStringLiteral("List every record about the lantern, one per line."));
    QTRY_VERIFY_WITH_TIMEOUT(!pieces.isEmpty() || !done.isEmpty(), kTimeoutMs);
    QVERIFY2(done.isEmpty(), "the answer ended before it could be stopped");
    QVERIFY(m_window->chatView()->stopButton()->isEnabled());
    QTest::mouseClick(m_window->chatView()->stopButton(), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(done.count() == 1, kTimeoutMs);
    m_watchdog.stop();
    QCOMPARE(done.at(0).at(0).value<AnswerStats>().stopReason, QStringLiteral("cancelled"));
    QCOMPARE(m_window->chatModel()->index(3, 0).data(ChatModel::StopReasonRole).toString(),
             QStringLiteral("cancelled"));
    QVERIFY(m_window->chatView()->regenerateButton()->isEnabled());
    verifyEventLoopKeptUp();  // as measured up to the stop() above
  }

  // Ctrl+F is one action for the whole window: it reaches the search field from the document text (where a second,
  // view-local shortcut once made it ambiguous, so neither fired), from the chat input and from the library.
  void findWorksFromEverywhere() {
    m_window->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(m_window.get()));
    int ambiguous = 0;
    const QtMessageHandler previous = qInstallMessageHandler(nullptr);
    static int* counter = nullptr;
    counter = &ambiguous;
    qInstallMessageHandler([](QtMsgType, const QMessageLogContext&, const QString& msg) {
      if (msg.contains(QStringLiteral("Ambiguous shortcut"))) ++*counter;
    });
    DocumentView* view = m_window->documentView();
    for (QWidget* from : {static_cast<QWidget*>(view->textEdit()), static_cast<QWidget*>(m_window->chatView()->input()),
                          static_cast<QWidget*>(m_window->libraryPane())}) {
      from->setFocus();
      QTRY_VERIFY(from->hasFocus() || from->isAncestorOf(QApplication::focusWidget()));
      QTest::keyClick(from, Qt::Key_F, Qt::ControlModifier);
      QTRY_VERIFY2(view->searchEdit()->hasFocus(), qPrintable(from->metaObject()->className()));
    }
    qInstallMessageHandler(previous);
    QCOMPARE(ambiguous, 0);
  }

  // Help lists every shortcut the menus hold (read from the menus, so it cannot go stale) and opens the user guide
  // that ships with the app, offline.
  void helpListsShortcutsAndOpensTheGuide() {
    const QString table = help::shortcutsHtml(m_window->menuBar());
    for (const QString& want : {QStringLiteral("Find"), QStringLiteral("Import Documents"), QStringLiteral("Stop"),
                                QStringLiteral("Settings"), QStringLiteral("User Guide")})
      QVERIFY2(table.contains(want), qPrintable(want));
    QVERIFY(table.contains(QKeySequence(QKeySequence::Find).toString(QKeySequence::NativeText)));
    const QString guide = help::userGuidePath();
    QVERIFY2(QFileInfo(guide).isFile(), qPrintable(guide));
    help::showUserGuide(m_window.get());
    QTextBrowser* shown = nullptr;
    QTRY_VERIFY((shown = m_window->findChild<QTextBrowser*>()) != nullptr);
    QVERIFY(shown->toPlainText().contains(QStringLiteral("Import documents")));
    shown->window()->close();
  }

  void hiddenPanelsTurnTelemetryOff() {
    QVERIFY(m_window->client()->telemetryEnabled());
    QAction* highlights = nullptr;
    for (QAction* a : m_window->findChildren<QAction*>())
      if (a->text().contains(QStringLiteral("Highlight"))) highlights = a;
    QVERIFY(highlights);
    m_window->heatmapDock()->hide();
    m_window->timelineDock()->hide();
    QVERIFY(m_window->client()->telemetryEnabled());  // the highlights still want it
    highlights->setChecked(false);
    QVERIFY(!m_window->client()->telemetryEnabled());
    highlights->setChecked(true);
    m_window->heatmapDock()->show();
    m_window->timelineDock()->show();
    QVERIFY(m_window->client()->telemetryEnabled());
  }

  void screenshotsOfSearchAndSettings() {
    if (screenshotDir().isEmpty()) QSKIP("FKV_SCREENSHOT_DIR is not set");
    m_window->documentView()->setSearchText(QStringLiteral("lantern"));
    shoot(m_window->centralWidget(), QStringLiteral("search.png"));
    m_window->documentView()->setSearchText(QString());
    SettingsDialog dialog(m_window->settings(), m_window.get());
    dialog.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dialog));
    shoot(&dialog, QStringLiteral("settings.png"));
  }

  // Esc during a prefill says "Cancelling…" at once, and the document that was open before comes back (from its
  // saved KV) instead of leaving the window empty.
  void cancellingAnOpenKeepsThePreviousDocument() {
    QCOMPARE(m_window->openDocumentId(), m_docId);
    const QString path = fkvtest::tempDir() + QStringLiteral("/second-report.txt");
    QByteArray text = "Second report\n\n";
    for (int i = 0; i < 250; ++i) text += "Section " + QByteArray::number(i) + " lists the stores and the tides. ";
    fkvtest::writeFile(path, text);
    const int previousTurns = m_window->chatModel()->rowCount();
    QVERIFY(previousTurns > 0);
    bool asked = false;
    int turnsDuringOpen = -1;
    QString shownAtOnce;
    const QMetaObject::Connection c =
        connect(m_window->client(), &EngineClient::openProgress, this, [&](quint64, const OpenProgress& p) {
          if (asked || p.stage != fkv::Stage::prefill || p.done == 0) return;
          asked = true;
          turnsDuringOpen = m_window->chatModel()->rowCount();
          m_window->stop();
          shownAtOnce = m_window->prefillProgress()->statusText();
        });
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    m_watchdog.restart();
    m_window->importAndOpen({path});
    QTRY_VERIFY_WITH_TIMEOUT(asked, kTimeoutMs);
    disconnect(c);
    QCOMPARE(shownAtOnce, QStringLiteral("Cancelling…"));
    QCOMPARE(turnsDuringOpen, 0);  // the chat followed the document being opened
    QTRY_VERIFY_WITH_TIMEOUT(ready.count() == 1, kTimeoutMs);
    QCOMPARE(m_window->chatModel()->rowCount(), previousTurns);  // and came back with the previous document
    QCOMPARE(ready.at(0).at(0).toLongLong(), m_docId);
    QCOMPARE(m_window->openDocumentId(), m_docId);
    QCOMPARE(m_window->openedDocument().doc.kv_source, fkv::KvSource::snapshot);
    QVERIFY(!m_window->chatView()->isErrorVisible());  // a cancel is not a failure
    verifyEventLoopKeptUp();
  }

  // The open cancelled above kept its work: the library lists it part done, and opening it again resumes the
  // prefill where it stopped, the progress bar starting there and saying so. Then the first document comes back.
  void aCancelledOpenResumesWhereItStopped() {
    const QString path = fkvtest::tempDir() + QStringLiteral("/second-report.txt");
    LibraryModel* library = m_window->libraryModel();
    const auto partRow = [library] {
      for (int r = 0; r < library->rowCount(); ++r)
        if (library->index(r, LibraryModel::KvStateColumn).data().toString().startsWith(QStringLiteral("prefill ")))
          return r;
      return -1;
    };
    QTRY_VERIFY(partRow() >= 0);
    QVERIFY(library->index(partRow(), LibraryModel::KvStateColumn).data(Qt::ToolTipRole).toString().contains(
        QStringLiteral("resumes")));
    qint64 firstDone = -1;
    QString firstText;
    const QMetaObject::Connection c =
        connect(m_window->client(), &EngineClient::openProgress, this, [&](quint64, const OpenProgress& p) {
          if (firstDone >= 0 || p.stage != fkv::Stage::prefill) return;
          firstDone = p.done;
          firstText = m_window->prefillProgress()->statusText();
        });
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    m_watchdog.restart();
    m_window->importAndOpen({path});
    QTRY_VERIFY_WITH_TIMEOUT(ready.count() == 1, kTimeoutMs);
    disconnect(c);
    QVERIFY2(firstDone > 0, qPrintable(QString::number(firstDone)));
    QVERIFY2(firstText.contains(QStringLiteral("resumed at %1").arg(QLocale().toString(firstDone))),
             qPrintable(firstText));
    QCOMPARE(m_window->openedDocument().doc.resumed_tokens, firstDone);
    QCOMPARE(m_window->openedDocument().doc.kv_source, fkv::KvSource::prefill);
    QTRY_VERIFY(partRow() < 0);
    verifyEventLoopKeptUp();

    QSignalSpy back(m_window.get(), &MainWindow::documentReady);
    m_window->openDocument(m_docId);
    QTRY_VERIFY_WITH_TIMEOUT(back.count() == 1, kTimeoutMs);
    QCOMPARE(m_window->openDocumentId(), m_docId);
  }

  // A document longer than the context: the refusal is shown whole in the chat pane, in grouped numbers, and stays
  // until it is dismissed (it used to flash in the status bar, cut off, for a few seconds).
  void aTooLongDocumentIsExplainedWhereTheUserLooks() {
    const QString path = fkvtest::tempDir() + QStringLiteral("/long-report.txt");
    QByteArray text = "Long report\n\n";
    for (int i = 0; i < 6000; ++i) text += "The committee reviewed item " + QByteArray::number(i) + " and moved on. ";
    fkvtest::writeFile(path, text);
    m_watchdog.restart();
    m_window->importAndOpen({path});
    ChatView* chat = m_window->chatView();
    QTRY_VERIFY_WITH_TIMEOUT(chat->isErrorVisible(), kTimeoutMs);
    const QString message = chat->errorText();
    QVERIFY2(message.contains(QStringLiteral("tokens with its prompt; the context holds ")) &&
                 message.contains(QLocale(QLocale::English).toString(settingsFor().nCtx)) &&
                 message.contains(QStringLiteral("open a shorter document")),
             qPrintable(message));
    // The library row says so too, with the count, and keeps saying it after the message is dismissed.
    LibraryModel* library = m_window->libraryModel();
    const auto refusedRow = [library] {
      for (int r = 0; r < library->rowCount(); ++r) {
        if (library->index(r, LibraryModel::KvStateColumn).data().toString() == QStringLiteral("too long for this model"))
          return r;
      }
      return -1;
    };
    QTRY_VERIFY(refusedRow() >= 0);
    const int row = refusedRow();
    const qint64 tokens =
        QLocale().toLongLong(library->index(row, LibraryModel::TokensColumn).data().toString());
    QVERIFY2(tokens > settingsFor().nCtx, qPrintable(QString::number(tokens)));
    QVERIFY(message.contains(QLocale(QLocale::English).toString(tokens)));
    QVERIFY(library->index(row, LibraryModel::KvStateColumn).data(Qt::ToolTipRole).toString().contains(
        QStringLiteral("context size")));
    QTest::qWait(300);  // a status-bar message would be gone by now on a slow machine; this stays
    QVERIFY(chat->isErrorVisible());
    // The document that was being read comes back (from its saved KV), and the message stays through it.
    QTRY_VERIFY_WITH_TIMEOUT(m_window->openDocumentId() == m_docId && chat->state() == ChatView::State::Ready,
                             kTimeoutMs);
    QCOMPARE(m_window->openedDocument().doc.kv_source, fkv::KvSource::snapshot);
    QVERIFY(chat->isErrorVisible());
    shoot(m_window.get(), QStringLiteral("too-long.png"));
    QTest::mouseClick(chat->dismissErrorButton(), Qt::LeftButton);
    QVERIFY(!chat->isErrorVisible());
    verifyEventLoopKeptUp();
  }

  void reopensFromTheSnapshotInANewWindow() {
    m_window->close();
    m_window.reset();
    newWindow();
    QSignalSpy progress(m_window->client(), &EngineClient::openProgress);
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    m_window->openDocument(m_docId);
    QTRY_VERIFY_WITH_TIMEOUT(ready.count() == 1, kTimeoutMs);
    QCOMPARE(m_window->openedDocument().doc.kv_source, fkv::KvSource::snapshot);
    for (const QList<QVariant>& call : progress)
      QVERIFY(call.at(1).value<OpenProgress>().stage != fkv::Stage::prefill);
    QCOMPARE(m_window->chatModel()->rowCount(), 4);  // both questions and answers came back
    // ... with the stopped answer's mark and the first answer's citations.
    QCOMPARE(m_window->chatModel()->index(3, 0).data(ChatModel::StopReasonRole).toString(),
             QStringLiteral("cancelled"));
    QVERIFY(ChatTurnDelegate::displayText(m_window->chatModel()->index(3, 0)).endsWith(QStringLiteral("(stopped)")));
    QVERIFY(!m_window->chatModel()->index(1, 0).data(ChatModel::CitationsRole).value<QVector<fkv::Citation>>()
                 .isEmpty());
    QCOMPARE(m_window->chatView()->state(), ChatView::State::Ready);
  }

  // A document's chats: a new chat joins the list, the older one can be shown again (with its marks), renamed, and
  // a chat deleted after the user confirms.
  void chatsAreListedOpenedRenamedAndDeleted() {
    ChatView* view = m_window->chatView();
    ChatModel* chat = m_window->chatModel();
    QTRY_COMPARE(view->chats().size(), 1);
    const qint64 older = chat->chatId();
    QVERIFY(older > 0);
    QCOMPARE(view->currentChat(), older);
    QVERIFY(view->chatPicker()->currentText().contains(QStringLiteral("4 messages")));
    m_watchdog.restart();

    emit view->newChatRequested();
    QCOMPARE(view->currentChat(), qint64(0));
    QCOMPARE(view->chatPicker()->itemText(0), QStringLiteral("New chat"));
    QSignalSpy done(m_window.get(), &MainWindow::answerDone);
    typeQuestion(QStringLiteral("Which record mentions the tower?"));
    QTRY_VERIFY_WITH_TIMEOUT(done.count() == 1, kTimeoutMs);
    QTRY_COMPARE(view->chats().size(), 2);
    const qint64 newer = chat->chatId();
    QVERIFY(newer > 0 && newer != older);
    QCOMPARE(view->currentChat(), newer);

    // Delete the new chat: nothing happens until the user says yes.
    view->deleteChatAction()->trigger();
    QMessageBox* box = nullptr;
    QTRY_VERIFY((box = view->findChild<QMessageBox*>(QStringLiteral("deleteChatDialog"))) != nullptr);
    QVERIFY(box->text().contains(QStringLiteral("2 messages")));
    QCOMPARE(view->chats().size(), 2);
    QTest::mouseClick(box->button(QMessageBox::Yes), Qt::LeftButton);
    QTRY_COMPARE(view->chats().size(), 1);
    QCOMPARE(chat->rowCount(), 0);
    QCOMPARE(view->currentChat(), qint64(0));

    // Show the older chat again, with its stopped answer's mark.
    const int olderRow = view->chatPicker()->findData(older);
    QVERIFY(olderRow >= 0);
    view->chatPicker()->setCurrentIndex(olderRow);
    emit view->chatPicker()->activated(olderRow);
    QTRY_COMPARE(chat->rowCount(), 4);
    QCOMPARE(chat->chatId(), older);
    QCOMPARE(chat->index(3, 0).data(ChatModel::StopReasonRole).toString(), QStringLiteral("cancelled"));

    // Rename it.
    view->renameChatAction()->trigger();
    QInputDialog* rename = nullptr;
    QTRY_VERIFY((rename = view->findChild<QInputDialog*>(QStringLiteral("renameChatDialog"))) != nullptr);
    rename->setTextValue(QStringLiteral("Lantern records"));
    rename->accept();
    QTRY_VERIFY(view->chatPicker()->currentText().startsWith(QStringLiteral("Lantern records")));
    QCOMPARE(view->currentChat(), older);
    verifyEventLoopKeptUp();
    // The chat list costs no room a small screen needs: the window still goes down to 1024x700.
    m_window->resize(1024, 700);
    QTRY_COMPARE(m_window->size(), QSize(1024, 700));
    QTest::qWait(100);  // the layout requests the resize posted (the chat buttons fold into two rows)
    shoot(m_window.get(), QStringLiteral("narrow-window.png"));
    m_window->resize(1400, 900);
  }

  // With the context size on automatic, a document past the model's trained window (4,096 tokens for the synthetic
  // model) opens as context memory: the memory panel says so, and the chat answers about it, with the event loop kept
  // up through the prefill and the answer.
  void aDocumentPastTheWindowOpensAsContextMemory() {
    if (useRealModel()) QSKIP("the synthetic model's small window keeps this short");
    DeskSettings s = settingsFor();
    s.nCtx = 0;
    QSignalSpy loaded(m_window->client(), &EngineClient::modelLoaded);
    m_window->applySettings(s);
    QTRY_VERIFY_WITH_TIMEOUT(!loaded.isEmpty() && m_window->hasModel(), kTimeoutMs);
    const QString path = fkvtest::tempDir() + QStringLiteral("/harbour-almanac.md");
    writeDocument(path, 600);
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    m_watchdog.restart();
    m_window->importAndOpen({path});
    // The model reload reopens the document that was open before; on a busy machine its documentReady can come
    // after the spy was made, so the wait is for this document (past the window) being the one ready.
    QTRY_VERIFY_WITH_TIMEOUT(!ready.isEmpty() && m_window->chatView()->state() == ChatView::State::Ready &&
                                 m_window->openedDocument().doc.n_tokens > 4096,
                             kTimeoutMs);
    QVERIFY(!m_window->chatView()->isErrorVisible());
    QTRY_VERIFY2(m_window->memoryPanel()->rowText(MemoryPanel::Tier::Context).contains(QStringLiteral("context memory")),
                 qPrintable(m_window->memoryPanel()->rowText(MemoryPanel::Tier::Context)));
    QSignalSpy done(m_window.get(), &MainWindow::answerDone);
    typeQuestion(QStringLiteral("What does record 7 say?"));
    QTRY_VERIFY_WITH_TIMEOUT(done.count() == 1, kTimeoutMs);
    QVERIFY(!m_window->chatView()->isErrorVisible());
    verifyEventLoopKeptUp();
    m_window->applySettings(settingsFor());
  }

  void cleanupTestCase() { m_window.reset(); }
};

QTEST_MAIN(TestMainWindow)
#include "test_main_window.moc"
