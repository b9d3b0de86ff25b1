// The desktop views fed synthetic data, one at a time: heatmap colours, cells and tooltips; the recall timeline's
// scrolling over a model that drops old steps; page -> span -> text mapping and search in the document view; settings
// validation and the dialog; the chat pane's keys, states and buttons, and its first-run text; prefill progress;
// memory tiers; the library pane's drops, selection and delete.
#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFont>
#include <QFileInfo>
#include <QHelpEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QLocale>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollBar>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTableView>
#include <QTest>
#include <QToolTip>
#include <QTreeWidget>
#include <QUrl>
#include <cmath>
#include <fstream>

#include "chat_model.h"
#include "chat_view.h"
#include "document_view.h"
#include "library_model.h"
#include "library_pane.h"
#include "memory_panel.h"
#include "model/synthetic.h"
#include "model_guide.h"
#include "prefill_progress.h"
#include "recall_timeline.h"
#include "retrieval_heatmap.h"
#include "settings_dialog.h"
#include "store/library.h"
#include "support/test_models.h"
#include "support/test_paths.h"
#include "timeline_model.h"

namespace {

TelemetryFrame heatFrame() {
  TelemetryFrame f;
  f.policy = QStringLiteral("freekv");
  f.nLayers = 4;
  f.nKvHeads = 2;
  f.lastStep = 41;
  for (int i = 0; i < 8; ++i) {
    f.correctedNow.append(i == 5 ? 1 : 0);
    f.cosineNow.append(i == 3 ? std::nanf("") : 0.5f + 0.05f * float(i));
    f.correctionRate.append(float(i) / 7.0f);
  }
  return f;
}

QVector<StepRecord> steps(qint64 first, int n) {
  QVector<StepRecord> out;
  for (int i = 0; i < n; ++i) {
    StepRecord s;
    s.step = first + i;
    s.pages_selected = 40 + int(s.step % 7);
    s.pages_reused = 6;
    s.pages_recalled = int(s.step % 3);
    s.bytes_recalled = quint64(s.pages_recalled) * 65536;
    s.select_s = (0.25 * double(s.step % 4)) / 1000.0;
    out.append(s);
  }
  return out;
}

// 64 tokens of prompt head, then a document in two spans of 32 and 32 tokens; page size 16.
QSharedPointer<const fkv::DocumentContent> content() {
  auto c = QSharedPointer<fkv::DocumentContent>::create();
  c->text =
      "Chapter one: the harbour kept its lantern lit for the night boats.\n"  // 67 bytes
      "Chapter two: a needle in the orchard, é and 😀, then NEEDLE again. needle.";
  const int64_t split = 67;
  c->spans = {{64, 96, 0, split}, {96, 128, split, int64_t(c->text.size())}};
  c->sections = {{true, 0, "Page 1", 0}, {true, 0, "Page 2", split}};
  c->page_size = 16;
  return c;
}

}  // namespace

class TestWidgets : public QObject {
  Q_OBJECT

 private slots:
  void heatmapColoursCellsAndTooltips() {
    RetrievalHeatmap map;
    map.resize(400, 200);
    map.setFrame(heatFrame());
    QCOMPARE(map.layerCount(), 4);
    QCOMPARE(map.headCount(), 2);
    // The ramp goes from calm (blue > red) to hot (red > blue), and the fill follows the rate.
    QVERIFY(RetrievalHeatmap::rateColor(0.f).blue() > RetrievalHeatmap::rateColor(0.f).red());
    QVERIFY(RetrievalHeatmap::rateColor(1.f).red() > RetrievalHeatmap::rateColor(1.f).blue());
    QCOMPARE(map.cellColor(0, 0), RetrievalHeatmap::rateColor(0.f));
    QCOMPARE(map.cellColor(3, 1), RetrievalHeatmap::rateColor(1.f));
    QVERIFY(map.cellColor(0, 0) != map.cellColor(3, 1));
    QVERIFY(map.correctedNow(2, 1));  // index 5 = layer 2, head 1
    QVERIFY(!map.correctedNow(2, 0));
    for (int layer = 0; layer < 4; ++layer) {
      for (int head = 0; head < 2; ++head) {
        int l = -1, h = -1;
        QVERIFY(map.cellAt(map.cellRect(layer, head).center(), &l, &h));
        QCOMPARE(l, layer);
        QCOMPARE(h, head);
      }
    }
    const QString tip = map.cellToolTip(2, 1);
    QVERIFY2(tip.contains(QStringLiteral("0.750")) && tip.contains(QStringLiteral("yes")), qPrintable(tip));
    QVERIFY(map.cellToolTip(1, 1).contains(QStringLiteral("not checked")));  // NaN cosine
    // A hover really shows it.
    map.show();
    QVERIFY(QTest::qWaitForWindowExposed(&map));
    const QPoint at = map.cellRect(2, 1).center();
    QHelpEvent help(QEvent::ToolTip, at, map.mapToGlobal(at));
    QApplication::sendEvent(&map, &help);
    QTRY_COMPARE(QToolTip::text(), tip);
    // A frame whose grids do not match its dimensions changes nothing.
    TelemetryFrame bad = heatFrame();
    bad.nLayers = 5;
    map.setFrame(bad);
    QCOMPARE(map.layerCount(), 4);
    int l = 0, h = 0;
    QVERIFY(!map.cellAt(QPoint(1, 1), &l, &h));
  }

