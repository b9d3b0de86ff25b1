// GGUF reader and writer: round trips of every metadata type and tensor type, the real vocabulary and model files,
// and hostile files (truncation at every length, huge counts, bad offsets, unsupported types) that must fail cleanly.
#include <QDir>
#include <QFile>
#include <QtTest>

#include <cstring>
#include <limits>
#include <memory>

#include "core/gguf.h"
#include "model/gguf_writer.h"
#include "support/test_paths.h"

using fkv::DType;
using fkv::GgufFile;
using fkv::GgufType;
using fkv::GgufValue;
using fkv::GgufWriter;

namespace {

// Little-endian byte builder for hand-made files, most of them broken in ways the writer refuses to produce.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& u8(uint8_t v) { return raw(&v, 1); }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& str(std::string_view s) { return u64(s.size()).raw(s.data(), s.size()); }
  Bytes& raw(const void* p, size_t n) {
    const size_t at = b.size();
    b.resize(at + n);
    if (n > 0) std::memcpy(b.data() + at, p, n);
    return *this;
  }
  Bytes& pad_to(size_t a) {
    b.resize((b.size() + a - 1) / a * a, 0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.resize(b.size() + n, 0);
    return *this;
  }
  // One tensor info: name, dims (GGUF order), type id, offset relative to the data section.
  Bytes& tensor(std::string_view name, const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    return u32(type).u64(offset);
  }
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes h;
  h.raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  return h;
}

// Parses from an exactly sized heap copy, so the sanitizers flag any read past the end. Empty when it parses.
QString parse_error(const std::vector<uint8_t>& bytes) {
  auto copy = std::make_unique<uint8_t[]>(bytes.size());
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = GgufFile::parse(copy.get(), bytes.size(), "x.gguf");
  return f.ok() ? QString() : QString::fromStdString(f.message());
}

// One tensor of `type` (F32 size 8 when "f32") at relative offset `offset`, followed by its data.
std::vector<uint8_t> one_tensor_file(const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset, size_t n_data) {
  Bytes f = header(1, 0);
  f.tensor("blk.0.attn_q.weight", dims, type, offset).pad_to(32).zeros(n_data);
  return f.b;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);  // (n)
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

GgufValue scalar(GgufType type, uint64_t u, int64_t i, double f) {
  GgufValue v;
  v.type = type;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}

GgufValue numeric_array(GgufType elem, uint64_t count, const uint8_t* data) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem_type = elem;
  v.count = count;
  v.data = data;
  return v;
}

const std::vector<DType> kAllTypes = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q5_0,
                                      DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// A small valid file: scalars, arrays and two tensors; the last tensor fills its aligned slot, so every proper
// prefix cuts something the reader needs.
std::vector<uint8_t> small_valid_file() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "a", "bc"});
  w.set_f32_array("tokenizer.ggml.scores", {0.f, -1.f, -2.f});
  w.add_tensor("a", {32, 2}, DType::Q8_0, pattern(68, 1));
  w.add_tensor("b", {8}, DType::F32, pattern(32, 2));
  return w.to_bytes();
}

}  // namespace

class TestGguf : public QObject {
  Q_OBJECT

 private slots:
  void metadataRoundTrip();
  void arraysOfEveryType();
  void getterTypeChecks();
  void tensorsOfEveryType_data();
  void tensorsOfEveryType();
  void writeThenOpen();
  void writerRejectsBadInput();
  void llamaVocab();
  void copyVocabRoundTrip();
  void gemmaModel();
  void badMagicAndVersion();
  void everyTruncationFails();
  void hugeCountsAndLengths();
  void badTensorInfos();
  void badMetadata();
};

