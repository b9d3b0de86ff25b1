#include "settings_dialog.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QThread>
#include <QVBoxLayout>
#include <optional>

#include "fkv/models.h"
#include "model_guide.h"

namespace {

constexpr int kMaxTokens = 1 << 24;  // the engine's bound on every budget count
constexpr int kMaxPageSize = 4096;

// "use 480 or 512": the whole-page counts nearest to a value that is not one.
QString nearestPages(int tokens, int pageSize) {
  const int below = (tokens / pageSize) * pageSize;
  if (below == 0) return QString::number(pageSize);
  return QStringLiteral("%1 or %2").arg(below).arg(below + pageSize);
}

}  // namespace

DeskSettings DeskSettings::load(const QSettings& s) {
  DeskSettings d;
  d.modelPath = s.value("model/path", d.modelPath).toString();
  d.nThreads = s.value("model/threads", d.nThreads).toInt();
  d.nCtx = s.value("model/contextTokens", d.nCtx).toInt();
  d.pageSize = s.value("model/pageSize", d.pageSize).toInt();
  d.kvType = s.value("model/kvType", d.kvType).toString();
  d.prefill = s.value("model/prefill", d.prefill).toString();
  d.chatTemplate = s.value("model/chatTemplate", d.chatTemplate).toString();
  d.policy = s.value("retrieval/policy", d.policy).toString();
  d.sinkTokens = s.value("retrieval/sinkTokens", d.sinkTokens).toInt();
  d.recentTokens = s.value("retrieval/recentTokens", d.recentTokens).toInt();
  d.retrievedTokens = s.value("retrieval/retrievedTokens", d.retrievedTokens).toInt();
  d.correctionTau = s.value("retrieval/correctionTau", d.correctionTau).toDouble();
  d.maxAnswerTokens = s.value("answer/maxTokens", d.maxAnswerTokens).toInt();
  d.temperature = s.value("answer/temperature", d.temperature).toDouble();
  d.storageCapMiB = s.value("storage/capMiB", d.storageCapMiB).toInt();
  return d;
}

void DeskSettings::save(QSettings& s) const {
  s.setValue("model/path", modelPath);
  s.setValue("model/threads", nThreads);
  s.setValue("model/contextTokens", nCtx);
  s.setValue("model/pageSize", pageSize);
  s.setValue("model/kvType", kvType);
  s.setValue("model/prefill", prefill);
  s.setValue("model/chatTemplate", chatTemplate);
  s.setValue("retrieval/policy", policy);
  s.setValue("retrieval/sinkTokens", sinkTokens);
  s.setValue("retrieval/recentTokens", recentTokens);
  s.setValue("retrieval/retrievedTokens", retrievedTokens);
  s.setValue("retrieval/correctionTau", correctionTau);
  s.setValue("answer/maxTokens", maxAnswerTokens);
  s.setValue("answer/temperature", temperature);
  s.setValue("storage/capMiB", storageCapMiB);
}