  void timelineFollowsAndKeepsTheReadersPlace() {
    TimelineModel model;
    QAbstractItemModelTester tester(&model);
    model.setCapacity(120);
    RecallTimeline view;
    view.setModel(&model);
    view.setBarWidth(5);
    view.resize(300, 160);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    model.appendSteps(steps(0, 20));  // fits: nothing to scroll
    QCOMPARE(view.horizontalScrollBar()->maximum(), 0);
    model.appendSteps(steps(20, 200));  // the model keeps the last 120
    QCOMPARE(view.stepCount(), 120);
    QCOMPARE(view.stepAt(0).step, qint64(100));
    QVERIFY(view.isFollowing());
    QCOMPARE(view.horizontalScrollBar()->value(), view.horizontalScrollBar()->maximum());
    QVERIFY(view.horizontalScrollBar()->maximum() > 0);
    // The reader scrolls back into the middle; new steps push old ones out but the same steps stay in view.
    view.horizontalScrollBar()->setValue(view.horizontalScrollBar()->maximum() / 2);
    QVERIFY(!view.isFollowing());
    const qint64 first = view.stepAt(view.firstVisibleIndex()).step;
    model.appendSteps(steps(220, 10));
    QCOMPARE(view.stepAt(view.firstVisibleIndex()).step, first);
    QVERIFY(!view.isFollowing());
    // The end key goes back to following.
    QTest::keyClick(&view, Qt::Key_End);
    QVERIFY(view.isFollowing());
    model.appendSteps(steps(230, 5));
    QCOMPARE(view.horizontalScrollBar()->value(), view.horizontalScrollBar()->maximum());
    const int last = view.stepCount() - 1;
    const QString tip = view.stepToolTip(last);
    QVERIFY2(tip.contains(QStringLiteral("Step 234")) && tip.contains(QStringLiteral("Stall: 0.50 ms")) &&
                 !tip.contains(QStringLiteral("page file")),
             qPrintable(tip));
    // A step that read the saved KV from its page file (the disk tier) says so apart from the host recalls.
    QVector<StepRecord> disk = steps(235, 1);
    disk[0].bytes_from_file = 3 << 20;
    disk[0].file_wait_s = 0.00125;
    model.appendSteps(disk);
    const QString diskTip = view.stepToolTip(view.stepCount() - 1);
    QVERIFY2(diskTip.contains(QStringLiteral("page file")) && diskTip.contains(QStringLiteral("waited 1.25 ms")),
             qPrintable(diskTip));
    QCOMPARE(view.indexAt(QPoint(view.viewport()->width() - 1, 20)), last);
    model.clear();
    QCOMPARE(view.stepCount(), 0);
    QVERIFY(view.isFollowing());
  }

  void pagesMapThroughSpansToBytes() {
    const auto c = content();
    // Page 4 = positions [64, 80): the first half of span 0 -> bytes [0, 33).
    QVector<DocumentRange> r = pageByteRanges(*c, {4}, {0.5f});
    QCOMPARE(r.size(), 1);
    QCOMPARE(r[0].begin, qint64(0));
    QCOMPARE(r[0].end, qint64(33));
    // Pages 5 and 6 touch across the span edge and merge; the larger weight wins. Pages 0..3 are the prompt head.
    r = pageByteRanges(*c, {6, 0, 5, 3}, {0.25f, 1.f, 0.75f, 1.f});
    QCOMPARE(r.size(), 1);
    QCOMPARE(r[0].begin, qint64(33));
    QCOMPARE(r[0].end, qint64(67 + (qint64(c->text.size()) - 67) / 2));
    QCOMPARE(r[0].weight, 0.75f);
    QVERIFY(pageByteRanges(*c, {100}, {}).isEmpty());  // past the document: the question's tokens
  }