void TestGguf::metadataRoundTrip() {
  GgufWriter w;
  w.set_u32("k.u32", 4000000000u);
  w.set_i32("k.i32", -7);
  w.set_u64("k.u64", 1ull << 40);
  w.set_f32("k.f32", 0.25f);
  w.set_bool("k.bool", true);
  w.set_string("k.string", "h\xc3\xa9llo");
  w.set_string_array("k.strings", {"", "a", "long string"});
  w.copy_value("k.u8", scalar(GgufType::U8, 200, 0, 0));
  w.copy_value("k.u16", scalar(GgufType::U16, 60000, 0, 0));
  w.copy_value("k.i8", scalar(GgufType::I8, 0, -100, 0));
  w.copy_value("k.i16", scalar(GgufType::I16, 0, -30000, 0));
  w.copy_value("k.i64", scalar(GgufType::I64, 0, -(1ll << 50), 0));
  w.copy_value("k.f64", scalar(GgufType::F64, 0, 0, 1e300));
  QVERIFY(w.status().ok());
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "mem");
  QVERIFY2(f.ok(), f.message().c_str());
  const GgufFile& g = **f;
  QCOMPARE(g.version(), 3u);
  QCOMPARE(g.metadata().size(), size_t(13));
  QCOMPARE(g.metadata()[0].first, std::string("k.u32"));  // file order is kept
  QCOMPARE(*g.get_uint("k.u32").value(), uint64_t(4000000000u));
  QCOMPARE(*g.get_int("k.i32").value(), int64_t(-7));
  QCOMPARE(*g.get_uint("k.u64").value(), uint64_t(1) << 40);
  QCOMPARE(*g.get_float("k.f32").value(), 0.25);
  QCOMPARE(*g.get_bool("k.bool").value(), true);
  QCOMPARE(*g.get_string("k.string").value(), std::string_view("h\xc3\xa9llo"));
  const std::vector<std::string_view> strs = *g.get_string_array("k.strings").value();
  QCOMPARE(strs, (std::vector<std::string_view>{"", "a", "long string"}));
  QCOMPARE(g.find("k.u8")->type, GgufType::U8);
  QCOMPARE(*g.get_uint("k.u8").value(), uint64_t(200));
  QCOMPARE(*g.get_uint("k.u16").value(), uint64_t(60000));
  QCOMPARE(*g.get_int("k.i8").value(), int64_t(-100));
  QCOMPARE(*g.get_int("k.i16").value(), int64_t(-30000));
  QCOMPARE(*g.get_int("k.i64").value(), -(int64_t(1) << 50));
  QCOMPARE(g.find("k.f64")->type, GgufType::F64);
  QCOMPARE(*g.get_float("k.f64").value(), 1e300);
  QVERIFY(g.tensors().empty());
}

void TestGguf::arraysOfEveryType() {
  const std::vector<GgufType> numeric = {GgufType::U8,  GgufType::I8,  GgufType::U16, GgufType::I16,
                                         GgufType::U32, GgufType::I32, GgufType::F32, GgufType::BOOL,
                                         GgufType::U64, GgufType::I64, GgufType::F64};
  std::vector<std::vector<uint8_t>> payloads;  // (n_types, 5 * elem_size)
  GgufWriter w;
  for (size_t k = 0; k < numeric.size(); ++k) {
    const bool is_bool = numeric[k] == GgufType::BOOL;
    payloads.push_back(is_bool ? std::vector<uint8_t>{1, 0, 1, 1, 0}
                               : pattern(5 * fkv::gguf_scalar_size(numeric[k]), uint8_t(k)));
    w.copy_value(std::string("arr.") + fkv::gguf_type_name(numeric[k]),
                 numeric_array(numeric[k], 5, payloads.back().data()));
  }
  w.set_i32_array("arr.ints", {-1, 0, 2147483647});
  w.set_f32_array("arr.empty", {});
  QVERIFY(w.status().ok());
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "mem");
  QVERIFY2(f.ok(), f.message().c_str());
  for (size_t k = 0; k < numeric.size(); ++k) {
    const GgufValue* v = (*f)->find(std::string("arr.") + fkv::gguf_type_name(numeric[k]));
    QVERIFY(v != nullptr);
    QCOMPARE(v->type, GgufType::ARRAY);
    QCOMPARE(v->elem_type, numeric[k]);
    QCOMPARE(v->count, uint64_t(5));
    QVERIFY(std::memcmp(v->data, payloads[k].data(), payloads[k].size()) == 0);
  }
  QCOMPARE(*(*f)->get_int_array("arr.ints").value(), (std::vector<int64_t>{-1, 0, 2147483647}));
  QVERIFY((*f)->get_f32_array("arr.empty").value()->empty());
  // i16 payload pattern(10, 3): bytes 3,10 -> 0x0a03; f64 elements narrow to float.
  QCOMPARE((*(*f)->get_int_array("arr.i16").value())[0], int64_t(0x0a03));
  QCOMPARE((*(*f)->get_f32_array("arr.f64").value()).size(), size_t(5));
}

