// The thin Qt models of the desktop library, each watched by QAbstractItemModelTester while it changes: LibraryModel
// over a library written through fkv::Library (KV states, token counts, stale reasons, rows added and removed),
// ChatModel (streaming turns; the chat the engine worker saves in the library through chat_recorder, restore,
// regenerate), TimelineModel (the last N steps, oldest leaving first), and the desk's state machine (DeskSession).
#include <QAbstractItemModelTester>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTest>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "chat_model.h"
#include "chat_recorder.h"
#include "desk_session.h"
#include "fkv/library.h"
#include "library_model.h"
#include "store/library.h"
#include "support/test_paths.h"
#include "timeline_model.h"

namespace {

fkv::Document makeDocument(const std::string& name, const std::string& format) {
  fkv::Document d;
  d.text = "# " + name + "\n\nSome words about " + name + ".\n";
  d.info.path = "/docs/" + name + "." + format;
  d.info.content_hash = "hash-" + name;
  d.info.title = name;
  d.info.format = format;
  d.info.size_bytes = 2048;
  d.info.n_chars = static_cast<int64_t>(d.text.size());
  d.sections = {fkv::Section{fkv::SectionKind::heading, 1, name, 0}};
  return d;
}

QString cell(const QAbstractItemModel& m, int row, int column, int role = Qt::DisplayRole) {
  return m.data(m.index(row, column), role).toString();
}

StepRecord step(qint64 n) {
  StepRecord s;
  s.step = n;
  s.pages_selected = int(10 + n);
  s.pages_reused = 3;
  s.pages_recalled = 2;
  s.bytes_recalled = 4096;
  s.select_s = (0.25) / 1000.0;
  return s;
}

QVector<StepRecord> steps(qint64 first, int n) {
  QVector<StepRecord> out;
  for (int i = 0; i < n; ++i) out.append(step(first + i));
  return out;
}

}  // namespace

class TestModels : public QObject {
  Q_OBJECT

 private:
  QString m_dbPath;
  std::unique_ptr<fkv::Library> m_lib;
  int64_t m_modelId = 0;

  // A ready snapshot of `n_tokens` for the document, as the engine would save it.
  int64_t addSnapshot(int64_t documentId, int64_t nTokens) {
    fkv::SnapshotKey key;
    key.document_id = documentId;
    key.model_id = m_modelId;
    key.prompt_format = "llama2";
    key.page_size = 32;
    key.dtype = "f16";
    fkv::SnapshotRecord r = m_lib->begin_snapshot(key);
    const std::string path = m_lib->page_file_path(r);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << std::string(1000, 'k');
    r.n_tokens = nTokens;
    r.bytes = 1000;
    auto id = m_lib->put_snapshot(r);
    if (!id.ok()) qFatal("put_snapshot: %s", id.message().c_str());
    return *id;
  }

 private slots:
  void initTestCase() {
    m_dbPath = fkvtest::tempDir() + QStringLiteral("/models/library.db");
    auto lib = fkv::Library::open(m_dbPath.toStdString());
    QVERIFY2(lib.ok(), lib.message().c_str());
    m_lib = std::move(lib).value();
    auto model = m_lib->upsert_model("fingerprint", "synthetic", "/models/synthetic.gguf", 123);
    QVERIFY2(model.ok(), model.message().c_str());
    m_modelId = *model;
  }

  void libraryModelShowsDocumentsAndKvState() {
    auto a = m_lib->add_document(makeDocument("alpha", "md"));
    auto b = m_lib->add_document(makeDocument("beta", "txt"));
    QVERIFY(a.ok() && b.ok());
    LibraryModel model(m_dbPath);
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(model.rowCount(), 0);  // nothing is read before the first refresh
    model.refresh();
    QVERIFY2(model.lastError().isEmpty(), qPrintable(model.lastError()));
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.columnCount(), int(LibraryModel::ColumnCount));
    const int rowA = model.rowOfDocument(*a);
    QVERIFY(rowA >= 0);
    QCOMPARE(model.documentId(rowA), qint64(*a));
    QCOMPARE(cell(model, rowA, LibraryModel::TitleColumn), QStringLiteral("alpha"));
    QCOMPARE(cell(model, rowA, LibraryModel::FormatColumn), QStringLiteral("md"));
    QVERIFY(!cell(model, rowA, LibraryModel::SizeColumn).isEmpty());
    QCOMPARE(model.data(model.index(rowA, LibraryModel::SizeColumn), LibraryModel::SortRole).toLongLong(), 2048);
    QCOMPARE(cell(model, rowA, LibraryModel::TokensColumn), QString());  // unknown until prefilled
    QCOMPARE(cell(model, rowA, LibraryModel::KvStateColumn), QStringLiteral("needs prefill"));
    QCOMPARE(cell(model, rowA, LibraryModel::LastOpenedColumn), QStringLiteral("never"));
    QCOMPARE(cell(model, rowA, 0, LibraryModel::PathRole), QStringLiteral("/docs/alpha.md"));
    QCOMPARE(model.storageBytes(), 0);