QStringList DeskSettings::validate() const {
  QStringList out;
  if (!modelPath.isEmpty() && !QFileInfo(modelPath).isFile())
    out << QObject::tr("The model file %1 does not exist: choose a .gguf file with Browse.").arg(modelPath);
  if (nCtx != 0 && nCtx < 256)
    out << QObject::tr("The context must hold at least 256 tokens (or 0: the model's own), found %1.").arg(nCtx);
  if (nThreads < 0) out << QObject::tr("Threads must be 0 (all) or more, found %1.").arg(nThreads);
  if (!chatTemplates().contains(chatTemplate))
    out << QObject::tr("Unknown chat template \"%1\": choose one of %2 (or leave it empty to detect it).")
               .arg(chatTemplate, chatTemplates().mid(1).join(", "));
  if (!fkv::parse_policy(policy.toStdString()).ok())
    out << QObject::tr("Unknown retrieval policy \"%1\": choose one of %2.").arg(policy, policies().join(", "));
  if (!fkv::parse_prefill(prefill.toStdString()).ok())
    out << QObject::tr("Unknown prefill \"%1\": choose one of %2.").arg(prefill, prefills().join(", "));
  if (!fkv::parse_kv_type(kvType.toStdString()).ok())
    out << QObject::tr("Unknown KV cache type \"%1\": choose one of %2.").arg(kvType, kvTypes().join(", "));
  if (pageSize < 1 || pageSize > kMaxPageSize) {
    out << QObject::tr("The page size must be 1 to %1 tokens, found %2.").arg(kMaxPageSize).arg(pageSize);
    return out;  // the budget checks below are in pages
  }
  const std::pair<QString, int> counts[] = {{QObject::tr("Sink tokens"), sinkTokens},
                                            {QObject::tr("Recent tokens"), recentTokens},
                                            {QObject::tr("Retrieved tokens"), retrievedTokens}};
  for (const auto& [name, tokens] : counts) {
    if (tokens < 0 || tokens > kMaxTokens)
      out << QObject::tr("%1 must be 0 to %2, found %3.").arg(name).arg(kMaxTokens).arg(tokens);
    else if (tokens % pageSize != 0)
      out << QObject::tr("%1 (%2) must be whole pages of %3 tokens: use %4.")
                 .arg(name)
                 .arg(tokens)
                 .arg(pageSize)
                 .arg(nearestPages(tokens, pageSize));
  }
  if (recentTokens >= 0 && recentTokens < pageSize)
    out << QObject::tr("The recent window must hold at least one page (%1 tokens), found %2.")
               .arg(pageSize)
               .arg(recentTokens);
  if (!(correctionTau >= fkv::kMinCorrectionTau && correctionTau <= fkv::kMaxCorrectionTau))
    out << QObject::tr("The correction threshold τ must be between %1 and %2, found %3.")
               .arg(double(fkv::kMinCorrectionTau))
               .arg(double(fkv::kMaxCorrectionTau))
               .arg(correctionTau);
  if (maxAnswerTokens < 1) out << QObject::tr("Answers need at least 1 token, found %1.").arg(maxAnswerTokens);
  if (!(temperature >= 0.0 && temperature <= 2.0))
    out << QObject::tr("The temperature must be between 0 and 2, found %1.").arg(temperature);
  if (storageCapMiB < 0) out << QObject::tr("The storage cap must be 0 (none) or more, found %1.").arg(storageCapMiB);
  // The engine checks the same options when they arrive; anything the lines above let through is caught here.
  if (out.isEmpty()) {
    if (const fkv::Status s = modelOptions().validate(); !s.ok()) out << QString::fromStdString(s.message());
  }
  return out;
}

QStringList DeskSettings::warnings() const {
  if (nCtx <= 0 || modelPath.isEmpty()) return {};
  return warnings(fkv::describe_model(modelPath.toStdString()));
}

QStringList DeskSettings::warnings(const std::optional<fkv::InstalledModel>& m) const {
  QStringList out;
  if (nCtx <= 0 || !m || m->n_ctx_train <= 0 || nCtx <= m->n_ctx_train) return out;
  const QLocale locale;
  out << QObject::tr("A context of %1 tokens is more than the %2 this model was trained for: what it reads past %2 "
                     "tokens it understands poorly. It takes about %3 of memory (%4 at %2 tokens).")
             .arg(locale.toString(nCtx), locale.toString(m->n_ctx_train),
                  locale.formattedDataSize(m->memory_bytes(nCtx), 1, QLocale::DataSizeSIFormat),
                  locale.formattedDataSize(m->memory_bytes(m->n_ctx_train), 1, QLocale::DataSizeSIFormat));
  return out;
}

bool DeskSettings::sameModelLoad(const DeskSettings& o) const {
  return modelPath == o.modelPath && nThreads == o.nThreads && nCtx == o.nCtx && pageSize == o.pageSize &&
         kvType == o.kvType && chatTemplate == o.chatTemplate && prefill == o.prefill;
}