void TestGguf::getterTypeChecks() {
  GgufWriter w;
  w.set_string("s", "text");
  w.set_i32("neg", -3);
  w.set_u64("big", std::numeric_limits<uint64_t>::max());
  w.set_i32_array("ints", {1, 2});
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "t.gguf");
  QVERIFY2(f.ok(), f.message().c_str());
  const GgufFile& g = **f;
  QVERIFY(!g.get_uint("absent").value().has_value());
  QVERIFY(!g.get_string_array("absent").value().has_value());
  const QString on_string = QString::fromStdString(g.get_uint("s").message());
  QVERIFY2(on_string.startsWith("t.gguf: ") && on_string.contains("'s' has type string") &&
               on_string.contains("expected an unsigned integer"),
           qPrintable(on_string));
  QVERIFY(!g.get_string("neg").ok());
  QVERIFY(!g.get_float("s").ok());
  QVERIFY(!g.get_bool("neg").ok());
  QVERIFY(QString::fromStdString(g.get_uint("neg").message()).contains("is -3, expected a non-negative"));
  QVERIFY(QString::fromStdString(g.get_int("big").message()).contains("expected at most"));
  QCOMPARE(*g.get_int("neg").value(), int64_t(-3));
  const QString arr = QString::fromStdString(g.get_f32_array("ints").message());
  QVERIFY2(arr.contains("is an array of i32") && arr.contains("expected an array of f32"), qPrintable(arr));
  QVERIFY(!g.get_string_array("ints").ok());
  QVERIFY(!g.get_int_array("s").ok());
  QVERIFY(!g.get_int("ints").ok());
}

void TestGguf::tensorsOfEveryType_data() {
  QTest::addColumn<uint32_t>("alignment");
  QTest::newRow("default 32") << 32u;
  QTest::newRow("general.alignment 64") << 64u;
}

void TestGguf::tensorsOfEveryType() {
  QFETCH(uint32_t, alignment);
  GgufWriter w;
  w.set_alignment(alignment);
  for (size_t k = 0; k < kAllTypes.size(); ++k) {
    const int64_t row = fkv::dtype_info(kAllTypes[k]).block_size * 2;
    const std::vector<int64_t> dims = k % 2 ? std::vector<int64_t>{row, 3} : std::vector<int64_t>{row, 1, 3, 1};
    w.add_tensor(std::string("t.") + fkv::dtype_name(kAllTypes[k]), dims, kAllTypes[k],
                 pattern(fkv::row_bytes(kAllTypes[k], row * 3), uint8_t(k)));
  }
  QVERIFY2(w.status().ok(), w.status().message().c_str());
  const std::vector<uint8_t> bytes = w.to_bytes();
  QCOMPARE(bytes.size() % alignment, size_t(0));
  auto f = GgufFile::parse(bytes.data(), bytes.size(), "mem");
  QVERIFY2(f.ok(), f.message().c_str());
  const GgufFile& g = **f;
  QCOMPARE(g.alignment(), size_t(alignment));
  QCOMPARE(g.find("general.alignment") != nullptr, alignment != 32);
  QCOMPARE(g.tensors().size(), kAllTypes.size());
  uint64_t end_of_previous = 0;
  for (size_t k = 0; k < kAllTypes.size(); ++k) {
    const fkv::GgufTensor* t = g.find_tensor(std::string("t.") + fkv::dtype_name(kAllTypes[k]));
    QVERIFY(t != nullptr);
    QCOMPARE(t, &g.tensors()[k]);
    QCOMPARE(t->type, kAllTypes[k]);
    QCOMPARE(t->dims.size(), size_t(k % 2 ? 2 : 4));
    QCOMPARE(t->n_elements(), fkv::dtype_info(kAllTypes[k]).block_size * 6);
    QCOMPARE(t->n_bytes, uint64_t(fkv::row_bytes(kAllTypes[k], t->n_elements())));
    QCOMPARE(t->offset % alignment, uint64_t(0));
    QVERIFY(t->offset >= end_of_previous);
    QCOMPARE(t->data, bytes.data() + t->offset);
    QVERIFY(std::memcmp(t->data, pattern(t->n_bytes, uint8_t(k)).data(), t->n_bytes) == 0);
    end_of_previous = t->offset + t->n_bytes;
  }
  QVERIFY(g.find_tensor("missing") == nullptr);
}

