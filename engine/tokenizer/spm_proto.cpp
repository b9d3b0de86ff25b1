#include "tokenizer/spm_proto.h"

#include <bit>
#include <cstring>
#include <utility>

namespace fkv {
namespace {

// Wire types (protobuf encoding spec).
constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireLengthDelimited = 2;
constexpr uint32_t kWireFixed32 = 5;

// Field numbers from sentencepiece_model.proto.
namespace model_field {
constexpr uint32_t pieces = 1, trainer_spec = 2, normalizer_spec = 3;
}
namespace piece_field {
constexpr uint32_t piece = 1, score = 2, type = 3;
}
namespace trainer_field {
constexpr uint32_t model_type = 3, vocab_size = 4, byte_fallback = 35, unk_id = 40, bos_id = 41, eos_id = 42,
                   pad_id = 43, unk_piece = 45, bos_piece = 46, eos_piece = 47, pad_piece = 48;
}
namespace normalizer_field {
constexpr uint32_t name = 1, add_dummy_prefix = 3, remove_extra_whitespaces = 4, escape_whitespaces = 5;
}
// TrainerSpec.ModelType: Llama and Gemma SentencePiece vocabularies are BPE models merged by piece score.
constexpr uint64_t kModelTypeBpe = 2;

std::string piece_message(const SpmPiece& p) {
  ProtoWriter w;
  w.bytes(piece_field::piece, p.piece);
  w.f32(piece_field::score, p.score);
  w.varint(piece_field::type, static_cast<uint64_t>(p.type));
  return w.take();
}

std::string_view piece_at(const SpmModelSpec& spec, int32_t id) {
  return id >= 0 && static_cast<size_t>(id) < spec.pieces.size() ? spec.pieces[id].piece : std::string_view();
}

std::string trainer_message(const SpmModelSpec& spec) {
  ProtoWriter w;
  w.varint(trainer_field::model_type, kModelTypeBpe);
  w.int32(trainer_field::vocab_size, static_cast<int32_t>(spec.pieces.size()));
  w.boolean(trainer_field::byte_fallback, spec.byte_fallback);
  w.int32(trainer_field::unk_id, spec.unk_id);
  w.int32(trainer_field::bos_id, spec.bos_id);
  w.int32(trainer_field::eos_id, spec.eos_id);
  w.int32(trainer_field::pad_id, spec.pad_id);
  // The *_piece fields name the special pieces by text; libsentencepiece's bos_id()/eos_id() look them up this way.
  const std::pair<uint32_t, int32_t> named[] = {{trainer_field::unk_piece, spec.unk_id},
                                                {trainer_field::bos_piece, spec.bos_id},
                                                {trainer_field::eos_piece, spec.eos_id},
                                                {trainer_field::pad_piece, spec.pad_id}};
  for (const auto& [field, id] : named) {
    if (const std::string_view p = piece_at(spec, id); !p.empty()) w.bytes(field, p);
  }
  return w.take();
}

std::string normalizer_message(const SpmModelSpec& spec) {
  ProtoWriter w;
  // No precompiled charsmap: GGUF vocabularies carry none, and llama.cpp does not normalize either.
  w.bytes(normalizer_field::name, "identity");
  w.boolean(normalizer_field::add_dummy_prefix, spec.add_dummy_prefix);
  w.boolean(normalizer_field::remove_extra_whitespaces, false);
  w.boolean(normalizer_field::escape_whitespaces, true);
  return w.take();
}

}  // namespace

void ProtoWriter::raw_varint(uint64_t v) {
  while (v >= 0x80) {
    out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out_.push_back(static_cast<char>(v));
}

void ProtoWriter::tag(uint32_t field, uint32_t wire_type) {
  raw_varint((static_cast<uint64_t>(field) << 3) | wire_type);
}

void ProtoWriter::varint(uint32_t field, uint64_t v) {
  tag(field, kWireVarint);
  raw_varint(v);
}

void ProtoWriter::int32(uint32_t field, int32_t v) {
  tag(field, kWireVarint);
  raw_varint(static_cast<uint64_t>(static_cast<int64_t>(v)));  // sign-extended, as int32 fields are on the wire
}

void ProtoWriter::f32(uint32_t field, float v) {
  tag(field, kWireFixed32);
  const auto bits = std::bit_cast<uint32_t>(v);
  for (int k = 0; k < 4; ++k) out_.push_back(static_cast<char>((bits >> (8 * k)) & 0xFF));  // little-endian
}

void ProtoWriter::bytes(uint32_t field, std::string_view v) {
  tag(field, kWireLengthDelimited);
  raw_varint(v.size());
  out_.append(v);
}

std::string build_spm_model_proto(const SpmModelSpec& spec) {
  ProtoWriter w;
  for (const SpmPiece& p : spec.pieces) w.bytes(model_field::pieces, piece_message(p));
  w.bytes(model_field::trainer_spec, trainer_message(spec));
  w.bytes(model_field::normalizer_spec, normalizer_message(spec));
  return w.take();
}

}  // namespace fkv