    // A snapshot: ready, with its token count and the storage it takes; values change in place.
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QSignalSpy reset(&model, &QAbstractItemModel::modelReset);
    QSignalSpy storage(&model, &LibraryModel::storageBytesChanged);
    const int64_t snap = addSnapshot(*a, 4321);
    model.refresh();
    QCOMPARE(reset.count(), 0);
    QCOMPARE(changed.count(), 1);
    QCOMPARE(storage.count(), 1);
    QCOMPARE(model.storageBytes(), 1000);
    QCOMPARE(cell(model, rowA, LibraryModel::KvStateColumn), QStringLiteral("ready"));
    QCOMPARE(cell(model, rowA, LibraryModel::KvStateColumn, LibraryModel::KvStateRole), QStringLiteral("ready"));
    QCOMPARE(model.data(model.index(rowA, LibraryModel::TokensColumn), LibraryModel::SortRole).toLongLong(), 4321);
    QVERIFY(cell(model, rowA, LibraryModel::TokensColumn).remove(QRegularExpression(QStringLiteral("\\D"))) ==
            QStringLiteral("4321"));

    // Stale: the reason is the tooltip.
    QVERIFY(m_lib->mark_stale(snap, "the model file changed").ok());
    model.refresh();
    QCOMPARE(cell(model, rowA, LibraryModel::KvStateColumn), QStringLiteral("stale"));
    QVERIFY2(cell(model, rowA, LibraryModel::KvStateColumn, Qt::ToolTipRole).contains("the model file changed"),
             qPrintable(cell(model, rowA, LibraryModel::KvStateColumn, Qt::ToolTipRole)));

    // Refusals: a fixed context too small is "too long for this model", with Settings as the remedy; any other
    // refusal is "refused", its tooltip the engine's reason whole.
    QVERIFY(m_lib->touch_opened(*b, "too long for this model: 9,000 tokens; the context holds 4,096", 9000).ok());
    model.refresh();
    int rowB = model.rowOfDocument(*b);
    QCOMPARE(cell(model, rowB, LibraryModel::KvStateColumn), QStringLiteral("too long for this model"));
    QVERIFY(cell(model, rowB, LibraryModel::KvStateColumn, Qt::ToolTipRole).contains("Raise the context size"));
    const QString capped =
        QStringLiteral("'beta' takes 1,300,000 tokens with its prompt; documents open up to 1,048,576 tokens");
    QVERIFY(m_lib->touch_opened(*b, capped.toStdString(), 1'300'000).ok());
    model.refresh();
    rowB = model.rowOfDocument(*b);
    QCOMPARE(cell(model, rowB, LibraryModel::KvStateColumn), QStringLiteral("refused"));
    const QString tip = cell(model, rowB, LibraryModel::KvStateColumn, Qt::ToolTipRole);
    QVERIFY2(tip.contains(capped) && !tip.contains("Raise the context size"), qPrintable(tip));

    // A prefill stopped part way: the share done, and a tooltip saying the next open resumes it.
    QVERIFY(m_lib->touch_opened(*b).ok());
    fkv::SnapshotKey key;
    key.document_id = *b;
    key.model_id = m_modelId;
    key.prompt_format = "chatml";
    key.page_size = 32;
    key.dtype = "f16";
    auto ck = m_lib->begin_checkpoint(key);
    QVERIFY2(ck.ok(), ck.message().c_str());
    ck->n_tokens = 2500;
    ck->total_tokens = 10000;
    QVERIFY(m_lib->add_checkpoint(*ck).ok());
    model.refresh();
    rowB = model.rowOfDocument(*b);
    QCOMPARE(cell(model, rowB, LibraryModel::KvStateColumn), QStringLiteral("prefill 25% done"));
    QVERIFY2(cell(model, rowB, LibraryModel::KvStateColumn, Qt::ToolTipRole).contains("resumes"),
             qPrintable(cell(model, rowB, LibraryModel::KvStateColumn, Qt::ToolTipRole)));