void TestGguf::writeThenOpen() {
  const QString path = fkvtest::tempDir() + "/written.gguf";
  const std::vector<uint8_t> expected = small_valid_file();
  GgufWriter w;
  auto src = GgufFile::parse(expected.data(), expected.size(), "mem");
  QVERIFY2(src.ok(), src.message().c_str());
  for (const auto& [key, value] : (*src)->metadata()) w.copy_value(key, value);
  for (const fkv::GgufTensor& t : (*src)->tensors())
    w.add_tensor(t.name, t.dims, t.type, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  const fkv::Status s = w.write(path.toStdString());
  QVERIFY2(s.ok(), s.message().c_str());
  QFile file(path);
  QVERIFY(file.open(QIODevice::ReadOnly));
  const QByteArray on_disk = file.readAll();
  QCOMPARE(on_disk, QByteArray(reinterpret_cast<const char*>(expected.data()), qsizetype(expected.size())));
  QCOMPARE(QDir(fkvtest::tempDir()).entryList({"*.tmp-*"}, QDir::Files).size(), 0);
  auto g = GgufFile::open(path.toStdString());
  QVERIFY2(g.ok(), g.message().c_str());
  QCOMPARE((*g)->label(), path.toStdString());
  QCOMPARE((*g)->file_size(), expected.size());
  QCOMPARE(*(*g)->get_uint("llama.block_count").value(), uint64_t(2));
  QCOMPARE((*g)->find_tensor("b")->data[0], uint8_t(2));
  const QString missing = QString::fromStdString(GgufFile::open("/nonexistent/m.gguf").message());
  QVERIFY2(missing.contains("/nonexistent/m.gguf") && missing.contains("No such file"), qPrintable(missing));
}

void TestGguf::writerRejectsBadInput() {
  GgufWriter w;
  w.add_tensor("ok", {32}, DType::Q8_0, std::vector<uint8_t>(34));
  QVERIFY(w.status().ok());
  w.add_tensor("short", {32, 2}, DType::Q8_0, std::vector<uint8_t>(67));
  const QString bad = QString::fromStdString(w.status().message());
  QVERIFY2(bad.contains("'short'") && bad.contains("67 bytes") && bad.contains("expected 68"), qPrintable(bad));
  const QString path = fkvtest::tempDir() + "/refused.gguf";
  const QString refused = QString::fromStdString(w.write(path.toStdString()).message());
  QVERIFY2(refused.contains(path) && refused.contains("'short'"), qPrintable(refused));
  QVERIFY(!QFile::exists(path));
  GgufWriter only_ok;
  only_ok.add_tensor("ok", {32}, DType::Q8_0, std::vector<uint8_t>(34));
  QVERIFY(w.to_bytes() == only_ok.to_bytes());  // the refused tensor is left out

  const auto first_error = [](auto&& build) {
    GgufWriter x;
    build(x);
    return QString::fromStdString(x.status().message());
  };
  QVERIFY(first_error([](GgufWriter& x) { x.set_alignment(48); }).contains("48 is not a power of two"));
  QVERIFY(first_error([](GgufWriter& x) { x.set_u64("general.alignment", 64); }).contains("must be a u32"));
  QVERIFY(first_error([](GgufWriter& x) {
            x.add_tensor("q", {256}, DType::Q8_K, std::vector<uint8_t>(292));
          }).contains("Q8_K"));
  QVERIFY(first_error([](GgufWriter& x) {
            x.add_tensor("r", {16}, DType::Q4_0, std::vector<uint8_t>(9));
          }).contains("multiple of 32"));
  QVERIFY(first_error([](GgufWriter& x) { x.add_tensor("d", {}, DType::F32, {}); }).contains("0 dimensions"));
  QVERIFY(first_error([](GgufWriter& x) {
            x.add_tensor("t", {1}, DType::F32, std::vector<uint8_t>(4));
            x.add_tensor("t", {1}, DType::F32, std::vector<uint8_t>(4));
          }).contains("duplicate tensor name 't'"));

  GgufWriter io;
  const fkv::Status no_dir = io.write("/nonexistent-dir/x.gguf");
  QVERIFY2(QString::fromStdString(no_dir.message()).contains("/nonexistent-dir/x.gguf") &&
               QString::fromStdString(no_dir.message()).contains("No such file or directory"),
           no_dir.message().c_str());
}

void TestGguf::llamaVocab() {
  auto f = GgufFile::open(fkvtest::llamaVocabPath().toStdString());
  QVERIFY2(f.ok(), f.message().c_str());
  const GgufFile& g = **f;
  QCOMPARE(*g.get_string("tokenizer.ggml.model").value(), std::string_view("llama"));
  const std::vector<std::string_view> tokens = *g.get_string_array("tokenizer.ggml.tokens").value();
  QCOMPARE(tokens.size(), size_t(32000));
  QCOMPARE(tokens[1], std::string_view("<s>"));
  QCOMPARE(tokens[2], std::string_view("</s>"));
  QCOMPARE(g.get_f32_array("tokenizer.ggml.scores").value()->size(), size_t(32000));
  const std::vector<int64_t> types = *g.get_int_array("tokenizer.ggml.token_type").value();
  QCOMPARE(types.size(), size_t(32000));
  QCOMPARE(types[1], int64_t(3));  // control token
  QVERIFY(g.tensors().empty());
}

void TestGguf::copyVocabRoundTrip() {
  auto src = GgufFile::open(fkvtest::llamaVocabPath().toStdString());
  QVERIFY2(src.ok(), src.message().c_str());
  GgufWriter w;
  for (const auto& [key, value] : (*src)->metadata()) w.copy_value(key, value);
  QVERIFY(w.status().ok());
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto copy = GgufFile::parse(bytes.data(), bytes.size(), "copy");
  QVERIFY2(copy.ok(), copy.message().c_str());
  QCOMPARE((*copy)->metadata().size(), (*src)->metadata().size());
  for (size_t k = 0; k < (*src)->metadata().size(); ++k) {
    const auto& [key, a] = (*src)->metadata()[k];
    const auto& [key_b, b] = (*copy)->metadata()[k];
    QCOMPARE(key_b, key);
    QCOMPARE(b.type, a.type);
    QCOMPARE(b.u, a.u);
    QCOMPARE(b.i, a.i);
    QCOMPARE(b.str, a.str);
    QCOMPARE(b.elem_type, a.elem_type);
    QCOMPARE(b.count, a.count);
    QCOMPARE(b.strs, a.strs);
    const size_t n = a.data ? size_t(a.count) * fkv::gguf_scalar_size(a.elem_type) : 0;
    QVERIFY(n == 0 || std::memcmp(a.data, b.data, n) == 0);
  }
}

void TestGguf::gemmaModel() {
  const QString path = fkvtest::gemmaModelPath();
  if (path.isEmpty()) QSKIP("Gemma 3 270M GGUF not installed (set FKV_GEMMA_MODEL or run the setup command)");
  auto f = GgufFile::open(path.toStdString());
  QVERIFY2(f.ok(), f.message().c_str());
  QCOMPARE((*f)->tensors().size(), size_t(236));
  QCOMPARE(*(*f)->get_string("general.architecture").value(), std::string_view("gemma3"));
  const fkv::GgufTensor* emb = (*f)->find_tensor("token_embd.weight");
  QVERIFY(emb != nullptr);
  QCOMPARE(emb->type, DType::Q8_0);
  QCOMPARE(emb->dims, (std::vector<int64_t>{640, 262144}));
  QCOMPARE(emb->n_bytes, uint64_t(640) / 32 * 34 * 262144);
}

void TestGguf::badMagicAndVersion() {
  Bytes zip;
  zip.raw("PK\x03\x04", 4).zeros(40);
  const QString magic = parse_error(zip.b);
  QVERIFY2(magic.startsWith("x.gguf: not a GGUF file (magic 'PK..'"), qPrintable(magic));
  const QString v1 = parse_error(header(0, 0, 1).b);
  QVERIFY2(v1.contains("version 1") && v1.contains("expected 2 or 3"), qPrintable(v1));
  const QString v4 = parse_error(header(0, 0, 4).b);
  QVERIFY2(v4.contains("version 4") && v4.contains("newer"), qPrintable(v4));
  QVERIFY(parse_error(header(0, 0, 0x03000000).b).contains("big-endian"));
  QVERIFY(parse_error(header(0, 0, 2).b).isEmpty());
  QVERIFY(parse_error(header(0, 0, 3).b).isEmpty());
}

void TestGguf::everyTruncationFails() {
  const std::vector<uint8_t> full = small_valid_file();
  QVERIFY(parse_error(full).isEmpty());
  for (size_t n = 0; n < full.size(); ++n) {
    const QString e = parse_error(std::vector<uint8_t>(full.begin(), full.begin() + static_cast<ptrdiff_t>(n)));
    QVERIFY2(e.startsWith("x.gguf: "), qPrintable(QString("prefix of %1 bytes parsed").arg(n)));
  }
  const QString at_value = parse_error(header(0, 1).str("k").u32(4).zeros(2).b);
  QVERIFY2(at_value ==
               "x.gguf: truncated at byte 37 while reading the value of metadata entry 0 ('k') (need 4 bytes, 2 left)",
           qPrintable(at_value));
}

void TestGguf::hugeCountsAndLengths() {
  QVERIFY(parse_error(header(0, 1ull << 60).zeros(64).b).contains("declares 1152921504606846976 metadata entries"));
  QVERIFY(parse_error(header(1ull << 60, 0).zeros(64).b).contains("tensors"));
  QVERIFY(parse_error(header(0, 1).u64(1ull << 62).zeros(16).b).contains("string length 4611686018427387904"));
  const QString arr = parse_error(header(0, 1).str("a").u32(9).u32(4).u64(1ull << 61).zeros(16).b);
  QVERIFY2(arr.contains("declares 2305843009213693952 elements"), qPrintable(arr));
  QVERIFY(
      parse_error(header(0, 1).str("a").u32(9).u32(8).u64(1ull << 61).zeros(16).b).contains("elements of type string"));
  QVERIFY(parse_error(header(0, 1).str("a").u32(8).u64(~0ull).b).contains("string length"));
}

void TestGguf::badTensorInfos() {
  QVERIFY(parse_error(one_tensor_file({8}, 0, 0, 32)).isEmpty());
  QVERIFY(parse_error(one_tensor_file({8}, 0, 0, 31)).contains("'blk.0.attn_q.weight' extends past end of file"));
  QVERIFY(parse_error(one_tensor_file({8}, 0, 1ull << 63, 32)).contains("extends past end of file"));
  QVERIFY(parse_error(one_tensor_file({8}, 0, 4, 64)).contains("expected a multiple of the alignment 32"));
  const QString iq2 = parse_error(one_tensor_file({256}, 16, 0, 66));
  QVERIFY2(iq2.contains("tensor 'blk.0.attn_q.weight' has type IQ2_XXS, which this engine does not support"),
           qPrintable(iq2));
  QVERIFY(parse_error(one_tensor_file({256}, 99, 0, 0)).contains("type 99"));
  QVERIFY(parse_error(one_tensor_file({}, 0, 0, 0)).contains("has 0 dimensions, expected 1 to 4"));
  QVERIFY(parse_error(one_tensor_file({1, 1, 1, 1, 1}, 0, 0, 4)).contains("has 5 dimensions"));
  QVERIFY(parse_error(one_tensor_file({8, 0}, 0, 0, 0)).contains("dimension 1 = 0"));
  QVERIFY(parse_error(one_tensor_file({1ull << 32, 1ull << 32}, 0, 0, 0)).contains("more elements than fit"));
  QVERIFY(parse_error(one_tensor_file({1ull << 62, 1}, 0, 0, 0)).contains("too large"));
  QVERIFY(parse_error(one_tensor_file({16}, 8, 0, 34)).contains("multiple of 32 (the block size of Q8_0)"));
  Bytes dup = header(2, 0);
  dup.tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad_to(32).zeros(64);
  QVERIFY(parse_error(dup.b).contains("duplicate tensor name 'w'"));
  Bytes aligned = header(1, 1);
  aligned.str("general.alignment").u32(4).u32(64).tensor("w", {8}, 0, 0).pad_to(64).zeros(32);
  QVERIFY(parse_error(aligned.b).isEmpty());
  Bytes short_pad = header(1, 1);
  short_pad.str("general.alignment").u32(4).u32(64).tensor("w", {8}, 0, 0).pad_to(32).zeros(32);
  QVERIFY(parse_error(short_pad.b).contains("data section starts at byte"));
}

void TestGguf::badMetadata() {
  QVERIFY(
      parse_error(header(0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2).b).contains("duplicate metadata key 'k'"));
  const QString align = parse_error(header(0, 1).str("general.alignment").u32(4).u32(48).b);
  QVERIFY2(align.contains("general.alignment is 48, expected a power of two"), qPrintable(align));
  QVERIFY(parse_error(header(0, 1).str("general.alignment").u32(4).u32(0).b).contains("is 0"));
  QVERIFY(parse_error(header(0, 1).str("general.alignment").u32(8).str("32").b).contains("has type string"));
  QVERIFY(parse_error(header(0, 1).str("a").u32(9).u32(9).u64(0).b).contains("nested arrays are not supported"));
  QVERIFY(parse_error(header(0, 1).str("a").u32(9).u32(13).u64(0).b).contains("array element type 13"));
  QVERIFY(parse_error(header(0, 1).str("a").u32(13).zeros(8).b).contains("value type 13, expected 0 to 12"));
  QVERIFY(parse_error(header(0, 1).str("a").u32(7).u8(2).b).contains("bool of value 2"));
  QVERIFY(parse_error(header(0, 1).str("").u32(0).u8(1).zeros(8).b).contains("invalid key"));
  QVERIFY(parse_error(header(0, 1).str("bad\xff").u32(0).u8(1).b).contains("invalid key"));
  QVERIFY(parse_error(header(0, 1).str("ctl\n").u32(0).u8(1).b).contains("invalid key"));
  QVERIFY(parse_error(header(0, 1).str("\xc3\xa9t\xc3\xa9").u32(0).u8(1).b).isEmpty());  // UTF-8 keys are fine
}

QTEST_APPLESS_MAIN(TestGguf)
#include "test_gguf.moc"