int DeskSettings::defaultThreads() { return std::max(1, QThread::idealThreadCount() - 1); }

fkv::RetrievalOptions DeskSettings::retrievalOptions() const {
  fkv::RetrievalOptions r;
  r.policy = retrievalPolicy();
  r.sink_tokens = sinkTokens;
  r.recent_tokens = recentTokens;
  r.retrieved_tokens = retrievedTokens;
  r.correction_tau = float(correctionTau);
  return r;
}

fkv::ModelOptions DeskSettings::modelOptions() const {
  fkv::ModelOptions m;
  m.n_ctx = nCtx;
  m.n_threads = nThreads > 0 ? nThreads : defaultThreads();
  m.page_size = pageSize;
  const fkv::Result<fkv::KvType> kv = fkv::parse_kv_type(kvType.toStdString());
  m.kv_type = kv.ok() ? *kv : fkv::KvType::f16;  // validate() reports an unknown name
  const fkv::Result<fkv::Prefill> pf = fkv::parse_prefill(prefill.toStdString());
  m.prefill = pf.ok() ? *pf : fkv::Prefill::dense;
  m.chat_template = chatTemplate.toStdString();
  m.retrieval = retrievalOptions();
  return m;
}

fkv::GenerationOptions DeskSettings::generationOptions() const {
  fkv::GenerationOptions g;
  g.max_tokens = maxAnswerTokens;
  g.temperature = float(temperature);
  return g;
}

fkv::DocumentOptions DeskSettings::documentOptions() const {
  fkv::DocumentOptions d;
  d.storage_cap_bytes = int64_t(storageCapMiB) << 20;
  return d;
}

fkv::Policy DeskSettings::retrievalPolicy() const {
  const fkv::Result<fkv::Policy> p = fkv::parse_policy(policy.toStdString());
  return p.ok() ? *p : fkv::Policy::freekv;  // validate() reports an unknown name
}

QStringList DeskSettings::policies() {
  QStringList out;
  for (fkv::Policy p : {fkv::Policy::freekv, fkv::Policy::arkvale, fkv::Policy::quest, fkv::Policy::streaming,
                        fkv::Policy::full})
    out << QLatin1String(fkv::policy_name(p));
  return out;
}

QStringList DeskSettings::prefills() {
  QStringList out;
  for (fkv::Prefill p : {fkv::Prefill::dense, fkv::Prefill::automatic, fkv::Prefill::retrieval})
    out << QLatin1String(fkv::prefill_name(p));
  return out;
}

QStringList DeskSettings::kvTypes() {
  QStringList out;
  for (fkv::KvType t : {fkv::KvType::f16, fkv::KvType::bf16, fkv::KvType::f32})
    out << QLatin1String(fkv::kv_type_name(t));
  return out;
}

QStringList DeskSettings::chatTemplates() {
  return {QString(),
          QStringLiteral("llama2"),
          QStringLiteral("llama3"),
          QStringLiteral("mistral"),
          QStringLiteral("chatml"),
          QStringLiteral("gemma"),
          QStringLiteral("deepseek-r1")};
}

QString DeskSettings::policyDescription(fkv::Policy policy) {
  switch (policy) {
    case fkv::Policy::freekv:
      return QObject::tr(
          "Speculative retrieval: pages for the next step are chosen with this step's query; heads whose "
          "query moved (cosine below τ) are corrected at once.");
    case fkv::Policy::arkvale:
      return QObject::tr("Selects pages each step and recalls the missing ones before attention (synchronous).");
    case fkv::Policy::quest:
      return QObject::tr("Exact top-k page selection every step, synchronous.");
    case fkv::Policy::streaming:
      return QObject::tr("Sink and recent window only: fast, forgets the middle of the document.");
    case fkv::Policy::full:
      return QObject::tr("Attends to every token: exact and slowest.");
  }
  return {};
}

// ---- the dialog ----

