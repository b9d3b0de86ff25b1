// Installed models and the default choice (fkv/models.h): the folder's GGUF files are listed largest first with the
// memory each needs, files that are not models are skipped, and the choice is the largest that fits.
#include <QTemporaryDir>
#include <QTest>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "fkv/models.h"
#include "model/synthetic.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;

class TestModelsFolder : public QObject {
  Q_OBJECT

 private:
  QTemporaryDir dir_;
  std::string folder() const { return dir_.path().toStdString() + "/models"; }

  void writeModel(const std::string& file, int n_layers, int n_embd, int n_ctx) {
    fkv::SyntheticModelSpec spec;
    spec.vocab_path = fkvtest::llamaVocabPath().toStdString();
    spec.n_layers = n_layers;
    spec.n_embd = n_embd;
    spec.n_ff = 2 * n_embd;
    spec.n_ctx = n_ctx;
    spec.name = file;
    const fkv::Status s = fkv::write_synthetic_model(spec, folder() + "/" + file);
    QVERIFY2(s.ok(), s.message().c_str());
  }

 private slots:
  void initTestCase() {
    fs::create_directories(folder());
    writeModel("small.gguf", 2, 64, 2048);
    writeModel("large.gguf", 4, 128, 8192);
    std::ofstream(folder() + "/broken.gguf") << "GGUF but not really";
    std::ofstream(folder() + "/notes.txt") << "not a model";
    fs::create_directories(folder() + "/sub.gguf");  // a folder with a model's name
  }

  void listsLargestFirstAndSkipsNonModels() {
    const std::vector<fkv::InstalledModel> models = fkv::list_installed_models(folder());
    QCOMPARE(models.size(), size_t{2});
    QCOMPARE(fs::path(models[0].path).filename().string(), std::string("large.gguf"));
    QCOMPARE(fs::path(models[1].path).filename().string(), std::string("small.gguf"));
    QCOMPARE(models[0].n_ctx_train, 8192);
    QCOMPARE(models[0].name, std::string("large.gguf"));
    for (const fkv::InstalledModel& m : models) {
      QCOMPARE(m.file_bytes, static_cast<int64_t>(fs::file_size(m.path)));
      QVERIFY(m.need_bytes > m.file_bytes + 100'000'000);
    }
    // 4 layers x 2 KV heads x head_dim 32 x 4.125 bytes x 8192 tokens: the KV cache at the trained window.
    const int64_t large_kv = int64_t{4} * 2 * 32 * 8192 * 33 / 8;
    QCOMPARE(models[0].need_bytes, models[0].file_bytes + large_kv + 100'000'000);
    QVERIFY(fkv::list_installed_models(folder() + "/missing").empty());
  }

  void choosesTheLargestThatFits() {
    const std::vector<fkv::InstalledModel> models = fkv::list_installed_models(folder());
    QCOMPARE(models.size(), size_t{2});
    const auto large = fkv::choose_model(models, models[0].need_bytes);
    QVERIFY(large && large->path == models[0].path);
    const auto small = fkv::choose_model(models, models[0].need_bytes - 1);
    QVERIFY(small && small->path == models[1].path);
    QVERIFY(!fkv::choose_model(models, models[1].need_bytes - 1));
    QVERIFY(!fkv::choose_model({}, int64_t{1} << 40));
  }

  void folderFollowsXdg() {
    const QByteArray old = qgetenv("XDG_DATA_HOME");
    qputenv("XDG_DATA_HOME", "/data/home");
    QCOMPARE(fkv::default_models_folder(), std::string("/data/home/freekv-desk/models"));
    qunsetenv("XDG_DATA_HOME");
    QVERIFY(fkv::default_models_folder().ends_with("/.local/share/freekv-desk/models"));
    if (!old.isNull()) qputenv("XDG_DATA_HOME", old);
  }

  void availableMemoryIsRead() { QVERIFY(fkv::available_memory_bytes() > 0); }
};

QTEST_APPLESS_MAIN(TestModelsFolder)
#include "test_models_folder.moc"
