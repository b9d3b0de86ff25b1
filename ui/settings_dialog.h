// The app's settings (QSettings) and the dialog that edits them: the model file and how it is loaded, the retrieval
// policy and its budget, answer length and temperature, and the cap on stored KV snapshots. validate() is the one
// place that says what is acceptable; the dialog shows its messages and refuses OK while there are any.
#pragma once

#include <QDialog>
#include <QString>
#include <QStringList>
#include <optional>

#include "fkv/models.h"
#include "fkv/types.h"

class QSettings;
class QComboBox;
class QDialogButtonBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;

struct DeskSettings {
  QString modelPath;
  int nThreads = 0;  // 0: defaultThreads()
  int nCtx = 0;      // 0: automatic: the model's training context (up to 32k tokens), grown for a longer document
  int pageSize = 32;
  // Named settings as the settings file spells them; fkv's parse_* reads them and validate() reports a bad one.
  QString kvType = QStringLiteral("f16");
  QString prefill = QStringLiteral("dense");  // fkv::prefill_name
  QString chatTemplate;  // empty: the one the model file names
  QString policy = QStringLiteral("freekv");
  int sinkTokens = 512;
  int recentTokens = 512;
  int retrievedTokens = 1024;
  double correctionTau = 0.9;
  int maxAnswerTokens = 256;  // a document answer is a few sentences; the system prompt asks for one to three
  double temperature = 0.2;  // facts copied from the document must not be sampled away; 0 is greedy
  int storageCapMiB = 0;  // 0: no cap on KV snapshots

  static DeskSettings load(const QSettings& settings);
  void save(QSettings& settings) const;
  // Human-readable problems, each saying what was found and what would do; empty when the settings are usable.
  QStringList validate() const;
  // Settings that work but cost something the user should know: a context past what the model was trained for
  // (answers about text beyond it degrade) and the memory that context takes. Never blocks.
  QStringList warnings() const;
  // The same, for `model` as the GGUF at modelPath describes itself (the dialog reads a file once, not per keystroke).
  QStringList warnings(const std::optional<fkv::InstalledModel>& model) const;
  // Whether two settings load the model the same way (a change elsewhere needs no reload).
  bool sameModelLoad(const DeskSettings& other) const;

  fkv::ModelOptions modelOptions() const;
  fkv::RetrievalOptions retrievalOptions() const;
  fkv::GenerationOptions generationOptions() const;
  fkv::DocumentOptions documentOptions() const;
  fkv::Policy retrievalPolicy() const;  // freekv when `policy` names none

  // Every hardware thread but one: the window's thread keeps a core, so it never waits for the engine's.
  static int defaultThreads();
  static QStringList policies();       // in the order the dialog lists them
  static QStringList kvTypes();
  static QStringList prefills();
  static QStringList chatTemplates();  // "" (detect) first
  static QString policyDescription(fkv::Policy policy);
};

class SettingsDialog : public QDialog {
  Q_OBJECT

 public:
  explicit SettingsDialog(const DeskSettings& settings, QWidget* parent = nullptr);

  // What the widgets hold now.
  DeskSettings settings() const;
  QStringList problems() const { return settings().validate(); }
  // The message shown under the form ("" when the settings are valid).
  QString problemText() const;
  QString warningText() const;
  bool canAccept() const;

  // The widgets, for tests and keyboard focus.
  QLineEdit* modelPathEdit() const { return m_modelPath; }
  QSpinBox* sinkSpin() const { return m_sink; }
  QSpinBox* recentSpin() const { return m_recent; }
  QSpinBox* retrievedSpin() const { return m_retrieved; }
  QSpinBox* pageSizeSpin() const { return m_pageSize; }
  QDoubleSpinBox* tauSpin() const { return m_tau; }
  QComboBox* policyCombo() const { return m_policy; }

 public slots:
  void accept() override;

 private:
  QWidget* buildModelGroup();
  QWidget* buildRetrievalGroup();
  QWidget* buildAnswerGroup();
  void setValues(const DeskSettings& s);
  void connectInputs();
  void browseModel();
  void revalidate();

  QLineEdit* m_modelPath = nullptr;
  QLabel* m_modelInfo = nullptr;
  QSpinBox* m_threads = nullptr;
  QSpinBox* m_ctx = nullptr;
  QComboBox* m_kvType = nullptr;
  QComboBox* m_prefill = nullptr;
  QComboBox* m_template = nullptr;
  QComboBox* m_policy = nullptr;
  QLabel* m_policyInfo = nullptr;
  QSpinBox* m_sink = nullptr;
  QSpinBox* m_recent = nullptr;
  QSpinBox* m_retrieved = nullptr;
  QSpinBox* m_pageSize = nullptr;
  QDoubleSpinBox* m_tau = nullptr;
  QSpinBox* m_maxTokens = nullptr;
  QDoubleSpinBox* m_temperature = nullptr;
  QSpinBox* m_storageCap = nullptr;
  QLabel* m_problems = nullptr;
  QLabel* m_warnings = nullptr;
  QString m_describedPath;                         // the model file m_described was read from
  std::optional<fkv::InstalledModel> m_described;  // its trained context and memory per token
  QDialogButtonBox* m_buttons = nullptr;
};