SettingsDialog::SettingsDialog(const DeskSettings& settings, QWidget* parent) : QDialog(parent) {
  setWindowTitle(tr("Settings"));
  setMinimumWidth(560);
  auto* layout = new QVBoxLayout(this);
  layout->addWidget(buildModelGroup());
  layout->addWidget(buildRetrievalGroup());
  layout->addWidget(buildAnswerGroup());
  m_problems = new QLabel(this);
  m_problems->setWordWrap(true);
  m_problems->setStyleSheet(QStringLiteral("color: #c92a2a;"));
  m_problems->setAccessibleName(tr("Problems with these settings"));
  layout->addWidget(m_problems);
  m_warnings = new QLabel(this);
  m_warnings->setWordWrap(true);
  m_warnings->setStyleSheet(QStringLiteral("color: #9c5b00;"));
  m_warnings->setAccessibleName(tr("Warnings about these settings"));
  layout->addWidget(m_warnings);
  m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
  connect(m_buttons, &QDialogButtonBox::accepted, this, &SettingsDialog::accept);
  connect(m_buttons, &QDialogButtonBox::rejected, this, &SettingsDialog::reject);
  layout->addWidget(m_buttons);
  setValues(settings);
  connectInputs();
  revalidate();
}

QWidget* SettingsDialog::buildModelGroup() {
  auto* box = new QGroupBox(tr("Model"), this);
  auto* form = new QFormLayout(box);
  m_modelPath = new QLineEdit(box);
  m_modelPath->setPlaceholderText(tr("a GGUF model file, e.g. gemma-3-270m-q4_k_m.gguf"));
  auto* browse = new QPushButton(tr("&Browse…"), box);
  connect(browse, &QPushButton::clicked, this, &SettingsDialog::browseModel);
  auto* row = new QHBoxLayout;
  row->addWidget(m_modelPath, 1);
  row->addWidget(browse);
  auto* modelLabel = new QLabel(tr("&Model file:"), box);
  modelLabel->setBuddy(m_modelPath);
  form->addRow(modelLabel, row);
  m_modelInfo = new QLabel(box);
  form->addRow(QString(), m_modelInfo);
  m_threads = new QSpinBox(box);
  m_threads->setRange(0, 512);
  m_threads->setSpecialValueText(tr("all cores but one"));
  m_threads->setToolTip(tr("Compute threads. The default leaves one core to the window, so it stays responsive."));
  form->addRow(tr("&Threads:"), m_threads);
  m_ctx = new QSpinBox(box);
  m_ctx->setRange(0, 1 << 20);
  m_ctx->setSingleStep(1024);
  m_ctx->setSuffix(tr(" tokens"));
  m_ctx->setSpecialValueText(tr("automatic"));
  m_ctx->setToolTip(tr("Automatic: the model's own context (up to 32k tokens), grown for a longer document: up to "
                       "1M tokens, past the model's own context by reading it as context memory."));
  form->addRow(tr("&Context size:"), m_ctx);
  m_kvType = new QComboBox(box);
  m_kvType->addItems(DeskSettings::kvTypes());
  form->addRow(tr("&KV cache type:"), m_kvType);
  m_prefill = new QComboBox(box);
  m_prefill->addItems(DeskSettings::prefills());
  m_prefill->setToolTip(tr("dense reads every token against every earlier one (exact; slows as the document grows). "
                           "retrieval reads each chunk against the start, the 2,048 tokens before it and the pages "
                           "that match it best: a 16k-token document prefills in two thirds of the time, and "
                           "the cost per token stays flat, but a detail far from its chunk can be missed. "
                           "auto is dense for the first 8,192 tokens and retrieval past them."));
  form->addRow(tr("&Prefill:"), m_prefill);
  m_template = new QComboBox(box);
  for (const QString& name : DeskSettings::chatTemplates())
    m_template->addItem(name.isEmpty() ? tr("from the model file") : name, name);
  form->addRow(tr("C&hat template:"), m_template);
  return box;
}