  void utf8PositionsMatchQString() {
    std::string text;
    for (int i = 0; i < 200; ++i) text += (i % 3 == 0) ? "é" : (i % 5 == 0) ? "😀" : "ab";
    const Utf8PositionMap map(text);
    for (size_t b = 0; b <= text.size(); ++b) {
      size_t end = b;  // an offset inside a character counts that character
      while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
      QCOMPARE(map.toUtf16(qint64(b)), int(QString::fromUtf8(text.data(), qsizetype(end)).size()));
    }
    QCOMPARE(map.toUtf16(-5), 0);
    QCOMPARE(map.toUtf16(1 << 20), int(QString::fromStdString(text).size()));
  }

  void documentViewHighlightsSearchesAndScrolls() {
    DocumentView view;
    view.resize(700, 400);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    const auto c = content();
    view.setContent(c, QStringLiteral("Harbour"));
    QCOMPARE(view.outline()->topLevelItemCount(), 2);
    // Page 7 = positions [112, 128): the second half of span 1, which holds the multi-byte characters before it.
    view.setRetrievedPages({7}, {1.f});
    QCOMPARE(view.passages().size(), 1);
    const std::string& t = c->text;
    const size_t half = 67 + (t.size() - 67) / 2;
    QCOMPARE(view.passageText(0), QString::fromStdString(t.substr(half)));
    QCOMPARE(view.minimap()->passageMarks().size(), 1);

    view.setSearchText(QStringLiteral("needle"));
    QCOMPARE(view.matchCount(), 3);  // case-insensitive
    QCOMPARE(view.textEdit()->textCursor().selectedText().toLower(), QStringLiteral("needle"));
    const int first = view.currentMatch();
    view.findNext();
    view.findNext();
    view.findNext();
    QCOMPARE(view.currentMatch(), first);  // wrapped around
    view.findPrevious();
    QCOMPARE(view.currentMatch(), (first + 2) % 3);
    view.setSearchText(QStringLiteral("absent"));
    QCOMPARE(view.matchCount(), 0);
    QVERIFY(!view.findNext());

    // Clicking the passage's mark on the minimap goes to the passage; the outline goes to its section.
    const DocumentMinimap::Mark mark = view.minimap()->passageMarks().first();
    QTest::mouseClick(view.minimap(), Qt::LeftButton, {}, QPoint(4, view.minimap()->yOf(mark.from) + 1));
    QCOMPARE(view.currentPassage(), 0);
    QCOMPARE(view.textEdit()->textCursor().position(), int(view.passages()[0].begin));
    QVERIFY(view.sectionAt(int(view.passages()[0].begin)).contains(QStringLiteral("Page 2")));
    QTreeWidgetItem* page1 = view.outline()->topLevelItem(0);
    emit view.outline()->itemClicked(page1, 0);
    QCOMPARE(view.textEdit()->textCursor().position(), 0);
    view.setRetrievedPages({}, {});
    QVERIFY(view.passages().isEmpty());
    view.clearContent();
    QVERIFY(!view.hasContent());
  }

