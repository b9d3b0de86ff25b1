// The desktop as a new user meets it, on the real default model: no settings at all, Qwen2.5-Coder-0.5B-Instruct in
// the models folder (linked to the copy setup installed), a document imported from the command line's path, and the
// three questions of support/answer_document.h typed into the chat pane. The window must load the model by itself
// and every answer must hold the document's fact. With FKV_SCREENSHOT_DIR set it saves the window after the answers
// (the user guide's picture of a right answer).
#include <QDir>
#include <QFile>
#include <QPlainTextEdit>
#include <QSettings>
#include <QSignalSpy>
#include <QTest>

#include <fstream>
#include <memory>

#include "chat_model.h"
#include "chat_view.h"
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

  void cleanupTestCase() { m_window.reset(); }
};

QTEST_MAIN(TestDeskAnswers)
#include "test_desk_answers.moc"