QWidget* SettingsDialog::buildRetrievalGroup() {
  auto* box = new QGroupBox(tr("Retrieval"), this);
  auto* form = new QFormLayout(box);
  m_policy = new QComboBox(box);
  m_policy->addItems(DeskSettings::policies());
  form->addRow(tr("&Policy:"), m_policy);
  m_policyInfo = new QLabel(box);
  m_policyInfo->setWordWrap(true);
  // Room for the longest description: form layouts measure wrapped labels before they know their width.
  m_policyInfo->setMinimumHeight(m_policyInfo->fontMetrics().lineSpacing() * 3);
  m_policyInfo->setAlignment(Qt::AlignLeft | Qt::AlignTop);
  form->addRow(m_policyInfo);  // spans both columns: a wrapped label in the field column gets clipped
  auto tokens = [box](int step) {
    auto* spin = new QSpinBox(box);
    spin->setRange(0, kMaxTokens);
    spin->setSingleStep(step);
    spin->setSuffix(QObject::tr(" tokens"));
    return spin;
  };
  m_sink = tokens(32);
  m_recent = tokens(32);
  m_retrieved = tokens(32);
  m_pageSize = new QSpinBox(box);
  m_pageSize->setRange(0, kMaxPageSize);
  m_pageSize->setSuffix(tr(" tokens"));
  m_tau = new QDoubleSpinBox(box);
  m_tau->setRange(0.0, 1.0);
  m_tau->setDecimals(3);
  m_tau->setSingleStep(0.01);
  form->addRow(tr("&Sink:"), m_sink);
  form->addRow(tr("&Recent window:"), m_recent);
  form->addRow(tr("R&etrieved:"), m_retrieved);
  form->addRow(tr("Pa&ge size:"), m_pageSize);
  form->addRow(tr("Correction &threshold τ:"), m_tau);
  return box;
}

QWidget* SettingsDialog::buildAnswerGroup() {
  auto* box = new QGroupBox(tr("Answers and storage"), this);
  auto* form = new QFormLayout(box);
  m_maxTokens = new QSpinBox(box);
  m_maxTokens->setRange(0, 1 << 16);
  m_maxTokens->setSuffix(tr(" tokens"));
  m_maxTokens->setToolTip(tr("Answers stop here. 256 tokens is about 190 words: a document answer is usually a few "
                             "sentences, and a longer limit mostly lets a small model wander."));
  m_temperature = new QDoubleSpinBox(box);
  m_temperature->setRange(0.0, 2.0);
  m_temperature->setSingleStep(0.1);
  m_storageCap = new QSpinBox(box);
  m_storageCap->setRange(0, 1 << 24);
  m_storageCap->setSuffix(tr(" MiB"));
  m_storageCap->setSpecialValueText(tr("no cap"));
  form->addRow(tr("Longest &answer:"), m_maxTokens);
  form->addRow(tr("T&emperature:"), m_temperature);
  form->addRow(tr("KV snapshot &storage:"), m_storageCap);
  return box;
}

void SettingsDialog::setValues(const DeskSettings& s) {
  m_modelPath->setText(s.modelPath);
  m_threads->setValue(s.nThreads);
  m_ctx->setValue(s.nCtx);
  m_kvType->setCurrentText(s.kvType);
  m_prefill->setCurrentText(s.prefill);
  m_template->setCurrentIndex(std::max(0, m_template->findData(s.chatTemplate)));
  m_policy->setCurrentText(s.policy);
  m_sink->setValue(s.sinkTokens);
  m_recent->setValue(s.recentTokens);
  m_retrieved->setValue(s.retrievedTokens);
  m_pageSize->setValue(s.pageSize);
  m_tau->setValue(s.correctionTau);
  m_maxTokens->setValue(s.maxAnswerTokens);
  m_temperature->setValue(s.temperature);
  m_storageCap->setValue(s.storageCapMiB);
}