  void settingsValidation() {
    DeskSettings s;
    QVERIFY2(s.validate().isEmpty(), qPrintable(s.validate().join('\n')));
    s.sinkTokens = 500;
    QStringList p = s.validate();
    QCOMPARE(p.size(), 1);
    QVERIFY2(p[0].contains(QStringLiteral("whole pages")) && p[0].contains(QStringLiteral("480 or 512")),
             qPrintable(p[0]));
    s = DeskSettings{};
    s.recentTokens = 0;
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("at least one page")));
    s = DeskSettings{};
    s.correctionTau = 1.5;
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("between -1 and 1, found 1.5")));
    s = DeskSettings{};
    s.pageSize = 0;
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("page size")));
    s = DeskSettings{};
    s.modelPath = fkvtest::tempDir() + QStringLiteral("/missing.gguf");
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("does not exist")));
    s = DeskSettings{};
    s.policy = QStringLiteral("magic");
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("Unknown retrieval policy")));
    s = DeskSettings{};
    s.prefill = QStringLiteral("sparse");
    QVERIFY(s.validate().join(' ').contains(QStringLiteral("Unknown prefill \"sparse\"")));
    // Round trip through QSettings, and into engine options.
    DeskSettings d;
    d.pageSize = 16;
    d.sinkTokens = 64;
    d.chatTemplate = QStringLiteral("llama2");
    d.prefill = QStringLiteral("retrieval");
    QVERIFY(!d.sameModelLoad(DeskSettings{}));
    QSettings store(fkvtest::tempDir() + QStringLiteral("/settings.ini"), QSettings::IniFormat);
    d.save(store);
    const DeskSettings back = DeskSettings::load(store);
    QVERIFY(back.sameModelLoad(d));
    QCOMPARE(back.sinkTokens, 64);
    QCOMPARE(back.modelOptions().page_size, 16);
    QCOMPARE(back.modelOptions().chat_template, std::string("llama2"));
    QCOMPARE(back.modelOptions().prefill, fkv::Prefill::retrieval);  // a prefill change reloads the model
    QCOMPARE(back.retrievalOptions().sink_tokens, 64);
  }

  // A document answer is a few sentences: the default length stays in 128..256 tokens and reaches the engine.
  void defaultAnswersAreShort() {
    const DeskSettings d;
    QVERIFY(d.maxAnswerTokens >= 128 && d.maxAnswerTokens <= 256);
    QCOMPARE(d.generationOptions().max_tokens, d.maxAnswerTokens);
    QVERIFY(d.validate().isEmpty());
  }

  // A context past the model's training is allowed (a user may want it) but said plainly, with its memory cost.
  void settingsWarnPastTheTrainedContext() {
    const QString model = fkvtest::tempDir() + QStringLiteral("/trained-4k.gguf");
    const QString written = fkvtest::writeModel(fkvtest::llamaSpec(3, 4096), model);
    QVERIFY2(written.isEmpty(), qPrintable(written));
    DeskSettings s;
    s.modelPath = model;
    s.nCtx = 400000;
    QVERIFY2(s.validate().isEmpty(), qPrintable(s.validate().join(' ')));  // a warning, not a refusal
    const QString w = s.warnings().join(' ');
    QVERIFY2(w.contains(QLocale().toString(400000)) && w.contains(QLocale().toString(4096)) &&
                 w.contains(QStringLiteral("trained for")) && w.contains(QStringLiteral("of memory")),
             qPrintable(w));
    s.nCtx = 4096;
    QVERIFY(s.warnings().isEmpty());
    s.nCtx = 0;  // the model's own
    QVERIFY(s.warnings().isEmpty());
    s.nCtx = 65536;
    SettingsDialog dialog(s);
    QVERIFY(dialog.canAccept());
    QVERIFY(dialog.warningText().contains(QStringLiteral("trained for")));
  }

  void settingsDialogRefusesInvalidValues() {
    SettingsDialog dialog(DeskSettings{});
    QVERIFY(dialog.canAccept());
    dialog.sinkSpin()->setValue(500);
    QVERIFY(!dialog.canAccept());
    QVERIFY(dialog.problemText().contains(QStringLiteral("480 or 512")));
    dialog.accept();
    QCOMPARE(dialog.result(), int(QDialog::Rejected));  // not accepted while invalid
    dialog.sinkSpin()->setValue(512);
    dialog.recentSpin()->setValue(16);
    QVERIFY(dialog.problemText().contains(QStringLiteral("at least one page")));
    dialog.pageSizeSpin()->setValue(16);  // 16 is a whole page of 16
    QVERIFY2(dialog.canAccept(), qPrintable(dialog.problemText()));
    QCOMPARE(dialog.settings().pageSize, 16);
    dialog.policyCombo()->setCurrentText(QStringLiteral("full"));
    QVERIFY(!dialog.tauSpin()->isEnabled());
  }

  void chatViewKeysStatesAndButtons() {
    ChatModel model;
    QAbstractItemModelTester tester(&model);
    ChatView view;
    view.setModel(&model);
    view.resize(400, 500);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QVERIFY(view.isBannerVisible());
    QVERIFY(view.bannerText().contains(QStringLiteral("Settings")));
    QVERIFY(!view.sendButton()->isEnabled());
    QSignalSpy settings(&view, &ChatView::settingsRequested);
    view.setState(ChatView::State::Ready);
    QVERIFY(!view.isBannerVisible());

    QSignalSpy sent(&view, &ChatView::sendRequested);
    view.input()->setFocus();
    QTest::keyClicks(view.input(), QStringLiteral("first line"));
    QTest::keyClick(view.input(), Qt::Key_Return, Qt::ShiftModifier);
    QTest::keyClicks(view.input(), QStringLiteral("second"));
    QCOMPARE(sent.count(), 0);
    QCOMPARE(view.input()->toPlainText(), QStringLiteral("first line\nsecond"));
    QTest::keyClick(view.input(), Qt::Key_Return);
    QCOMPARE(sent.count(), 1);
    QCOMPARE(sent.at(0).at(0).toString(), QStringLiteral("first line\nsecond"));
    QVERIFY(view.input()->toPlainText().isEmpty());

    model.appendUser(QStringLiteral("first line\nsecond"));
    model.beginAssistant();
    view.setState(ChatView::State::Answering);
    model.appendPiece(QStringLiteral("The harbour"));
    QVERIFY(view.stopButton()->isEnabled());
    QVERIFY(!view.regenerateButton()->isEnabled());
    const QModelIndex answer = model.index(1, 0);
    QVERIFY(ChatTurnDelegate::displayText(answer).startsWith(QStringLiteral("The harbour")));
    QVERIFY(ChatTurnDelegate::displayText(answer).contains(QStringLiteral("▍")));
    QSignalSpy stop(&view, &ChatView::stopRequested);
    QTest::mouseClick(view.stopButton(), Qt::LeftButton);
    QCOMPARE(stop.count(), 1);
    model.finishAssistant(QStringLiteral("cancelled"));
    view.setState(ChatView::State::Ready);
    QVERIFY(ChatTurnDelegate::displayText(answer).contains(QStringLiteral("(stopped)")));
    QVERIFY(view.regenerateButton()->isEnabled());
    QCOMPARE(view.copyText(), QStringLiteral("The harbour"));
    view.setState(ChatView::State::NoModel);
    QVERIFY(view.settingsButton()->isVisible());
    QTest::mouseClick(view.settingsButton(), Qt::LeftButton);
    QCOMPARE(settings.count(), 1);
  }

  // A reasoning model's "<think>" block is shown apart from the answer (grey, above it) and left out of Copy.
  void reasoningIsShownApartFromTheAnswer() {
    const AnswerParts plain = AnswerParts::split(QStringLiteral("Just an answer."));
    QVERIFY(plain.reasoning.isEmpty() && !plain.thinking);
    QCOMPARE(plain.answer, QStringLiteral("Just an answer."));
    const AnswerParts open = AnswerParts::split(QStringLiteral("<think>\nThe ledger says"));
    QVERIFY(open.thinking);
    QCOMPARE(open.reasoning, QStringLiteral("The ledger says"));
    QVERIFY(open.answer.isEmpty());
    // A template that opens the block in the prompt leaves only its end in the answer.
    const AnswerParts tail = AnswerParts::split(QStringLiteral("check the dates\n</think>\n\n1887."));
    QCOMPARE(tail.reasoning, QStringLiteral("check the dates"));
    QCOMPARE(tail.answer, QStringLiteral("1887."));

    ChatModel model;
    ChatView view;
    view.setModel(&model);
    view.resize(420, 600);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    model.appendUser(QStringLiteral("<think> is what I typed"));
    model.beginAssistant();
    view.setState(ChatView::State::Answering);
    model.appendPiece(QStringLiteral("<think>\nThe bridge was built"));
    const QModelIndex answer = model.index(1, 0);
    QVERIFY(ChatTurnDelegate::reasoningText(answer).contains(QStringLiteral("The bridge was built ▍")));
    QVERIFY(ChatTurnDelegate::displayText(answer).isEmpty());  // no answer yet
    const int thinkingHeight = view.list()->visualRect(answer).height();
    model.appendPiece(QStringLiteral(" in 1887.\n</think>\n\nIn 1887, after the flood."));
    model.finishAssistant(QStringLiteral("eos"));
    view.setState(ChatView::State::Ready);
    QCOMPARE(ChatTurnDelegate::displayText(answer), QStringLiteral("In 1887, after the flood."));
    QVERIFY(ChatTurnDelegate::reasoningText(answer).contains(QStringLiteral("The bridge was built in 1887.")));
    QTRY_VERIFY(view.list()->visualRect(answer).height() > thinkingHeight);
    QCOMPARE(view.copyText(), QStringLiteral("In 1887, after the flood."));
    // A user's own text is never split.
    QCOMPARE(ChatTurnDelegate::displayText(model.index(0, 0)), QStringLiteral("<think> is what I typed"));
    QVERIFY(ChatTurnDelegate::reasoningText(model.index(0, 0)).isEmpty());
    const QPixmap shot = view.grab();
    QVERIFY(!shot.isNull());
    if (const QString dir = qEnvironmentVariable("FKV_SCREENSHOT_DIR"); !dir.isEmpty()) {
      QVERIFY(shot.save(dir + QStringLiteral("/reasoning.png")));
    }
  }

  // A start with no model set loads the largest installed model that fits (fkv::choose_model; its arithmetic is
  // tested in test_models_folder): here two small synthetic ones, both of which fit.
  void startWithoutSettingsTakesTheLargestInstalledModel() {
    const QByteArray oldData = qgetenv("XDG_DATA_HOME");
    qputenv("XDG_DATA_HOME", (fkvtest::tempDir() + QStringLiteral("/xdg-data")).toUtf8());
    QCOMPARE(ModelGuide::installedDefault(), QString());
    QVERIFY(QDir().mkpath(ModelGuide::modelsFolder()));
    QVERIFY(ModelGuide::modelsFolder().startsWith(fkvtest::tempDir()));
    for (int n_layers : {1, 3}) {
      fkv::SyntheticModelSpec spec;
      spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
      spec.n_layers = n_layers;
      const QString file = ModelGuide::modelsFolder() + QStringLiteral("/layers-%1.gguf").arg(n_layers);
      const fkv::Status st = fkv::write_synthetic_model(spec, file.toStdString());
      QVERIFY2(st.ok(), st.message().c_str());
    }
    QCOMPARE(ModelGuide::installedDefault(), ModelGuide::modelsFolder() + QStringLiteral("/layers-3.gguf"));
    if (oldData.isNull()) {
      qunsetenv("XDG_DATA_HOME");
    } else {
      qputenv("XDG_DATA_HOME", oldData);
    }
  }

  void firstRunBannerSaysWhereModelsGoAndWhichFit() {
    ChatView view;
    view.resize(420, 700);
    view.show();
    QVERIFY(QTest::qWaitForWindowExposed(&view));
    QCOMPARE(view.state(), ChatView::State::NoModel);
    QVERIFY(view.isBannerVisible());
    QVERIFY(view.settingsButton()->isVisible());
    const QString text = view.bannerText();
    QVERIFY(text.contains(QStringLiteral("No model is installed")));
    QVERIFY(text.contains(QStringLiteral("GGUF")));
    QVERIFY2(text.contains(ModelGuide::modelsFolder().toHtmlEscaped()), qPrintable(text));
    QVERIFY(text.contains(QUrl::fromLocalFile(ModelGuide::modelsFolder()).toString(QUrl::FullyEncoded)));
    QVERIFY(text.contains(QStringLiteral("Browse")));
    for (const ModelFit& m : ModelGuide::models()) QVERIFY2(text.contains(m.name), qPrintable(m.name));
    // The arithmetic, against the engine's own figures: Gemma 3 270M keeps 18 layers x 1 KV head x 256 channels of F16
    // keys and values (18,432 bytes per token) and the F16 key summaries in memory (576, half what its page file's f32
    // copy takes: docs/benchmarks.md); at 8k tokens it needs about 0.51 GB, where the benchmark measured 485 MiB.
    const ModelFit& gemma = ModelGuide::models().front();
    QCOMPARE(gemma.kvBytesPerToken(), 18432.0 + 576.0);
    QVERIFY2(std::abs(gemma.memoryGB(8192) - 0.51) < 0.01, qPrintable(QString::number(gemma.memoryGB(8192))));
    QVERIFY(text.contains(QStringLiteral("0.25 GB")) && text.contains(QStringLiteral("0.51 GB")));
    const QList<ModelFit>& models = ModelGuide::models();
    for (qsizetype i = 1; i < models.size(); ++i)  // smallest first, so the reader stops at the first that fits
      QVERIFY(models[i].memoryGB(ModelGuide::kDocumentTokens) > models[i - 1].memoryGB(ModelGuide::kDocumentTokens));
    // Other states carry engine messages: shown as plain text, so a '<' in one stays visible.
    view.setState(ChatView::State::ModelFailed, QStringLiteral("expected <GGUF magic>, found <PK>"));
    QLabel* banner = nullptr;
    for (QLabel* l : view.findChildren<QLabel*>())
      if (l->text() == view.bannerText()) banner = l;
    QVERIFY(banner);
    QCOMPARE(banner->textFormat(), Qt::PlainText);
    QVERIFY(view.bannerText().contains(QStringLiteral("<GGUF magic>")));
    view.setState(ChatView::State::NoModel);
    QCOMPARE(banner->textFormat(), Qt::RichText);
  }

  void prefillProgressShowsRateAndCancels() {
    PrefillProgress bar;
    bar.start(QStringLiteral("Harbour"));
    QVERIFY(bar.isActive());
    OpenProgress p;
    p.stage = fkv::Stage::prefill;
    p.total = 2000;
    bar.setProgress(p);
    p.done = 500;
    p.tokensPerSecond = 250;
    p.secondsLeft = 6;
    bar.setProgress(p);
    const QString text = bar.statusText();
    QVERIFY2(!text.contains(QStringLiteral("resumed")), qPrintable(text));
    QVERIFY2(text.contains(QLocale().toString(500)) && text.contains(QLocale().toString(2000)) &&
                 text.contains(QStringLiteral("250 tokens/s")) && text.contains(QStringLiteral("6 s left")),
             qPrintable(text));
    QCOMPARE(bar.bar()->value() * 4, bar.bar()->maximum());
    QCOMPARE(PrefillProgress::durationText(125), QStringLiteral("2:05"));
    QSignalSpy cancel(&bar, &PrefillProgress::cancelRequested);
    QTest::mouseClick(bar.cancelButton(), Qt::LeftButton);
    QCOMPARE(cancel.count(), 1);
    bar.finish();
    QVERIFY(!bar.isActive() && bar.isHidden());

    // A prefill whose first report is past 0 resumes a stopped one, and says where; the bar starts there.
    bar.start(QStringLiteral("Harbour"));
    p.done = 1024;
    bar.setProgress(p);
    QVERIFY2(bar.statusText().contains(QStringLiteral("resumed at %1").arg(QLocale().toString(1024))),
             qPrintable(bar.statusText()));
    QVERIFY(bar.bar()->value() * 2 > bar.bar()->maximum());
  }

  void importProgressShowsPdfPages() {
    PrefillProgress bar;
    bar.startImport(QStringLiteral("atlas.pdf"));
    QVERIFY(bar.isActive());
    QVERIFY(bar.findChild<QLabel*>()->text().contains(QStringLiteral("Importing atlas.pdf")));
    bar.setProgress(OpenProgress{fkv::Stage::ingest, 30, 120});
    QCOMPARE(bar.statusText(),
             QStringLiteral("Reading page %1 / %2").arg(QLocale().toString(30), QLocale().toString(120)));
    QCOMPARE(bar.bar()->value() * 4, bar.bar()->maximum());
    bar.setProgress(OpenProgress{fkv::Stage::ingest, 0, 0});  // a text file: no pages to count
    QCOMPARE(bar.statusText(), QStringLiteral("Reading the document…"));
  }

  void memoryPanelTiers() {
    MemoryPanel panel;
    ModelSummary model;
    model.backend = QStringLiteral("CPU (AVX2)");
    model.kvBytesPerToken = 1000;
    panel.setModel(model);
    MemoryUse m;
    m.nCtx = 4096;
    m.nTokens = 1024;
    m.hostBytes = 1024 * 1000;
    m.diskBytes = 5 << 20;
    m.budgetTokens = 2048;
    panel.setMemoryUse(m);
    QVERIFY(!panel.hasDeviceTier());
    QVERIFY(panel.rowText(MemoryPanel::Tier::Device).contains(QStringLiteral("CPU backend")));
    QCOMPARE(panel.budget(MemoryPanel::Tier::Host), quint64(4096 * 1000));
    QCOMPARE(panel.used(MemoryPanel::Tier::Context), quint64(1024));
    model.backend = QStringLiteral("CUDA (NVIDIA H100)");
    panel.setModel(model);
    QVERIFY(panel.hasDeviceTier());
    QCOMPARE(panel.budget(MemoryPanel::Tier::Device), quint64(2048 * 1000));
    panel.setStorageCap(8 << 20);
    QVERIFY(panel.rowText(MemoryPanel::Tier::Disk).contains(QStringLiteral("cap")));
    QVERIFY(!panel.rowText(MemoryPanel::Tier::Context).contains(QStringLiteral("context memory")));
    m.nCtx = 340'000;
    m.nCtxTrain = 32'768;
    m.contextMemory = true;
    panel.setMemoryUse(m);
    const QString ctx = panel.rowText(MemoryPanel::Tier::Context);
    QVERIFY2(ctx.contains(QStringLiteral("context memory")) && ctx.contains(QLocale().toString(32'768)), qPrintable(ctx));
    // A saved KV read in place: the host row says how much of it is resident and how much was read from the file.
    QVERIFY(!panel.rowText(MemoryPanel::Tier::Host).contains(QStringLiteral("read in place")));
    m.fileBytes = 3ull << 30;
    m.fileResidentBytes = 256ull << 20;
    m.fileReadBytes = 700ull << 20;
    m.fileWaitS = 0.5;
    panel.setMemoryUse(m);
    const QString host = panel.rowText(MemoryPanel::Tier::Host);
    QVERIFY2(host.contains(QStringLiteral("read in place")) && host.contains(QStringLiteral("resident")) &&
                 host.contains(QStringLiteral("read so far")) && host.contains(QStringLiteral("0.50 s waited")),
             qPrintable(host));
  }

  void libraryPaneDropsSelectsAndDeletes() {
    const QString dir = fkvtest::tempDir();
    const QString txt = dir + QStringLiteral("/notes.txt");
    std::ofstream(txt.toStdString()) << "notes";
    auto mime = std::make_unique<QMimeData>();
    mime->setUrls({QUrl::fromLocalFile(txt), QUrl::fromLocalFile(dir), QUrl::fromLocalFile(dir + "/a.exe"),
                   QUrl(QStringLiteral("https://example.org/x.txt"))});
    QCOMPARE(LibraryPane::importableFiles(mime.get()), QStringList{txt});
    // A text without an extension (a licence, a README) is offered to the engine, which reads what it is.
    const QString licence = dir + QStringLiteral("/LICENSE");
    std::ofstream(licence.toStdString()) << "Permission is granted";
    QMimeData bare;
    bare.setUrls({QUrl::fromLocalFile(licence)});
    QCOMPARE(LibraryPane::importableFiles(&bare), QStringList{licence});
    const QStringList filters = LibraryPane::importFilters();
    QCOMPARE(filters.size(), 2);
    QVERIFY(filters[0].startsWith(QStringLiteral("All supported (")) && filters[0].contains(QStringLiteral("*.pdf")));
    QCOMPARE(filters[1], QStringLiteral("All files (*)"));
    QVERIFY(QFileInfo(LibraryPane::importStartFolder()).isDir());
    QVERIFY(!LibraryPane::importStartFolder().contains(QStringLiteral("/models")));

    const QString db = dir + QStringLiteral("/pane/library.db");
    {
      auto lib = fkv::Library::open(db.toStdString());
      QVERIFY2(lib.ok(), lib.message().c_str());
      fkv::Document doc;
      doc.info.path = txt.toStdString();
      doc.info.content_hash = "hash-notes";
      doc.info.title = "Notes";
      doc.info.format = "txt";
      doc.text = "notes";
      QVERIFY((*lib)->add_document(doc).ok());
    }
    LibraryModel model(db);
    model.refresh();
    LibraryPane pane;
    pane.setModel(&model);
    pane.setConfirmDeletes(false);
    QAbstractItemModelTester proxyTester(pane.table()->model());  // the pane's sorting proxy (it bolds the open one)
    pane.setOpenDocument(model.documentId(0));
    QVERIFY(pane.table()->model()->index(0, 0).data(Qt::FontRole).value<QFont>().bold());
    pane.show();
    QVERIFY(QTest::qWaitForWindowExposed(&pane));
    QCOMPARE(pane.table()->model()->rowCount(), 1);
    const qint64 id = model.documentId(0);
    pane.selectDocument(id);
    QCOMPARE(pane.selectedDocumentId(), id);
    QSignalSpy del(&pane, &LibraryPane::deleteRequested);
    QTest::keyClick(pane.table(), Qt::Key_Delete);
    QCOMPARE(del.count(), 1);
    QCOMPARE(del.at(0).at(0).toLongLong(), id);
    QSignalSpy open(&pane, &LibraryPane::openRequested);
    pane.openSelected();
    QCOMPARE(open.count(), 1);
    QSignalSpy imported(&pane, &LibraryPane::importRequested);
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, mime.get(), Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&pane, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, mime.get(), Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&pane, &drop);
    QCOMPARE(imported.count(), 1);
    QCOMPARE(imported.at(0).at(0).toStringList(), QStringList{txt});
    pane.filterEdit()->setText(QStringLiteral("zzz"));
    QCOMPARE(pane.table()->model()->rowCount(), 0);
    QVERIFY(pane.storageText().contains(QStringLiteral("1 document")));
  }
};

QTEST_MAIN(TestWidgets)
#include "test_widgets.moc"