    // Opening moves a document to the top; deleting one removes its row.
    QVERIFY(m_lib->touch_opened(*b).ok());
    model.refresh();
    QCOMPARE(model.documentId(0), qint64(*b));
    QVERIFY(cell(model, 0, LibraryModel::LastOpenedColumn) != QStringLiteral("never"));
    QVERIFY(m_lib->delete_document(*a).ok());
    model.refresh();
    QCOMPARE(model.rowCount(), 1);
    QCOMPARE(model.rowOfDocument(*a), -1);
    QCOMPARE(model.storageBytes(), 0);
    QVERIFY(m_lib->delete_document(*b).ok());
  }

  void libraryModelReportsAnUnreadableLibrary() {
    const QString notADb = fkvtest::tempDir() + QStringLiteral("/not-a-database.db");
    std::ofstream(notADb.toStdString()) << std::string(4096, 'x');
    LibraryModel model(notADb);
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy errors(&model, &LibraryModel::errorOccurred);
    model.refresh();
    QCOMPARE(errors.count(), 1);
    QVERIFY(!model.lastError().isEmpty());
    QCOMPARE(model.rowCount(), 0);
  }

  // What the engine worker does around an ask (chat_recorder.h): save the question, tell the model the chat's id;
  // after the answer, save it.
  static void saveQuestion(fkv::DocumentLibrary& lib, ChatModel& chat) {
    const ChatSaveTarget t = chat.saveTarget();
    const fkv::Result<qint64> id = chat_recorder::saveQuestion(lib, t.documentId, t.chatId, chat.turns());
    QVERIFY2(id.ok(), id.message().c_str());
    chat.setChatId(t.documentId, *id);
  }
  static void saveAnswer(fkv::DocumentLibrary& lib, const ChatModel& chat) {
    const fkv::Status s = chat_recorder::saveAnswer(lib, chat.chatId(), chat.turns().back());
    QVERIFY2(s.ok(), s.message().c_str());
  }
  static void showLatest(fkv::DocumentLibrary& lib, ChatModel& chat, qint64 documentId) {
    const fkv::Result<QList<ChatSummary>> chats = chat_recorder::list(lib, documentId);
    QVERIFY2(chats.ok(), chats.message().c_str());
    const fkv::Result<SavedChat> saved = chat_recorder::latest(lib, *chats);
    QVERIFY2(saved.ok(), saved.message().c_str());
    chat.show(documentId, *saved);
  }

  void chatModelStreamsAndPersists() {
    auto doc = m_lib->add_document(makeDocument("gamma", "txt"));
    QVERIFY(doc.ok());
    fkv::DocumentLibrary lib(*m_lib);
    ChatModel chat;
    QAbstractItemModelTester tester(&chat, QAbstractItemModelTester::FailureReportingMode::QtTest);
    showLatest(lib, chat, *doc);
    QCOMPARE(chat.rowCount(), 0);
    QCOMPARE(chat.chatId(), 0);

    chat.appendUser(QStringLiteral("What is gamma?"));
    saveQuestion(lib, chat);
    QVERIFY(chat.chatId() > 0);
    chat.beginAssistant();
    QVERIFY(chat.isStreaming());
    QCOMPARE(chat.turns().size(), 1);  // the streaming answer is not a turn yet
    QSignalSpy changed(&chat, &QAbstractItemModel::dataChanged);
    for (const char* piece : {"Gamma ", "is a ", "letter."}) chat.appendPiece(QString::fromUtf8(piece));
    QCOMPARE(changed.count(), 3);
    QCOMPARE(chat.data(chat.index(1), ChatModel::StreamingRole).toBool(), true);
    chat.finishAssistant(QStringLiteral("eos"));
    saveAnswer(lib, chat);
    QVERIFY(!chat.isStreaming());
    QCOMPARE(chat.rowCount(), 2);
    QCOMPARE(chat.data(chat.index(1), ChatModel::RoleRole).toString(), QStringLiteral("assistant"));
    QCOMPARE(chat.data(chat.index(1), ChatModel::TextRole).toString(), QStringLiteral("Gamma is a letter."));
    QCOMPARE(chat.data(chat.index(1), ChatModel::StopReasonRole).toString(), QStringLiteral("eos"));
    QVERIFY(chat.roleNames().contains(ChatModel::TextRole));
    chat.appendPiece(QStringLiteral("late piece"));  // after the end: ignored
    QCOMPARE(chat.data(chat.index(1)).toString(), QStringLiteral("Gamma is a letter."));

    // A second model (the app restarted) restores the chat from the library.
    ChatModel restored;
    QAbstractItemModelTester tester2(&restored, QAbstractItemModelTester::FailureReportingMode::QtTest);
    showLatest(lib, restored, *doc);
    QCOMPARE(restored.chatId(), chat.chatId());
    const QList<ChatTurn> turns = restored.turns();
    QCOMPARE(turns.size(), 2);
    QCOMPARE(turns[0].role, QStringLiteral("user"));
    QCOMPARE(turns[0].text, QStringLiteral("What is gamma?"));
    QCOMPARE(turns[1].text, QStringLiteral("Gamma is a letter."));
  }

  void chatModelRegenerateAndDiscard() {
    auto doc = m_lib->add_document(makeDocument("delta", "txt"));
    QVERIFY(doc.ok());
    fkv::DocumentLibrary lib(*m_lib);
    ChatModel chat;
    QAbstractItemModelTester tester(&chat, QAbstractItemModelTester::FailureReportingMode::QtTest);
    showLatest(lib, chat, *doc);
    chat.appendUser(QStringLiteral("First?"));
    saveQuestion(lib, chat);
    chat.beginAssistant();
    chat.appendPiece(QStringLiteral("One."));
    chat.finishAssistant(QStringLiteral("eos"));
    saveAnswer(lib, chat);
    const qint64 firstChat = chat.chatId();

    // Regenerate: the answer goes; the chat continues as a new chat with the question only.
    QVERIFY(chat.removeLastAnswer());
    QCOMPARE(chat.rowCount(), 1);
    QVERIFY(!chat.removeLastAnswer());  // the last turn is a question now
    saveQuestion(lib, chat);            // the regenerated ask
    QVERIFY(chat.chatId() != firstChat);
    chat.beginAssistant();
    chat.appendPiece(QStringLiteral("Uno."));
    chat.finishAssistant(QStringLiteral("eos"));
    saveAnswer(lib, chat);

    // A failed answer leaves no turn behind; its question was saved before the answer was tried.
    chat.appendUser(QStringLiteral("Second?"));
    saveQuestion(lib, chat);
    chat.beginAssistant();
    chat.discardAssistant();
    QCOMPARE(chat.rowCount(), 3);

    ChatModel restored;
    showLatest(lib, restored, *doc);
    QCOMPARE(restored.chatId(), chat.chatId());
    const QList<ChatTurn> turns = restored.turns();
    QCOMPARE(turns.size(), 3);
    QCOMPARE(turns[1].text, QStringLiteral("Uno."));
    QCOMPARE(turns[2].text, QStringLiteral("Second?"));

    // A new chat starts empty and becomes the latest once it has a question.
    chat.startNewChat();
    QCOMPARE(chat.rowCount(), 0);
    chat.appendUser(QStringLiteral("Fresh start?"));
    saveQuestion(lib, chat);
    showLatest(lib, restored, *doc);
    QCOMPARE(restored.rowCount(), 1);
    QCOMPARE(restored.turns().front().text, QStringLiteral("Fresh start?"));

    // The id of a chat saved for another document is not taken.
    chat.setChatId(*doc + 1000, 77);
    QVERIFY(chat.chatId() != 77);
  }

  void chatModelWithoutLibraryKeepsTurnsInMemory() {
    ChatModel chat;
    QAbstractItemModelTester tester(&chat, QAbstractItemModelTester::FailureReportingMode::QtTest);
    chat.show(0, {});
    chat.appendUser(QStringLiteral("Anyone there?"));
    chat.beginAssistant();
    chat.appendPiece(QStringLiteral("Yes."));
    chat.finishAssistant();
    QCOMPARE(chat.rowCount(), 2);
    QCOMPARE(chat.chatId(), 0);
    QCOMPARE(chat.saveTarget().documentId, 0);  // the worker saves nothing for it
  }

  // The desk's state machine (desk_session.h) through the flows the window drives: first load, open, ask, a reload
  // that drops and reopens the document, a failed reload that keeps the old model, an open during a first load.
  void deskSessionFollowsTheEngine() {
    using S = DeskSession::State;
    DeskSession d;
    QSignalSpy changed(&d, &DeskSession::stateChanged);
    QCOMPARE(d.state(), S::NoModel);
    d.noModelToLoad(true);  // a configured model that cannot be loaded (bad settings)
    QCOMPARE(d.state(), S::ModelFailed);
    d.modelLoadStarted();
    QCOMPARE(d.state(), S::LoadingModel);
    QVERIFY(!d.openStarted(7));  // waits for the model
    QCOMPARE(d.modelLoaded(), qint64(7));
    QCOMPARE(d.state(), S::NoDocument);
    QVERIFY(!d.answerStarted());  // nothing to ask about
    QVERIFY(d.openStarted(7));
    QCOMPARE(d.state(), S::Opening);
    d.documentOpened(7);
    QVERIFY(d.answerStarted());
    QCOMPARE(d.state(), S::Answering);
    QVERIFY(!d.answerStarted());  // one answer at a time
    QVERIFY(d.answerEnded());
    QCOMPARE(d.state(), S::Ready);

    // A reload: the old model answers until the worker drops the document; the new one reopens it.
    d.modelLoadStarted();
    QCOMPARE(d.state(), S::Ready);
    d.documentClosed(7);
    QCOMPARE(d.state(), S::NoDocument);
    QCOMPARE(d.modelLoaded(), qint64(7));
    QVERIFY(d.openStarted(7));
    d.documentOpened(7);

    // A failed reload keeps the old model and its document.
    d.modelLoadStarted();
    d.modelFailed();
    QCOMPARE(d.state(), S::Ready);
    QVERIFY(d.hasModel());

    // Opening another document: the previous one closing does not end the open; a failed open leaves none.
    QVERIFY(d.openStarted(9));
    d.documentClosed(7);
    QCOMPARE(d.state(), S::Opening);
    d.openFailed();
    QCOMPARE(d.state(), S::NoDocument);
    QCOMPARE(d.documentId(), qint64(0));

    // An answer cut short by an open of another document leaves the desk opening, not ready.
    QVERIFY(d.openStarted(9));
    d.documentOpened(9);
    QVERIFY(d.answerStarted());
    QVERIFY(d.openStarted(11));
    QVERIFY(!d.answerEnded());
    QCOMPARE(d.state(), S::Opening);
    QVERIFY(changed.count() > 10);

    // A cancelled or failed open brings back the document that was ready before it; one from no document does not.
    d.openFailed();
    QVERIFY(d.openStarted(9));
    d.documentOpened(9);
    QVERIFY(d.openStarted(12));
    d.cancelRequested();
    const DeskSession::FailedOpen cancelled = d.openFailed();
    QVERIFY(cancelled.cancelled);
    QCOMPARE(cancelled.reopen, qint64(9));
    QVERIFY(d.openStarted(9));
    d.documentOpened(9);
    QVERIFY(d.openStarted(12));
    const DeskSession::FailedOpen failed = d.openFailed();
    QVERIFY(!failed.cancelled);
    QCOMPARE(failed.reopen, qint64(9));
    QVERIFY(d.openStarted(12));  // from no document
    QCOMPARE(d.openFailed().reopen, qint64(0));
  }

  void timelineKeepsTheLastSteps() {
    TimelineModel timeline;
    QAbstractItemModelTester tester(&timeline, QAbstractItemModelTester::FailureReportingMode::QtTest);
    timeline.setCapacity(5);
    QCOMPARE(timeline.columnCount(), int(TimelineModel::ColumnCount));
    timeline.appendSteps(steps(0, 3));
    QCOMPARE(timeline.rowCount(), 3);
    timeline.appendSteps(steps(3, 4));  // 7 steps, 5 kept: 2..6
    QCOMPARE(timeline.rowCount(), 5);
    QCOMPARE(timeline.record(0).step, 2);
    QCOMPARE(timeline.record(4).step, 6);
    const QModelIndex first = timeline.index(0, TimelineModel::SelectedColumn);
    QCOMPARE(timeline.data(first, TimelineModel::RawValueRole).toInt(), 12);
    QCOMPARE(timeline.data(timeline.index(0, TimelineModel::StallColumn)).toString(), QStringLiteral("0.25"));
    QCOMPARE(timeline.data(timeline.index(0, TimelineModel::BytesColumn), TimelineModel::RawValueRole).toLongLong(),
             4096);
    QCOMPARE(timeline.headerData(TimelineModel::RecalledColumn, Qt::Horizontal).toString(), QStringLiteral("Recalled"));

    TelemetryFrame frame;
    frame.newSteps = steps(7, 12);  // more than fit: only the newest 5 stay
    timeline.addFrame(frame);
    QCOMPARE(timeline.rowCount(), 5);
    QCOMPARE(timeline.record(0).step, 14);
    QCOMPARE(timeline.record(4).step, 18);
    timeline.setCapacity(2);
    QCOMPARE(timeline.rowCount(), 2);
    QCOMPARE(timeline.record(0).step, 17);
    timeline.clear();
    QCOMPARE(timeline.rowCount(), 0);
    timeline.appendSteps({});
    QCOMPARE(timeline.rowCount(), 0);
  }
};

QTEST_GUILESS_MAIN(TestModels)
#include "test_models.moc"