void SettingsDialog::connectInputs() {
  connect(m_modelPath, &QLineEdit::textChanged, this, &SettingsDialog::revalidate);
  connect(m_policy, &QComboBox::currentTextChanged, this, &SettingsDialog::revalidate);
  for (QSpinBox* spin : {m_threads, m_ctx, m_sink, m_recent, m_retrieved, m_pageSize, m_maxTokens, m_storageCap})
    connect(spin, &QSpinBox::valueChanged, this, &SettingsDialog::revalidate);
  for (QDoubleSpinBox* spin : {m_tau, m_temperature})
    connect(spin, &QDoubleSpinBox::valueChanged, this, &SettingsDialog::revalidate);
}

DeskSettings SettingsDialog::settings() const {
  DeskSettings s;
  s.modelPath = m_modelPath->text().trimmed();
  s.nThreads = m_threads->value();
  s.nCtx = m_ctx->value();
  s.kvType = m_kvType->currentText();
  s.prefill = m_prefill->currentText();
  s.chatTemplate = m_template->currentData().toString();
  s.policy = m_policy->currentText();
  s.sinkTokens = m_sink->value();
  s.recentTokens = m_recent->value();
  s.retrievedTokens = m_retrieved->value();
  s.pageSize = m_pageSize->value();
  s.correctionTau = m_tau->value();
  s.maxAnswerTokens = m_maxTokens->value();
  s.temperature = m_temperature->value();
  s.storageCapMiB = m_storageCap->value();
  return s;
}

QString SettingsDialog::problemText() const { return m_problems->text(); }
QString SettingsDialog::warningText() const { return m_warnings->text(); }

bool SettingsDialog::canAccept() const { return m_buttons->button(QDialogButtonBox::Ok)->isEnabled(); }

void SettingsDialog::accept() {
  if (canAccept()) QDialog::accept();
}

void SettingsDialog::browseModel() {
  // With no model yet, start where the first-run banner tells people to put one.
  const QString start = m_modelPath->text().isEmpty() ? ModelGuide::modelsFolder()
                                                      : QFileInfo(m_modelPath->text()).absolutePath();
  const QString path =
      QFileDialog::getOpenFileName(this, tr("Choose a model"), start, tr("GGUF models (*.gguf);;All files (*)"));
  if (!path.isEmpty()) m_modelPath->setText(path);
}

void SettingsDialog::revalidate() {
  const DeskSettings s = settings();
  const QStringList problems = s.validate();
  m_problems->setText(problems.join(QLatin1Char('\n')));
  m_problems->setVisible(!problems.isEmpty());
  if (s.modelPath != m_describedPath) {
    m_describedPath = s.modelPath;
    m_described = s.modelPath.isEmpty() ? std::nullopt : fkv::describe_model(s.modelPath.toStdString());
  }
  const QStringList warnings = s.warnings(m_described);
  m_warnings->setText(warnings.join(QLatin1Char('\n')));
  m_warnings->setVisible(!warnings.isEmpty());
  m_buttons->button(QDialogButtonBox::Ok)->setEnabled(problems.isEmpty());
  // Knobs a policy does not use are greyed: the full policy attends everywhere, only freekv corrects.
  const fkv::Policy policy = s.retrievalPolicy();
  const bool budgeted = policy != fkv::Policy::full;
  for (QSpinBox* spin : {m_sink, m_recent, m_retrieved}) {
    spin->setEnabled(budgeted);
    spin->setSingleStep(std::max(1, s.pageSize));
  }
  m_retrieved->setEnabled(budgeted && policy != fkv::Policy::streaming);
  m_tau->setEnabled(policy == fkv::Policy::freekv);
  m_policyInfo->setText(DeskSettings::policyDescription(policy));
  const QFileInfo model(s.modelPath);
  m_modelInfo->setText(model.isFile() ? tr("%1 · %2").arg(model.fileName(), QLocale().formattedDataSize(model.size()))
                                      : tr("Without a model you can import documents but not ask about them."));
}
