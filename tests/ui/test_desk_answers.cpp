// The desktop as a new user meets it, on the real default model: no settings at all, Qwen2.5-Coder-0.5B-Instruct in
// the models folder (linked to the copy setup installed), a document imported from the command line's path, and the
// three questions of support/answer_document.h typed into the chat pane. The window must load the model by itself
// and every answer must hold the document's fact. With FKV_SCREENSHOT_DIR set it saves the window after the answers
// (the user guide's picture of a right answer).
#include <QDir>
#include <QFile>
#include <QListView>
#include <QPlainTextEdit>
#include <QRect>
#include <QSettings>
#include <QSignalSpy>
#include <QTest>

#include <fstream>
#include <memory>

#include "chat_model.h"
#include "chat_view.h"
#include "document_view.h"
#include "main_window.h"
#include "model_guide.h"
#include "settings_dialog.h"
#include "support/answer_document.h"
#include "support/test_paths.h"

namespace {

constexpr int kTimeoutMs = 300000;  // a 2-core machine under load: the prefill and three answers

}  // namespace

class TestDeskAnswers : public QObject {
  Q_OBJECT

 private:
  QString m_dir, m_doc;
  std::unique_ptr<MainWindow> m_window;

  QString ask(const QString& question) {
    QSignalSpy done(m_window.get(), &MainWindow::answerDone);
    QPlainTextEdit* input = m_window->chatView()->input();
    input->setFocus();
    QTest::keyClicks(input, question);
    QTest::keyClick(input, Qt::Key_Return);
    if (!QTest::qWaitFor([&] { return done.count() == 1; }, kTimeoutMs)) return QStringLiteral("(no answer in time)");
    ChatModel* chat = m_window->chatModel();
    return chat->index(chat->rowCount() - 1, 0).data(ChatModel::TextRole).toString();
  }

 private slots:
  void initTestCase() {
    const QString model = fkvtest::qwenModelPath();
    if (model.isEmpty()) QSKIP("Qwen2.5-Coder-0.5B-Instruct is not installed: run ./scripts/setup.sh");
    m_dir = fkvtest::tempDir();
    // A fresh user: empty settings, and a data folder whose models folder holds only the default model.
    QSettings::setPath(QSettings::NativeFormat, QSettings::UserScope, m_dir + QStringLiteral("/config"));
    qputenv("XDG_DATA_HOME", (m_dir + QStringLiteral("/data")).toUtf8());
    QCoreApplication::setOrganizationDomain(QStringLiteral("freekv.org"));
    QCoreApplication::setApplicationName(QStringLiteral("freekv-desk"));
    QVERIFY(QDir().mkpath(ModelGuide::modelsFolder()));
    QVERIFY(ModelGuide::modelsFolder().startsWith(m_dir));
    QVERIFY(QFile::link(model, ModelGuide::modelsFolder() + QStringLiteral("/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")));
    m_doc = m_dir + QStringLiteral("/harbour-report.md");
    std::ofstream(m_doc.toStdString()) << fkvtest::harbour_report();
  }

  void startsWithTheInstalledModel() {
    m_window = std::make_unique<MainWindow>(m_dir + QStringLiteral("/data/freekv-desk/library.db"));
    m_window->resize(1400, 900);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
    QVERIFY(m_window->chatView()->state() != ChatView::State::NoModel);
    QTRY_VERIFY_WITH_TIMEOUT(m_window->hasModel(), kTimeoutMs);
    QVERIFY(m_window->settings().modelPath.startsWith(ModelGuide::modelsFolder()));
    QCOMPARE(m_window->model().architecture, QStringLiteral("qwen2"));
  }

  void answersRight() {
    QSignalSpy ready(m_window.get(), &MainWindow::documentReady);
    m_window->importAndOpen({m_doc});
    QTRY_VERIFY_WITH_TIMEOUT(ready.count() == 1, kTimeoutMs);
    for (const fkvtest::AnswerCase& c : fkvtest::harbour_questions()) {
      const QString answer = ask(QString::fromUtf8(c.question));
      QVERIFY2(fkvtest::answer_is_right(answer.toStdString(), c),
               qPrintable(QStringLiteral("%1 -> %2").arg(QString::fromUtf8(c.question), answer)));
    }
    if (const QString dir = qEnvironmentVariable("FKV_SCREENSHOT_DIR"); !dir.isEmpty()) {
      QDir().mkpath(dir);
      QVERIFY(m_window->grab().save(dir + QStringLiteral("/right-answer.png")));
    }
  }

  // With a budget smaller than the report, retrieval has to choose, and the answer cites where it read: the needle
  // sentence's passage comes first, and clicking it selects that passage in the document. The guide's picture of a
  // cited answer.
  void citesTheNeedleFirst() {
    DeskSettings s = m_window->settings();
    s.sinkTokens = 128;
    s.recentTokens = 64;
    s.retrievedTokens = 128;
    m_window->applySettings(s);  // the budget only: applied to the open document, no reload
    emit m_window->chatView()->newChatRequested();  // one question on its own, as the picture shows it
    const fkvtest::AnswerCase& needle = fkvtest::harbour_questions().front();
    const QString answer = ask(QString::fromUtf8(needle.question));
    QVERIFY2(fkvtest::answer_is_right(answer.toStdString(), needle), qPrintable(answer));
    ChatModel* chat = m_window->chatModel();
    const int row = chat->rowCount() - 1;
    const auto cites = chat->index(row, 0).data(ChatModel::CitationsRole).value<QVector<fkv::Citation>>();
    QVERIFY(!cites.isEmpty());
    const std::string& text = m_window->openedDocument().content->text;
    const size_t at = text.find(needle.accepted.front());
    QVERIFY(at != std::string::npos);
    QVERIFY2(cites[0].char_begin <= qint64(at) && qint64(at) < cites[0].char_end,
             cites[0].snippet.c_str());
    const QRect first = m_window->chatView()->citationRect(row, 0);
    QVERIFY(!first.isEmpty());
    QTest::mouseClick(m_window->chatView()->list()->viewport(), Qt::LeftButton, {}, first.center());
    QVERIFY(m_window->documentView()->textEdit()->textCursor().selectedText().contains(
        QString::fromStdString(needle.accepted.front())));
    if (const QString dir = qEnvironmentVariable("FKV_SCREENSHOT_DIR"); !dir.isEmpty()) {
      QDir().mkpath(dir);
      QVERIFY(m_window->grab().save(dir + QStringLiteral("/cited-answer.png")));
    }
  }

  void cleanupTestCase() { m_window.reset(); }
};

QTEST_MAIN(TestDeskAnswers)
#include "test_desk_answers.moc"
